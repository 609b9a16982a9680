"""The ``clipsearch`` command line: a thin shell over the library (parse, call the core, print)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from clipsearch.clips import format_time
from clipsearch.errors import ClipsearchError, CorpusError
from clipsearch.settings import ENV_PREFIX, Settings

app = typer.Typer(
    help="Semantic question answering over video clip transcripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build and inspect indexes.", no_args_is_help=True)
app.add_typer(index_app, name="index")

IndexOption = Annotated[
    Path, typer.Option("--index", "-i", envvar=f"{ENV_PREFIX}INDEX", help="Index directory (opens its current version).")
]
ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", "-m", envvar=f"{ENV_PREFIX}MODEL",
                 help="Model name or path; must match the model the index was built with. Default: the index's."),
]


def fail(exc: ClipsearchError) -> typer.Exit:
    """Print a domain error and exit: 2 for bad input, 1 for everything else."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2 if isinstance(exc, CorpusError) else 1)


@index_app.command("build")
def index_build(
    sources: Annotated[list[Path], typer.Argument(help="Clip files: .jsonl/.json, .csv, .txt clip-answer pages.")],
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build a new version of an index from clip files and switch to it once it is verified.

    Bad input stops the build before anything is written (exit status 2, PATH:LINE: FIELD: what is wrong);
    the index at --out keeps serving its current version.

    Example usage:

        clipsearch index build examples/clips.jsonl examples/page.txt --out index/example
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from clipsearch.build import build_index

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
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except ClipsearchError as exc:
            raise fail(exc) from None
    typer.echo(
        f"built {out} version {result.index.version}: {result.clips} clips, {result.vectors} vectors, "
        f"{result.clips_per_second:.1f} clips/s ({result.encoded} texts encoded, {result.cached} from cache)"
    )


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A free-text question.")],
    index: IndexOption = Settings.model_fields["index"].default,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="How many clips to show.")] = 5,
    source: Annotated[Optional[list[str]], typer.Option("--source", help="Only clips from this source (repeatable).")] = None,
    video_id: Annotated[Optional[list[str]], typer.Option("--video-id", help="Only clips of this video (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer JSON (as GET /search returns it).")] = False,
    model: ModelOption = None,
) -> None:
    """Print the clips closest to a question, best first.

    Example usage:

        clipsearch ask "how do I fix a flat tyre?" --index index/example -k 3
    """
    from clipsearch.search import Searcher

    try:
        searcher = Searcher.open(index, model=model)
        answer = searcher.search(question, k=k, filters={"source": source or [], "video_id": video_id or []})
    except ClipsearchError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if not answer.results:
        typer.echo("No clip answers that.")
        return
    for rank, hit in enumerate(answer.results, start=1):
        clip = hit.clip
        span = f"{format_time(clip.start)} – {format_time(clip.end)}"
        typer.echo(f"{rank}. [{span}] {clip.source or '-'}  score {hit.score:.3f} ({hit.matched})")
        typer.echo(f"   {clip.question or clip.answer[:100]}")


@app.command()
def serve(
    index: IndexOption = Settings.model_fields["index"].default,
    host: Annotated[str, typer.Option(envvar=f"{ENV_PREFIX}HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar=f"{ENV_PREFIX}PORT", help="Port to listen on.")] = 8000,
    model: ModelOption = None,
    log_level: Annotated[str, typer.Option(envvar=f"{ENV_PREFIX}LOG_LEVEL", help="Log level.")] = "info",
) -> None:
    """Serve an index over HTTP: GET /search?q=QUESTION&k=N.

    A missing or broken index does not stop the server: it starts, logs why, and answers searches with 503.

    Example usage:

        clipsearch serve --index index/example --port 8000
    """
    import uvicorn

    from clipsearch.api import create_app

    try:
        settings = Settings(index=index, host=host, port=port, model=model, log_level=log_level)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def main() -> None:
    app(prog_name="clipsearch")


if __name__ == "__main__":
    sys.exit(main())
