"""What the commands share: the Typer apps, options read from the one Settings table, and how errors print."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

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
QueriesOption = Annotated[
    list[Path],
    typer.Option("--queries", help='Labelled questions, JSON lines {"qid", "query", "relevant"}: relevant lists '
                 "the clip ids that answer it, none = should not be answered. Repeatable."),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", "-m", envvar=f"{ENV_PREFIX}MODEL",
                 help="Model name or path; must match the model the index was built with. Default: the index's."),
]


class GroupBy(str, Enum):
    video = "video"


class CorpusEncoder(str, Enum):
    onnx = "onnx"
    torch = "torch"


def _setting(name: str, *flags: str, **options) -> typer.models.OptionInfo:
    """The option of setting ``name``: its env var and help come from the one Settings table."""
    info = Settings.model_fields[name]
    return typer.Option(*flags, envvar=f"{ENV_PREFIX}{name.upper()}", help=info.description, **options)


def _default(name: str):
    return Settings.model_fields[name].get_default(call_default_factory=True)


# Where a field's index type changes (index build)
FlatMaxVectorsOption = Annotated[int, _setting("flat_max_vectors", "--flat-max-vectors", min=0)]
FloatMaxVectorsOption = Annotated[int, _setting("float_max_vectors", "--float-max-vectors", min=0)]
SpanSearchMaxVectorsOption = Annotated[int, _setting("span_search_max_vectors", "--span-search-max-vectors", min=0)]
PassageSearchMaxVectorsOption = Annotated[
    int, _setting("passage_search_max_vectors", "--passage-search-max-vectors", min=0)
]


def fail(exc: ClipsearchError) -> typer.Exit:
    """Print a domain error and exit: 2 for bad input, 1 for everything else."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2 if isinstance(exc, CorpusError) else 1)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
