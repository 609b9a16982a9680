"""Vector indexes by size: exact flat, HNSW, IVF over 8-bit codes, or no index at all.

Each field (question, answer, sentence or passage vectors) gets a type by its vector count, recorded in the
manifest (``index_types``) and saved with the version, so nothing is rebuilt at start-up:

- ``flat``: up to ``flat_max_vectors`` (5,000): exact search, float32 vectors in RAM. A flat scan reads every
  vector: 3.2 ms a query for 10,000 of them against 0.2 ms for HNSW at recall@10 0.997 (issue 7).
- ``hnsw``: up to ``float_max_vectors`` (50,000): ``IndexHNSWFlat``, float32 vectors in RAM. M=32 links per
  node, efConstruction 40, efSearch 256 (raised to k when a search asks for more). On the 10k-clip synthetic corpus
  of ``scripts/bench_perf.py`` (62k sentence vectors) efSearch 64 / 128 / 256 gave recall@10 0.88 / 0.93 / 0.988
  against exact search at 0.4 / 0.6 / 1.0 ms a query (issue 7).
- ``ivf_sq8``: above that, ``IndexIVFScalarQuantizer``: 8-bit codes (384 bytes a vector instead of 1,536) in
  ``nlist`` = 4·√n inverted lists, ``nprobe`` of them scanned a query (chosen at build time, see :func:`build`);
  the float vectors are kept as float16 in a ``.f16.npy`` file beside the index, memory-mapped, and read only to
  re-rank the ``rerank`` × k best codes exactly. On the 100k-clip synthetic corpus (near-duplicate clusters, see ``scripts/bench_perf.py``) it gave
  recall@10 0.991 for 100k questions in 0.22 ms and 0.998 for 618k sentences in 0.68 ms, where HNSW (float32,
  efSearch 256) gave 0.923 and, over 8-bit codes, 0.787 (issue 7).
- ``rank_only``: sentence and passage fields above ``span_search_max_vectors`` (2,000,000) get no index: their
  float16 vectors are read only to rank the candidate clips the other fields and BM25 find. A million clips hold
  about 6 million sentences; an index of them would not fit a 2.5 GB budget. The passage field is rank-only
  already above ``passage_search_max_vectors`` (50,000): an IVF of passages was the costliest part of a search at
  100k clips (4.4 ms of 428k passages at nprobe 128, where the sentence IVF took 2.0) and the candidates it added
  are found when the other fields read deeper (the searcher reads them 1.4 times as deep when a field only ranks):
  TutorialVQA dev questions over the 100k-clip synthetic corpus, Recall@10 / MRR@10 0.5430 / 0.4320 with
  passages searched, 0.5438 / 0.4345 without and deeper, search 10.0 -> 7.2 ms on one thread (issue 7).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

FLAT = "flat"
HNSW = "hnsw"
IVF_SQ8 = "ivf_sq8"
RANK_ONLY = "rank_only"
#: The types by how far they scale; the manifest's ``index_type`` names the furthest one a version uses.
TYPES = (FLAT, HNSW, IVF_SQ8, RANK_ONLY)
#: Fields with at most this many vectors stay exact (flat); the default of ``--flat-max-vectors``.
FLAT_MAX_VECTORS = 5_000
#: Fields with at most this many vectors keep float32 vectors in RAM; the default of ``--float-max-vectors``.
FLOAT_MAX_VECTORS = 50_000
#: Sentence and passage fields with more vectors than this get no index; the default of
#: ``--span-search-max-vectors``.
SPAN_SEARCH_MAX_VECTORS = 2_000_000
#: A passage field with more vectors than this gets no index; the default of ``--passage-search-max-vectors``.
PASSAGE_SEARCH_MAX_VECTORS = 50_000
HNSW_PARAMS = {"M": 32, "efConstruction": 40, "efSearch": 256}
#: ``nprobe``: inverted lists scanned a query; ``rerank``: how many times k codes are re-ranked exactly.
IVF_SQ8_PARAMS = {"nprobe": 32, "rerank": 4}
#: Training points per inverted list (k-means), at most.
TRAIN_PER_LIST = 50
#: The suffix of a field's float16 vectors (``ivf_sq8`` and ``rank_only`` fields): ``questions.f16.npy``.
FLOAT16_SUFFIX = ".f16.npy"


@dataclass(frozen=True)
class Limits:
    """Where a field switches type (see the module docstring); set at build time."""

    flat_max_vectors: int = FLAT_MAX_VECTORS
    float_max_vectors: int = FLOAT_MAX_VECTORS
    span_search_max_vectors: int = SPAN_SEARCH_MAX_VECTORS
    passage_search_max_vectors: int = PASSAGE_SEARCH_MAX_VECTORS

    def type_for(self, count: int, *, span: bool, passage: bool = False) -> str:
        """The type of a field of ``count`` vectors; only sentence and passage fields (``span``) may be rank-only,
        passages (``passage``) from a lower count."""
        if span and count > self.span_search_max_vectors:
            return RANK_ONLY
        if passage and count > self.passage_search_max_vectors:
            return RANK_ONLY
        if count <= self.flat_max_vectors:
            return FLAT
        return HNSW if count <= self.float_max_vectors else IVF_SQ8

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: A filtered search over at most this many vectors scores them exactly instead of walking the HNSW graph (a
#: graph walk restricted to a small subset misses much of it).
EXACT_FILTERED_MAX = 10_000


def build(
    matrix: np.ndarray, ids: np.ndarray | None, kind: str, probes: np.ndarray | None = None
) -> tuple[faiss.Index | None, dict]:
    """An inner-product index of ``matrix`` (rows L2-normalised) of type ``kind``, and its description for the
    manifest. With ``ids`` it is wrapped in an ID map (FAISS ids = ``ids``), else ids are row positions.

    ``ivf_sq8`` holds only 8-bit codes and ``rank_only`` is no index (None): the caller keeps their float vectors
    (:func:`save_float16`). With ``probes`` (query-like vectors, e.g. a sample of the questions) an ``ivf_sq8``
    index gets the smallest ``nprobe`` of ``NPROBE_STEPS`` whose recall@10 against an exact scan reaches
    ``RECALL_TARGET`` on them, recorded with that recall.
    """
    dim = matrix.shape[1]
    if kind == RANK_ONLY:
        return None, {"type": RANK_ONLY}
    if kind == FLAT:
        inner, params = faiss.IndexFlatIP(dim), {}
    elif kind == HNSW:
        inner, params = faiss.IndexHNSWFlat(dim, HNSW_PARAMS["M"], faiss.METRIC_INNER_PRODUCT), HNSW_PARAMS
        inner.hnsw.efConstruction = params["efConstruction"]
        inner.hnsw.efSearch = params["efSearch"]
    elif kind == IVF_SQ8:
        nlist = ivf_lists(len(matrix))
        inner = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        inner.nprobe = min(IVF_SQ8_PARAMS["nprobe"], nlist)
        params = {"nlist": nlist, **IVF_SQ8_PARAMS}
        # k-means of the lists and the 8-bit ranges, on up to TRAIN_PER_LIST evenly spaced vectors per list
        inner.train(as_float32(matrix[:: max(1, len(matrix) // (nlist * TRAIN_PER_LIST))]))
    else:
        raise ValueError(f"unknown index type {kind!r}; types are: {', '.join(TYPES)}")
    # IDMap2 can give a vector back by id (flat and HNSW-flat vectors are read through it); 8-bit codes are not
    # read back (their float16 file is), and IDMap spares them IDMap2's reverse table (about 50 bytes an id).
    index = inner if ids is None else (faiss.IndexIDMap(inner) if kind == IVF_SQ8 else faiss.IndexIDMap2(inner))
    for start in range(0, len(matrix), ADD_CHUNK):
        part = as_float32(matrix[start : start + ADD_CHUNK])
        if ids is None:
            index.add(part)
        else:
            index.add_with_ids(part, np.ascontiguousarray(ids[start : start + ADD_CHUNK], dtype=np.int64))
    if kind == IVF_SQ8 and probes is not None and len(probes) and len(matrix):
        params = {**params, **_calibrated_nprobe(inner, matrix, as_float32(probes), params)}
    return index, {"type": kind, **params}


#: The nprobe values a build tries, smallest first, and the recall@10 it asks of them.
NPROBE_STEPS = (16, 32, 64, 128, 256, 512)
RECALL_TARGET = 0.98


def _calibrated_nprobe(index: faiss.Index, matrix: np.ndarray, probes: np.ndarray, params: dict) -> dict:
    """The smallest nprobe whose re-ranked top 10 of ``probes`` reaches RECALL_TARGET against an exact scan (the
    largest tried when none does), and that recall."""
    k = min(10, len(matrix))
    _, exact = exact_scan(probes, k, matrix)
    steps = [n for n in NPROBE_STEPS if n < params["nlist"]] + [params["nlist"]]
    for nprobe in steps:
        _, found = search(index, {"type": IVF_SQ8, **params, "nprobe": nprobe}, probes, k * params["rerank"])
        _, ranked = rerank(probes, found, lambda rows: matrix[rows], k)
        recall = float(np.mean([len(set(a) & set(e)) / k for a, e in zip(ranked, exact)]))
        if recall >= RECALL_TARGET:
            break
    return {"nprobe": nprobe, "probe_recall@10": round(recall, 4)}


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: 4·√n, and at least 39 training vectors each (FAISS's minimum)."""
    return max(1, min(int(4 * np.sqrt(count)), count // 39))


#: Vectors added to an index at a time (a float16 or memory-mapped matrix is converted chunk by chunk).
ADD_CHUNK = 100_000


def as_float32(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as C-contiguous float32 (as FAISS takes them). numpy converts float16 one value at a time (1.8 ms
    for 2,500 vectors of 384); torch's conversion is vectorised (0.3 ms), and torch is loaded with the encoder
    anyway."""
    if vectors.dtype != np.float16 or vectors.size < 4096:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    import torch

    return torch.from_numpy(np.require(vectors, requirements=("C", "W"))).float().numpy()


def save_float16(path: Path, matrix: np.ndarray) -> None:
    """Write ``matrix`` as a float16 ``.npy`` chunk by chunk (it may be memory-mapped and larger than RAM)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=matrix.shape)
    for start in range(0, len(matrix), ADD_CHUNK):
        out[start : start + ADD_CHUNK] = matrix[start : start + ADD_CHUNK]
    out.flush()
    del out


def load_float16(path: Path) -> np.ndarray:
    """A field's float16 vectors, memory-mapped read-only: pages are read when a search touches them."""
    return mapped(path)


def mapped(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only, as a plain ndarray over the mapping: indexing a ``np.memmap``
    wraps every result in a memmap again, 1 ms a search at 100k clips (issue 7)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def stored_vectors(index: faiss.Index) -> np.ndarray:
    """A zero-copy (ntotal, d) float32 view of the vectors a flat or HNSW-flat index holds (through an IDMap)."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if isinstance(inner, faiss.IndexHNSW):
        inner = faiss.downcast_index(inner.storage)
    if inner.ntotal == 0:
        return np.zeros((0, inner.d), dtype=np.float32)
    return faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d).reshape(inner.ntotal, inner.d)


def search(
    index: faiss.Index, info: dict, queries: np.ndarray, k: int, ids: np.ndarray | None = None,
    exact: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (scores, ids) by inner product, optionally among ``ids`` only.

    For ``ivf_sq8`` the scores are those of the 8-bit codes; the caller re-ranks (see ``ClipIndex.search``).

    Args:
        info: the index's manifest description (``{"type": "flat"}``, or HNSW or IVF with its parameters).
        exact: for a filtered HNSW or IVF search, the allowed ``(ids, vectors)``: when there are at most
            ``EXACT_FILTERED_MAX`` of them they are scored exactly instead.
    """
    kind = info.get("type", FLAT)
    if kind == FLAT:
        params = None if ids is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
        return index.search(queries, k, params=params)
    if kind == RANK_ONLY:
        raise ValueError("a rank_only field has no index to search; use exact_scan over its vectors")
    if exact is not None and len(exact[0]) <= EXACT_FILTERED_MAX:
        return _exact(queries, k, *exact)
    if kind == IVF_SQ8:
        params = faiss.SearchParametersIVF()
        params.nprobe = int(info.get("nprobe", IVF_SQ8_PARAMS["nprobe"]))
    else:
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(int(info.get("efSearch", HNSW_PARAMS["efSearch"])), k)
    if ids is not None:
        params.sel = faiss.IDSelectorBatch(ids)
    return index.search(queries, k, params=params)


def exact_scan(queries: np.ndarray, k: int, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` (scores, positions) over ``vectors`` of any float type, read chunk by chunk."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), ADD_CHUNK):
        part = as_float32(vectors[start : start + ADD_CHUNK])
        scores, found = _exact(queries, k, np.arange(start, start + len(part)), part)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_ids = np.concatenate([best_ids, found], axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(best_scores, order, 1)
        best_ids = np.take_along_axis(best_ids, order, 1)
    return best_scores, best_ids


def rerank(queries: np.ndarray, ids: np.ndarray, vectors_of, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of each row of ``ids`` (-1 = none) by exact inner product; ``vectors_of(ids)`` gives their
    vectors."""
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    found = np.full((len(queries), k), -1, dtype=np.int64)
    for row, query in enumerate(queries):
        valid = ids[row][ids[row] >= 0]
        if not len(valid):
            continue
        sims = as_float32(vectors_of(valid)) @ query
        order = np.lexsort((valid, -sims))[:k]
        scores[row, : len(order)] = sims[order]
        found[row, : len(order)] = valid[order]
    return scores, found


def _exact(queries: np.ndarray, k: int, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    found = np.full((len(queries), k), -1, dtype=np.int64)
    if len(ids) == 0:
        return scores, found
    sims = queries @ vectors.T
    take = min(k, len(ids))
    top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
    for row in range(len(queries)):
        order = top[row][np.argsort(-sims[row, top[row]], kind="stable")]
        scores[row, :take] = sims[row, order]
        found[row, :take] = ids[order]
    return scores, found
