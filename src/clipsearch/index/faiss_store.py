"""The FAISS vector store: a version's vector fields as FAISS files in its directory (the default backend).

Clip fields (``question``, ``answer``) hold one vector per clip, FAISS ids = clip rows. Span fields (``sentence``,
``passage``) hold vectors of answer pieces, FAISS ids = positions in a table of (clip row, char_start, char_end).
Each field's index type (flat, HNSW, IVF over 8-bit codes, rank-only) is chosen at build by :mod:`ann` and recorded
in the manifest's ``index_types``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from clipsearch.errors import IndexCorrupt
from clipsearch.index import ann
from clipsearch.index.layout import MANIFEST, SPAN_FILES, VECTOR_FILES


@dataclass
class ClipVectors:
    """One vector per clip (or none): ``matrix[position[row]]`` is clip ``row``'s vector, ``position[row] == -1``
    where the clip has none. ``matrix`` is float32 in the index, or float16 memory-mapped (``ivf_sq8``)."""

    index: faiss.Index
    matrix: np.ndarray
    position: np.ndarray

    @classmethod
    def of(cls, index: faiss.Index, clips: int, matrix: np.ndarray | None = None) -> ClipVectors:
        position = np.full(clips, -1, dtype=np.int64)
        if index.ntotal:
            position[faiss.vector_to_array(index.id_map)] = np.arange(index.ntotal)
        return cls(index, ann.stored_vectors(index) if matrix is None else matrix, position)

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of clip ``rows`` (each must have one)."""
        return self.matrix[self.position[rows]]

    def cosines(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Cosine of ``query`` with each clip row's vector; NaN where a clip has none."""
        sims = np.full(len(rows), np.nan, dtype=np.float32)
        pos = self.position[rows]
        present = pos >= 0
        sims[present] = ann.as_float32(self.matrix[pos[present]]) @ query
        return sims


@dataclass
class SpanVectors:
    """Vectors of answer pieces: ``index`` (FAISS, ids = positions) and ``spans[i] = (clip row, char_start, char_end)``."""

    index: faiss.Index | None  # None for a rank_only field
    matrix: np.ndarray
    spans: np.ndarray
    offsets: np.ndarray  # spans of clip row r are positions offsets[r]:offsets[r + 1]

    @classmethod
    def of(cls, index: faiss.Index | None, spans: np.ndarray, clips: int, matrix: np.ndarray | None = None
           ) -> SpanVectors:
        offsets = np.searchsorted(spans[:, 0], np.arange(clips + 1)) if len(spans) else np.zeros(clips + 1, int)
        return cls(index, ann.stored_vectors(index) if matrix is None else matrix, spans, offsets)

    def vectors_of(self, positions: np.ndarray) -> np.ndarray:
        return self.matrix[positions]

    def best(self, rows: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each clip row, the best cosine of ``query`` with one of its spans and that span's position
        (NaN and -1 for a clip without spans)."""
        first, last = self.offsets[rows], self.offsets[rows + 1]
        counts = last - first
        best = np.full(len(rows), np.nan, dtype=np.float32)
        at = np.full(len(rows), -1, dtype=np.int64)
        has = counts > 0
        if not has.any():
            return best, at
        first, counts = first[has], counts[has]
        # every span position of the rows, then the max of each row's segment
        starts = np.repeat(first - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        positions = starts + np.arange(counts.sum())
        sims = ann.as_float32(self.matrix[positions]) @ query
        bounds = np.concatenate(([0], np.cumsum(counts)[:-1]))
        best[has] = np.maximum.reduceat(sims, bounds)
        # position of each segment's max: the first index in the segment where sims equals the max
        segment = np.repeat(np.arange(len(counts)), counts)
        is_max = sims == best[has][segment]
        first_max = np.full(len(counts), -1, dtype=np.int64)
        hits = np.flatnonzero(is_max)
        first_max[segment[hits[::-1]]] = positions[hits[::-1]]
        at[has] = first_max
        return best, at


def _read_index(file: Path) -> faiss.Index:
    """A FAISS index file (its bytes were hashed against the manifest before: see ``integrity``)."""
    try:
        return faiss.read_index(str(file))
    except RuntimeError as exc:
        raise IndexCorrupt(f"{file}: not a readable FAISS index ({str(exc).splitlines()[0]})") from None


def index_type(manifest: dict, field: str) -> dict:
    """A field's index type and parameters as the manifest records them (flat when it records none)."""
    return manifest.get("index_types", {}).get(field, {"type": ann.FLAT})


def float16_vectors_file(index_file: str) -> str:
    """The float16 vectors file beside a field's index file: ``questions.faiss`` -> ``questions.f16.npy``."""
    return index_file.removesuffix(".faiss") + ann.FLOAT16_SUFFIX


def _float16_vectors(path: Path, index_file: str, info: dict, manifest: dict, field: str) -> np.ndarray | None:
    """A field's float16 vectors (memory-mapped), checked against the manifest's count and dimension."""
    if info["type"] not in (ann.IVF_SQ8, ann.RANK_ONLY):
        return None
    file = path / float16_vectors_file(index_file)
    matrix = _mapped(file)
    expected = (manifest["vectors_by_field"][field], manifest["dim"])
    if matrix.dtype != np.float16 or matrix.shape != expected:
        raise IndexCorrupt(f"{file}: {matrix.dtype} vectors of shape {matrix.shape}, {MANIFEST} says float16 "
                           f"{expected}")
    return matrix


def _mapped(file: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped; a header that does not parse is refused naming the file."""
    try:
        return ann.mapped(file)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise IndexCorrupt(f"{file}: not a readable .npy array ({exc})") from None


class FaissStore:
    """The vector fields of one version, loaded from its FAISS files (the :class:`VectorStore` of the FAISS backend).

    Example usage::

        store = FaissStore.load(version_dir, manifest, clips=len(clip_store))
        scores, rows = store.search("question", query_vectors, k=10)
    """

    backend = "faiss"

    def __init__(self, manifest: dict, vectors: dict[str, ClipVectors], spans: dict[str, SpanVectors]):
        self.manifest = manifest
        self.vectors = vectors
        self.spans = spans

    @classmethod
    def load(cls, path: Path, manifest: dict, clips: int) -> FaissStore:
        """Load every field of the version at ``path``, each checked against the manifest's counts and dimension.

        Raises:
            IndexCorrupt: a field's vector count or dimension differs from the manifest (the message names the file).
        """
        vectors = {}
        for field, name in VECTOR_FILES.items():
            info = index_type(manifest, field)
            index = _read_index(path / name)
            expected = manifest["vectors_by_field"][field]
            if index.d != manifest["dim"] or index.ntotal != expected:
                raise IndexCorrupt(
                    f"{path / name}: {index.ntotal} vectors of dim {index.d}, "
                    f"{MANIFEST} says {expected} of dim {manifest['dim']}"
                )
            vectors[field] = ClipVectors.of(index, clips, _float16_vectors(path, name, info, manifest, field))
        spans = {}
        for kind, (index_name, spans_name) in SPAN_FILES.items():
            info = index_type(manifest, kind)
            index = None if info["type"] == ann.RANK_ONLY else _read_index(path / index_name)
            if index is not None and (index.d != manifest["dim"] or index.ntotal != manifest["vectors_by_field"][kind]):
                raise IndexCorrupt(f"{path / index_name}: {index.ntotal} vectors of dim {index.d}, {MANIFEST} says "
                                   f"{manifest['vectors_by_field'][kind]} of dim {manifest['dim']}")
            matrix = _float16_vectors(path, index_name, info, manifest, kind)
            count, dim = (index.ntotal, index.d) if index is not None else matrix.shape
            table = _mapped(path / spans_name)
            expected = manifest["vectors_by_field"][kind]
            if table.ndim != 2 or table.shape[1] != 3 or table.dtype.kind != "i":
                raise IndexCorrupt(f"{path / spans_name}: {table.dtype} array of shape {table.shape}, expected "
                                   f"({expected}, 3) integers (clip row, char_start, char_end)")
            if dim != manifest["dim"] or count != expected or len(table) != expected:
                raise IndexCorrupt(
                    f"{path / index_name}: {count} vectors of dim {dim} and {len(table)} spans, "
                    f"{MANIFEST} says {expected} of dim {manifest['dim']}"
                )
            spans[kind] = SpanVectors.of(index, table, clips, matrix)
        return cls(manifest, vectors, spans)

    @property
    def span_fields(self) -> tuple[str, ...]:
        return tuple(self.spans)

    def search(self, field: str, queries: np.ndarray, k: int, rows: np.ndarray | None = None,
               where: dict | None = None):
        """Top ``k`` ids by inner product of ``field`` vectors, optionally only among ``rows`` (ids; ``where``, the
        same filter by field values, is for backends that filter inside their engine).

        Returns:
            (scores, ids) arrays of shape (len(queries), k'); ids are -1 where fewer than k exist. Ids are clip rows
            for question and answer vectors, span positions for sentences and passages.
        """
        holder = self.vectors[field] if field in self.vectors else self.spans[field]
        k = min(k, len(holder.matrix))
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        info = index_type(self.manifest, field)
        kind = info["type"]
        if kind == ann.RANK_ONLY:
            if rows is not None:
                raise ValueError(f"the {field} field is rank-only: it cannot be searched among rows")
            return ann.exact_scan(queries, k, holder.matrix)
        exact = None
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            if isinstance(holder, ClipVectors):
                positions = holder.position[rows]
                ids, positions = rows[positions >= 0], positions[positions >= 0]
            else:
                ids = positions = rows
            if len(ids) <= ann.EXACT_FILTERED_MAX:
                exact = (ids, ann.as_float32(holder.matrix[positions]))
        if kind != ann.IVF_SQ8:
            return ann.search(holder.index, info, queries, k, rows, exact)
        fetch = min(max(k * int(info.get("rerank", 4)), k), holder.index.ntotal)
        _, found = ann.search(holder.index, info, queries, fetch, rows, exact)
        return ann.rerank(queries, found, holder.vectors_of, k)

    def searchable(self, field: str) -> bool:
        """Whether a field has an index to find candidates with (a rank_only field only ranks them)."""
        return index_type(self.manifest, field)["type"] != ann.RANK_ONLY

    def cosines(self, field: str, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Cosine of ``query`` with clip field ``field``'s vector of each clip row; NaN where a clip has none."""
        return self.vectors[field].cosines(rows, query)

    def best_spans(self, field: str, rows: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each clip row, the best cosine of ``query`` with one of its ``field`` spans and that span's position
        (NaN and -1 for a clip without spans)."""
        return self.spans[field].best(rows, query)

    def span_table(self, field: str) -> np.ndarray:
        """The (clip row, char_start, char_end) of every position of span field ``field``, sorted by clip row."""
        return self.spans[field].spans

    def search_cost(self, field: str) -> float:
        """A rough relative cost of searching ``field`` (vectors scanned), to hand out the costliest first."""
        info = self.manifest.get("index_types", {}).get(field, {})
        count = self.manifest["vectors_by_field"].get(field, 0)
        if "nlist" in info:  # IVF: the probed lists
            return count * info.get("nprobe", 1) / info["nlist"]
        if info.get("type", "flat") == "flat":
            return count
        return 4.0 * info.get("efSearch", 256)  # HNSW: a walk visits a few times efSearch vectors
