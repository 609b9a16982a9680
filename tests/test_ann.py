"""Index type by size: exact flat up to ``flat_max_vectors``, HNSW above it; recorded, persisted, filtered."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from clipsearch import ann
from clipsearch.build import build_index
from clipsearch.index import ClipIndex
from clipsearch.search import Searcher
from conftest import EXAMPLE_CORPUS
from test_onnx_encoder import QUESTIONS


def unit_vectors(count: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("with_ids", [False, True], ids=["positions", "id map"])
def test_above_the_limit_a_field_gets_hnsw_with_near_exact_recall(with_ids):
    vectors, queries = unit_vectors(3000), unit_vectors(50, seed=1)
    ids = np.arange(3000, dtype=np.int64) * 7 if with_ids else None
    flat, flat_info = ann.build(vectors, ids, flat_max_vectors=3000)
    hnsw, hnsw_info = ann.build(vectors, ids, flat_max_vectors=2999)

    assert flat_info == {"type": "flat"}
    assert hnsw_info == {"type": "hnsw", **ann.HNSW_PARAMS}
    inner = faiss.downcast_index(hnsw.index) if with_ids else hnsw
    assert isinstance(inner, faiss.IndexHNSWFlat)
    assert np.array_equal(ann.stored_vectors(hnsw), vectors)
    _, exact = ann.search(flat, flat_info, queries, 10)
    _, approx = ann.search(hnsw, hnsw_info, queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9


def test_a_filtered_hnsw_search_keeps_to_the_filter_and_small_filters_are_exact():
    vectors, queries = unit_vectors(3000), unit_vectors(5, seed=2)
    hnsw, info = ann.build(vectors, None, flat_max_vectors=100)
    flat, flat_info = ann.build(vectors, None, flat_max_vectors=10_000)
    allowed = np.arange(0, 3000, 3, dtype=np.int64)

    exact = ann.search(hnsw, info, queries, 10, allowed, (allowed, vectors[allowed]))
    walked = ann.search(hnsw, info, queries, 10, allowed)
    reference = ann.search(flat, flat_info, queries, 10, allowed)

    assert np.array_equal(exact[1], reference[1])
    assert np.allclose(exact[0], reference[0], atol=1e-5)
    assert set(walked[1].ravel()) <= set(allowed)


@pytest.fixture(scope="module")
def hnsw_and_flat(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("ann")
    cache = root / "cache"
    hnsw = build_index(EXAMPLE_CORPUS, root / "hnsw", cache_dir=cache, flat_max_vectors=10).index
    flat = build_index(EXAMPLE_CORPUS, root / "flat", cache_dir=cache).index
    return hnsw, flat


def test_the_manifest_records_the_index_type_and_its_parameters(hnsw_and_flat):
    hnsw, flat = hnsw_and_flat

    assert flat.manifest["index_type"] == "flat"
    assert set(t["type"] for t in flat.manifest["index_types"].values()) == {"flat"}
    assert hnsw.manifest["index_type"] == "hnsw" and hnsw.manifest["flat_max_vectors"] == 10
    for field, count in hnsw.manifest["vectors_by_field"].items():
        expected = {"type": "hnsw", "M": 32, "efConstruction": 40, "efSearch": 256} if count > 10 else {"type": "flat"}
        assert hnsw.manifest["index_types"][field] == expected


def test_an_hnsw_index_is_loaded_from_disk_and_answers_as_the_flat_one(hnsw_and_flat, encoder):
    hnsw, flat = hnsw_and_flat
    reopened = ClipIndex.open(hnsw.root)  # read back from disk, nothing rebuilt
    assert isinstance(faiss.downcast_index(reopened.vectors["answer"].index.index), faiss.IndexHNSWFlat)
    ours, theirs = Searcher(reopened, encoder), Searcher(flat, encoder)

    for question in QUESTIONS[:10]:
        assert ours.search(question, k=10).to_dict()["results"] == theirs.search(question, k=10).to_dict()["results"]
    coffee = {"source": ["Bean Lab"]}
    for question in ("how fine should I grind for espresso", "my chain squeaks"):
        results = ours.search(question, k=5, filters=coffee).results
        assert results and all(hit.clip.source == "Bean Lab" for hit in results)
        assert [h.clip.id for h in results] == [h.clip.id for h in theirs.search(question, k=5, filters=coffee).results]
