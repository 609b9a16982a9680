"""Vector indexes by size: exact flat up to ``flat_max_vectors`` vectors, HNSW above it.

A field (question, answer, sentence or passage vectors) with more vectors than the limit gets a FAISS
``IndexHNSWFlat`` on inner product; its parameters are recorded in the manifest (``index_types``) and it is saved
with the version, so nothing is rebuilt at start-up. Both kinds keep the float32 vectors, which the ranking reads
for its per-clip cosines. Parameters: M=32 links per node, efConstruction 40, efSearch 256 (raised to k when a
search asks for more). On the 10k-clip synthetic corpus of ``scripts/bench_perf.py`` (62k sentence vectors)
efSearch 64 / 128 / 256 gave recall@10 0.88 / 0.93 / 0.988 against exact search at 0.4 / 0.6 / 1.0 ms a query
(issue 7).
"""

from __future__ import annotations

import faiss
import numpy as np

FLAT = "flat"
HNSW = "hnsw"
#: Fields with at most this many vectors stay exact (flat); the default of ``--flat-max-vectors``.
FLAT_MAX_VECTORS = 20_000
HNSW_PARAMS = {"M": 32, "efConstruction": 40, "efSearch": 256}
#: A filtered search over at most this many vectors scores them exactly instead of walking the HNSW graph (a
#: graph walk restricted to a small subset misses much of it).
EXACT_FILTERED_MAX = 10_000


def build(matrix: np.ndarray, ids: np.ndarray | None, flat_max_vectors: int) -> tuple[faiss.Index, dict]:
    """An inner-product index of ``matrix`` (rows L2-normalised), flat or HNSW by size, and its description for the
    manifest. With ``ids`` it is wrapped in ``IndexIDMap2`` (FAISS ids = ``ids``), else ids are row positions."""
    dim = matrix.shape[1]
    if len(matrix) > flat_max_vectors:
        inner = faiss.IndexHNSWFlat(dim, HNSW_PARAMS["M"], faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_PARAMS["efConstruction"]
        inner.hnsw.efSearch = HNSW_PARAMS["efSearch"]
        info = {"type": HNSW, **HNSW_PARAMS}
    else:
        inner = faiss.IndexFlatIP(dim)
        info = {"type": FLAT}
    if ids is None:
        index = inner
        index.add(matrix)
    else:
        index = faiss.IndexIDMap2(inner)
        if len(ids):
            index.add_with_ids(matrix, ids)
    return index, info


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

    Args:
        info: the index's manifest description (``{"type": "flat"}`` or HNSW with its parameters).
        exact: for a filtered HNSW search, the allowed ``(ids, vectors)``: when there are at most
            ``EXACT_FILTERED_MAX`` of them they are scored exactly instead.
    """
    if info.get("type", FLAT) == FLAT:
        params = None if ids is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
        return index.search(queries, k, params=params)
    if exact is not None and len(exact[0]) <= EXACT_FILTERED_MAX:
        return _exact(queries, k, *exact)
    params = faiss.SearchParametersHNSW()
    params.efSearch = max(int(info.get("efSearch", HNSW_PARAMS["efSearch"])), k)
    if ids is not None:
        params.sel = faiss.IDSelectorBatch(ids)
    return index.search(queries, k, params=params)


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
