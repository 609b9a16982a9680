"""clipsearch: semantic question answering over video clip transcripts.

The public API, importable from here; each name is loaded on first use, so ``import clipsearch`` (and
``clipsearch --help``) does not load torch or FAISS::

    from clipsearch import Searcher, build_index, read_clips

    build_index(["examples/clips.jsonl"], "index/example")
    answer = Searcher.open("index/example").search("how do I fix a flat tyre?", k=3)

The stages, each a subpackage importing only those below it: ``serve`` and ``evaluate`` -> ``search`` ->
``index`` -> ``scoring``, ``encode``, ``ingest`` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from clipsearch._version import __version__

#: Public name -> the module that defines it.
_PUBLIC = {
    "Answer": "clipsearch.search.answer",
    "Hit": "clipsearch.search.answer",
    "Searcher": "clipsearch.search.searcher",
    "ClipIndex": "clipsearch.index.clip_index",
    "build_index": "clipsearch.index.build",
    "BuildResult": "clipsearch.index.build",
    "Clip": "clipsearch.ingest.clip_record",
    "read_clips": "clipsearch.ingest.corpus",
    "Segmentation": "clipsearch.ingest.segmentation",
    "Encoder": "clipsearch.encode.torch_encoder",
    "run_benchmark": "clipsearch.evaluate.benchmark",
    "read_queries": "clipsearch.evaluate.benchmark",
    "Settings": "clipsearch.settings",
    "ClipsearchError": "clipsearch.errors",
    "CorpusError": "clipsearch.errors",
}

__all__ = [
    "Answer",
    "BuildResult",
    "Clip",
    "ClipIndex",
    "ClipsearchError",
    "CorpusError",
    "Encoder",
    "Hit",
    "Searcher",
    "Segmentation",
    "Settings",
    "__version__",
    "build_index",
    "read_clips",
    "read_queries",
    "run_benchmark",
]

if TYPE_CHECKING:
    from clipsearch.encode.torch_encoder import Encoder
    from clipsearch.errors import ClipsearchError, CorpusError
    from clipsearch.evaluate.benchmark import read_queries, run_benchmark
    from clipsearch.index.build import BuildResult, build_index
    from clipsearch.index.clip_index import ClipIndex
    from clipsearch.ingest.clip_record import Clip
    from clipsearch.ingest.corpus import read_clips
    from clipsearch.ingest.segmentation import Segmentation
    from clipsearch.search.answer import Answer, Hit
    from clipsearch.search.searcher import Searcher
    from clipsearch.settings import Settings


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clipsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
