"""The vector-store seam: what search asks of a version's vector fields, whichever backend holds them.

The Searcher talks to a :class:`VectorStore` only, so a second backend (a Milvus collection, say) plugs in by
implementing this protocol and naming itself in the manifest's ``backend`` key; search and serving do not change.
FAISS files in the version directory (:class:`clipsearch.index.faiss_store.FaissStore`) are the default.

Fields: ``question`` and ``answer`` hold one vector per clip (ids are clip rows); ``sentence`` and ``passage`` hold
vectors of answer pieces (ids are positions in the field's span table of (clip row, char_start, char_end)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from clipsearch.errors import IndexCorrupt
from clipsearch.index.layout import MANIFEST

CLIP_FIELDS = ("question", "answer")
SPAN_FIELDS = ("sentence", "passage")
BACKENDS = ("faiss", "milvus")


class VectorStore(Protocol):
    """The vector fields of one index version."""

    backend: str

    @property
    def span_fields(self) -> tuple[str, ...]:
        """The span fields this version holds, in :data:`SPAN_FIELDS` order."""

    def search(self, field: str, queries: np.ndarray, k: int, rows: np.ndarray | None = None,
               where: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) by inner product per query, only among ids ``rows`` when given; -1 pads.

        ``where`` is the same filter by field values (``{"source": [...], "video_id": [...]}``): a backend that
        filters inside its engine (Milvus) uses it instead of ``rows``."""

    def searchable(self, field: str) -> bool:
        """Whether ``field`` can find candidates (a rank-only field only ranks the others' candidates)."""

    def cosines(self, field: str, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Cosine of ``query`` with each clip row's vector of clip field ``field`` (NaN where it has none)."""

    def best_spans(self, field: str, rows: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per clip row, the best cosine with one of its spans of ``field`` and that span's position (NaN, -1)."""

    def span_table(self, field: str) -> np.ndarray:
        """(clip row, char_start, char_end) of every position of span field ``field``."""

    def search_cost(self, field: str) -> float:
        """A relative cost of searching ``field``, so a search hands out the costliest first."""


def open_vector_store(path: Path, manifest: dict, clips: int) -> VectorStore:
    """The vector store of the version at ``path``, by the backend its manifest names (``faiss`` when none).

    Raises:
        IndexCorrupt: the manifest names a backend this clipsearch does not have, or the store disagrees with it.
    """
    backend = manifest.get("backend", "faiss")
    if backend == "faiss":
        from clipsearch.index.faiss_store import FaissStore

        return FaissStore.load(path, manifest, clips)
    if backend == "milvus":
        from clipsearch.index.milvus_store import MilvusStore

        return MilvusStore.load(path, manifest, clips)
    raise IndexCorrupt(f"{path / MANIFEST}: unknown vector backend {backend!r}; this clipsearch has {', '.join(BACKENDS)}")
