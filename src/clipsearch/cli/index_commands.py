"""``clipsearch index ...``: build, upsert, delete, roll back and list the versions of an index."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from clipsearch.cli.options import (
    CorpusEncoder,
    FlatMaxVectorsOption,
    FloatMaxVectorsOption,
    PassageSearchMaxVectorsOption,
    SpanSearchMaxVectorsOption,
    _default,
    _setting,
    _stderr_console,
    fail,
    index_app,
)
from clipsearch.errors import ClipsearchError
from clipsearch.ingest.segmentation import Segmentation
from clipsearch.settings import ENV_PREFIX, Settings


class Backend(str, Enum):
    faiss = "faiss"
    milvus = "milvus"


@index_app.command("build")
def index_build(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Clip files (.jsonl/.json, .csv, .txt clip-answer pages) and transcripts (.srt, .vtt, "
                       "YouTube .json/.json3, .jsonl video lists with a 'transcript' path per video)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index directory to build a new version of.")],
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", envvar=f"{ENV_PREFIX}MODEL",
                     help="sentence-transformers model name or path. Default: the packaged all-MiniLM-L6-v2."),
    ] = None,
    cache_dir: Annotated[
        Optional[Path],
        typer.Option("--cache-dir", envvar=f"{ENV_PREFIX}CACHE_DIR", help="Embedding cache. Default: OUT/cache."),
    ] = None,
    keep_versions: Annotated[int, typer.Option(min=1, help="Versions to keep for rollback.")] = 3,
    flat_max_vectors: FlatMaxVectorsOption = _default("flat_max_vectors"),
    float_max_vectors: FloatMaxVectorsOption = _default("float_max_vectors"),
    span_search_max_vectors: SpanSearchMaxVectorsOption = _default("span_search_max_vectors"),
    passage_search_max_vectors: PassageSearchMaxVectorsOption = _default("passage_search_max_vectors"),
    corpus_encoder: Annotated[
        CorpusEncoder,
        typer.Option(envvar=f"{ENV_PREFIX}CORPUS_ENCODER", help=Settings.model_fields["corpus_encoder"].description),
    ] = CorpusEncoder(Settings.model_fields["corpus_encoder"].default),
    min_clip_seconds: Annotated[
        float, typer.Option(min=0, help="Transcripts: shortest clip, unless its chapter or transcript is shorter.")
    ] = Segmentation.min_seconds,
    max_clip_seconds: Annotated[
        float, typer.Option(min=0, help="Transcripts: longest clip, unless it is a single cue that long.")
    ] = Segmentation.max_seconds,
    target_clip_seconds: Annotated[
        float, typer.Option(min=0, help="Transcripts: the clip length cuts are drawn to, between min and max.")
    ] = Segmentation.target_seconds,
    clip_overlap: Annotated[
        bool, typer.Option(help="Transcripts: also cut a clip across each cut, from the middle of one clip to the "
                           "middle of the next.")
    ] = Segmentation.overlap,
    backend: Annotated[Backend, _setting("backend", "--backend")] = Backend(_default("backend")),
    milvus_uri: Annotated[Optional[str], _setting("milvus_uri", "--milvus-uri")] = None,
    milvus_token_env: Annotated[Optional[str], _setting("milvus_token_env", "--milvus-token-env")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build a new version of an index from clip files and transcripts and switch to it once it is verified.

    Transcripts are cut into clips at sentence ends and pauses, within the clip length bounds; chapters given in a
    video list are hard boundaries and their titles become the clips' questions. Bad input stops the build before
    anything is written (exit status 2, PATH:LINE: FIELD: what is wrong); the index at --out keeps serving its
    current version.

    Example usage:

        clipsearch index build examples/clips.jsonl examples/page.txt --out index/example

        clipsearch index build videos.jsonl --out index/videos

        clipsearch index build clips.jsonl --out index/big --backend milvus --milvus-uri http://127.0.0.1:19530
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from clipsearch.index.build import build_index

    try:
        segmentation = Segmentation(min_clip_seconds, max_clip_seconds, target_clip_seconds, overlap=clip_overlap)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console = _stderr_console()
    # Not on a terminal (pipes, CI logs) a transient bar cannot erase itself and leaves a blank line on stderr.
    with Progress(
        TextColumn("encoding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=quiet or not console.is_terminal, transient=True, console=console,
    ) as bar:
        task = bar.add_task("encoding", total=None)
        try:
            result = build_index(
                sources, out, model=model, cache_dir=cache_dir, keep_versions=keep_versions,
                flat_max_vectors=flat_max_vectors, float_max_vectors=float_max_vectors,
                span_search_max_vectors=span_search_max_vectors,
                passage_search_max_vectors=passage_search_max_vectors, segmentation=segmentation,
                corpus_encoder=corpus_encoder.value, backend=backend.value, milvus_uri=milvus_uri,
                milvus_token_env=milvus_token_env,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except ClipsearchError as exc:
            raise fail(exc) from None
    typer.echo(
        f"built {out} version {result.index.version}: {result.clips} clips, {result.vectors} vectors, "
        f"{result.clips_per_second:.1f} clips/s in {result.seconds:.2f} s ({result.encoded} texts encoded, "
        f"{result.cached} from cache)"
    )
    phases = result.phases
    typer.echo(
        f"  seconds: reading {phases['read']:.2f}, model and ONNX exports {phases['encoder']:.2f}, "
        f"embedding {phases['embed']:.2f}, indexing {phases['index']:.2f}"
    )


IndexDirArgument = Annotated[Path, typer.Argument(help="The index directory.")]


@index_app.command("upsert")
def index_upsert(
    sources: Annotated[list[Path], typer.Argument(help="Clip files and transcripts, as for `index build`: clips "
                                                  "with a new id are added, clips with a known id replace it.")],
    index: Annotated[Path, typer.Option("--index", "-i", envvar=f"{ENV_PREFIX}INDEX", help="Index directory.")],
    cache_dir: Annotated[Optional[Path], _setting("cache_dir", "--cache-dir")] = None,
    keep_versions: Annotated[int, typer.Option(min=1, help="Versions to keep for rollback.")] = 3,
) -> None:
    """Add or replace clips in a Milvus-backed index without a rebuild: only new and changed clips are embedded.

    The collection is changed in place and a new version becomes current once it verifies (the service reloads
    it). A FAISS index answers that it must be rebuilt (exit 1).

    Example usage:

        clipsearch index upsert new-clips.jsonl --index index/big
    """
    from clipsearch.index.upsert import upsert_clips

    try:
        result = upsert_clips(index, sources, cache_dir=cache_dir, keep_versions=keep_versions)
    except ClipsearchError as exc:
        raise fail(exc) from None
    _echo_change(index, result)


@index_app.command("delete")
def index_delete(
    ids: Annotated[list[str], typer.Argument(help="Ids of the clips to delete.")],
    index: Annotated[Path, typer.Option("--index", "-i", envvar=f"{ENV_PREFIX}INDEX", help="Index directory.")],
    keep_versions: Annotated[int, typer.Option(min=1, help="Versions to keep for rollback.")] = 3,
) -> None:
    """Delete clips by id from a Milvus-backed index; an unknown id changes nothing (exit 1).

    Example usage:

        clipsearch index delete bike-03 bike-04 --index index/big
    """
    from clipsearch.index.upsert import upsert_clips

    try:
        result = upsert_clips(index, delete_ids=ids, keep_versions=keep_versions)
    except ClipsearchError as exc:
        raise fail(exc) from None
    _echo_change(index, result)


def _echo_change(index: Path, result) -> None:
    if result.index is None:
        typer.echo(f"{index}: nothing to change ({result.unchanged} clips unchanged)")
        return
    typer.echo(
        f"{index} version {result.index.version}: {result.added} added, {result.changed} changed, "
        f"{result.deleted} deleted, {result.unchanged} unchanged ({result.encoded} texts encoded) "
        f"in {result.seconds:.2f} s"
    )


@index_app.command("versions")
def index_versions(
    index: IndexDirArgument,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per version.")] = False,
) -> None:
    """List an index's versions, oldest first: id, built_at, clips, model, backend, and which is current.

    Example usage:

        clipsearch index versions index/example
    """
    import json

    from clipsearch.index.versions import list_versions

    try:
        versions = list_versions(index)
    except ClipsearchError as exc:
        raise fail(exc) from None
    for v in versions:
        if as_json:
            typer.echo(json.dumps(v.to_dict()))
        else:
            derived = f" (from {v.derived_from})" if v.derived_from else ""
            typer.echo(f"{'*' if v.current else ' '} {v.id}  {v.built_at}  {v.clips} clips  {v.model}  "
                       f"{v.backend}{derived}")


@index_app.command("rollback")
def index_rollback(
    index: IndexDirArgument,
    to: Annotated[Optional[str], typer.Option("--to", help="The version to make current. Default: the newest "
                                              "one older than the current one.")] = None,
) -> None:
    """Make an older version current again once it verifies in full, every byte hashed (a running service reloads
    it).

    Example usage:

        clipsearch index rollback index/example

        clipsearch index rollback index/example --to 20261203T101500123456Z-1a2b3c
    """
    from clipsearch.index.versions import rollback

    try:
        restored = rollback(index, to)
    except ClipsearchError as exc:
        raise fail(exc) from None
    typer.echo(f"{index}: version {restored.version} is current ({len(restored)} clips)")


@index_app.command("verify")
def index_verify(
    index: IndexDirArgument,
    version: Annotated[Optional[str], typer.Option("--version", help="The version to check. Default: the current "
                                                   "one.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Check every version directory, oldest first (stops at the "
                                                     "first that is wrong).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per version checked.")] = False,
) -> None:
    """Check an index version in full: the sha256 of every byte of every file against its manifest, the
    manifest's counts and dimension against the files, and the model against its fingerprint. Exit status 1
    names the first file that is wrong.

    Loading (serve, ask) checks every file's size and hashes the files it reads whole; the memory-mapped arrays
    are hashed here, by `index rollback`, and by a server before it swaps in a new version.

    Example usage:

        clipsearch index verify index/example

        clipsearch index verify index/example --all
    """
    import json

    from clipsearch.index.versions import verify, version_dirs

    try:
        wanted = version_dirs(index) if every else [version]
        for name in wanted:
            done = verify(index, name)
            if as_json:
                typer.echo(json.dumps(done.to_dict()))
            else:
                typer.echo(f"{index} version {done.version}{' (current)' if done.current else ''}: ok, {done.files} "
                           f"files, {done.bytes / 1e6:.1f} MB hashed in {done.seconds:.2f} s; model {done.model} "
                           f"(fingerprint, dim {done.dim})")
    except ClipsearchError as exc:
        raise fail(exc) from None
