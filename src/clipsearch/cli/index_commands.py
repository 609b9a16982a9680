"""``clipsearch index ...``: build, upsert, delete, roll back and list the versions of an index."""

from __future__ import annotations

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
    _stderr_console,
    fail,
    index_app,
)
from clipsearch.errors import ClipsearchError
from clipsearch.ingest.segmentation import Segmentation
from clipsearch.settings import ENV_PREFIX, Settings


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
                corpus_encoder=corpus_encoder.value,
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
