"""Index type by size: flat, HNSW, IVF over 8-bit codes, rank-only; recorded, persisted, filtered."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from conftest import EXAMPLE_CORPUS
from test_onnx_encoder import QUESTIONS

from clipsearch.index import ann, build
from clipsearch.index.build import build_index
from clipsearch.index.clip_index import ClipIndex
from clipsearch.search.searcher import Searcher


def unit_vectors(count: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_field_gets_its_type_by_its_size():
    limits = ann.Limits(flat_max_vectors=100, float_max_vectors=1000, span_search_max_vectors=5000)

    assert [limits.type_for(n, span=False) for n in (0, 100, 101, 1000, 1001, 10**9)] == [
        "flat", "flat", "hnsw", "hnsw", "ivf_sq8", "ivf_sq8"]
    assert [limits.type_for(n, span=True) for n in (100, 1001, 5000, 5001)] == ["flat", "ivf_sq8", "ivf_sq8",
                                                                                "rank_only"]
    passages = ann.Limits(flat_max_vectors=100, float_max_vectors=1000, passage_search_max_vectors=2000)
    assert [passages.type_for(n, span=True, passage=True) for n in (100, 2000, 2001)] == ["flat", "ivf_sq8",
                                                                                        "rank_only"]
    assert passages.type_for(2001, span=True) == "ivf_sq8"  # sentences keep their index


@pytest.mark.parametrize("with_ids", [False, True], ids=["positions", "id map"])
def test_above_the_limit_a_field_gets_hnsw_with_near_exact_recall(with_ids):
    vectors, queries = unit_vectors(3000), unit_vectors(50, seed=1)
    ids = np.arange(3000, dtype=np.int64) * 7 if with_ids else None
    flat, flat_info = ann.build(vectors, ids, "flat")
    hnsw, hnsw_info = ann.build(vectors, ids, "hnsw")

    assert flat_info == {"type": "flat"}
    assert hnsw_info == {"type": "hnsw", **ann.HNSW_PARAMS}
    inner = faiss.downcast_index(hnsw.index) if with_ids else hnsw
    assert isinstance(inner, faiss.IndexHNSWFlat)
    assert np.array_equal(ann.stored_vectors(hnsw), vectors)
    _, exact = ann.search(flat, flat_info, queries, 10)
    _, approx = ann.search(hnsw, hnsw_info, queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9


def test_8_bit_codes_find_candidates_and_float16_vectors_rank_them_exactly(tmp_path):
    vectors, queries = unit_vectors(3000), unit_vectors(50, seed=1)
    ids = np.arange(3000, dtype=np.int64) * 7
    flat, flat_info = ann.build(vectors, ids, "flat")
    compact, info = ann.build(vectors, ids, "ivf_sq8")
    ann.save_float16(tmp_path / "v.f16.npy", vectors)
    stored = ann.load_float16(tmp_path / "v.f16.npy")

    assert info == {"type": "ivf_sq8", "nlist": ann.ivf_lists(3000), **ann.IVF_SQ8_PARAMS}
    assert isinstance(faiss.downcast_index(compact.index), faiss.IndexIVFScalarQuantizer)
    assert isinstance(stored.base, np.memmap) and stored.dtype == np.float16 and not stored.flags.writeable
    assert np.abs(stored - vectors).max() < 1e-3
    exact_scores, exact = ann.search(flat, flat_info, queries, 10)
    _, found = ann.search(compact, {**info, "nprobe": info["nlist"]}, queries, 40)  # every list: only codes err
    scores, ranked = ann.rerank(queries, found, lambda rows: stored[rows // 7], 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ranked, exact)]) >= 0.99
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    hits = ranked == exact
    assert np.allclose(scores[hits], exact_scores[hits], atol=2e-3)  # float16 vectors, exact products
    _, probed = ann.search(compact, info, queries, 40)  # nprobe of the lists: random vectors are the worst case
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(probed, exact)]) >= 0.5


def test_a_build_with_probe_queries_records_the_smallest_nprobe_that_reaches_the_recall_target():
    vectors, probes = unit_vectors(3000), unit_vectors(64, seed=4)
    _, flat_info = ann.build(vectors, None, "flat")
    index, info = ann.build(vectors, None, "ivf_sq8", probes)
    _, exact = ann.exact_scan(probes, 10, vectors)

    def recall(nprobe):
        _, found = ann.search(index, {**info, "nprobe": nprobe}, probes, 40)
        _, ranked = ann.rerank(probes, found, lambda rows: vectors[rows], 10)
        return np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ranked, exact)])

    steps = [n for n in ann.NPROBE_STEPS if n < info["nlist"]] + [info["nlist"]]
    assert info["nprobe"] in steps and info["probe_recall@10"] == pytest.approx(recall(info["nprobe"]), abs=1e-4)
    assert info["probe_recall@10"] >= ann.RECALL_TARGET
    smaller = [n for n in steps if n < info["nprobe"]]
    assert all(recall(n) < ann.RECALL_TARGET for n in smaller)  # the smallest that reaches it


def test_no_field_is_calibrated_on_its_own_vectors():
    """A field's own vectors would each find themselves and call any nprobe good: the question field is probed
    with answers, the others with questions (with the next field where a corpus has none)."""
    table = np.zeros((0, 3), dtype=np.int64)
    vectors = {kind: (unit_vectors(600, seed=seed), table) for seed, kind in enumerate(build.PROBE_SOURCES)}

    for kind, sources in build.PROBE_SOURCES.items():
        probes = build._probe_queries(vectors, kind)
        assert np.array_equal(probes, vectors[sources[0]][0][:: 600 // build.PROBES][: build.PROBES]), kind
    no_questions = {**vectors, "question": (np.zeros((0, 64), dtype=np.float32), table)}
    assert np.array_equal(build._probe_queries(no_questions, "answer")[:5], vectors["sentence"][0][:10:2])
    assert np.array_equal(build._probe_queries(no_questions, "passage")[:5], vectors["answer"][0][:10:2])


def test_a_float16_matrix_converts_to_the_same_float32_values_however_large():
    vectors = unit_vectors(500).astype(np.float16)

    for rows in (vectors[:3], vectors):  # small ones through numpy, large ones through torch
        converted = ann.as_float32(rows)
        assert converted.dtype == np.float32 and np.array_equal(converted, rows.astype(np.float32))


def test_a_rank_only_field_has_no_index_and_an_exact_scan_reads_its_vectors_in_chunks(monkeypatch):
    monkeypatch.setattr(ann, "ADD_CHUNK", 700)
    vectors, queries = unit_vectors(3000), unit_vectors(5, seed=3)
    flat, flat_info = ann.build(vectors, None, "flat")

    assert ann.build(vectors, None, "rank_only") == (None, {"type": "rank_only"})
    scores, found = ann.exact_scan(queries, 10, vectors.astype(np.float16))
    reference_scores, reference = ann.search(flat, flat_info, queries, 10)
    assert np.array_equal(found, reference)
    assert np.allclose(scores, reference_scores, atol=2e-3)


def test_a_filtered_hnsw_search_keeps_to_the_filter_and_small_filters_are_exact():
    vectors, queries = unit_vectors(3000), unit_vectors(5, seed=2)
    hnsw, info = ann.build(vectors, None, "hnsw")
    flat, flat_info = ann.build(vectors, None, "flat")
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
    assert isinstance(faiss.downcast_index(reopened.store.vectors["answer"].index.index), faiss.IndexHNSWFlat)
    ours, theirs = Searcher(reopened, encoder), Searcher(flat, encoder)

    for question in QUESTIONS[:10]:
        assert ours.search(question, k=10).to_dict()["results"] == theirs.search(question, k=10).to_dict()["results"]
    coffee = {"source": ["Bean Lab"]}
    for question in ("how fine should I grind for espresso", "my chain squeaks"):
        results = ours.search(question, k=5, filters=coffee).results
        assert results and all(hit.clip.source == "Bean Lab" for hit in results)
        assert [h.clip.id for h in results] == [h.clip.id for h in theirs.search(question, k=5, filters=coffee).results]


@pytest.fixture(scope="module")
def compact_and_flat(tmp_path_factory, hnsw_and_flat):
    """The example corpus with every field above the float limit and the sentences above the span-search one."""
    _, flat = hnsw_and_flat
    counts = flat.manifest["vectors_by_field"]
    assert counts["sentence"] > counts["passage"]
    root = tmp_path_factory.mktemp("compact")
    compact = build_index(
        EXAMPLE_CORPUS, root / "compact", cache_dir=flat.root / "cache", flat_max_vectors=5, float_max_vectors=5,
        span_search_max_vectors=counts["passage"],
    ).index
    return ClipIndex.open(compact.root), flat


def test_large_fields_keep_8_bit_codes_in_the_index_and_float16_vectors_on_disk(compact_and_flat):
    compact, _ = compact_and_flat
    types = {field: info["type"] for field, info in compact.manifest["index_types"].items()}

    assert types == {"question": "ivf_sq8", "answer": "ivf_sq8", "sentence": "rank_only", "passage": "ivf_sq8"}
    assert compact.manifest["index_type"] == "rank_only"
    assert (compact.manifest["float_max_vectors"], compact.manifest["span_search_max_vectors"]) == (
        5, compact.manifest["vectors_by_field"]["passage"])
    files = set(compact.manifest["files"])
    assert {"questions.f16.npy", "answers.f16.npy", "sentences.f16.npy", "passages.f16.npy"} <= files
    assert "sentences.faiss" not in files and "passages.faiss" in files
    assert isinstance(compact.store.vectors["answer"].matrix.base, np.memmap)
    assert not compact.searchable("sentence") and compact.searchable("passage")


def test_a_compact_index_answers_as_the_flat_one(compact_and_flat, encoder):
    compact, flat = compact_and_flat
    ours, theirs = Searcher(compact, encoder), Searcher(flat, encoder)

    for question in QUESTIONS[:10]:
        mine, reference = ours.search(question, k=5), theirs.search(question, k=5)
        assert [h.clip.id for h in mine.results] == [h.clip.id for h in reference.results]
        assert mine.answered == reference.answered
        for a, b in zip(mine.results, reference.results):
            assert a.highlight == b.highlight
            assert a.score == pytest.approx(b.score, abs=2e-3)
    vector = encoder.encode(["how fine should I grind for espresso"])
    scores, rows = compact.search("answer", vector, 5)
    reference_scores, reference = flat.search("answer", vector, 5)
    assert np.array_equal(rows, reference) and np.allclose(scores, reference_scores, atol=2e-3)
    scores, positions = compact.search("sentence", vector, 5)  # rank-only: an exact scan of the float16 vectors
    assert np.array_equal(positions, flat.search("sentence", vector, 5)[1])


def test_above_the_passage_limit_passages_only_rank_and_the_other_fields_read_deeper(hnsw_and_flat, encoder,
                                                                                     monkeypatch):
    _, flat = hnsw_and_flat
    ranked = build_index(EXAMPLE_CORPUS, flat.root.parent / "ranked", cache_dir=flat.root / "cache",
                         passage_search_max_vectors=0).index
    assert {f: i["type"] for f, i in ranked.manifest["index_types"].items()} == {
        "question": "flat", "answer": "flat", "sentence": "flat", "passage": "rank_only"}
    assert ranked.manifest["passage_search_max_vectors"] == 0
    depths: dict[str, int] = {}
    search = ClipIndex.search

    def recording(index, field, vector, k, rows=None, where=None):
        depths[field] = k
        return search(index, field, vector, k, rows, where)

    monkeypatch.setattr(ClipIndex, "search", recording)
    question = "how fine should I grind for espresso"
    answer = Searcher(ranked, encoder, search_threads=1).search(question, k=10)

    # questions, answers and sentences (spans read twice as deep) read 1.4 x 50; passages find nothing, still rank
    assert depths == {"question": 70, "answer": 70, "sentence": 140}
    assert answer.results[0].scores["passage"] is not None
    depths.clear()
    reference = Searcher(flat, encoder, search_threads=1).search(question, k=10)
    assert depths == {"question": 50, "answer": 50, "sentence": 100, "passage": 100}
    assert answer.results[0].clip.id == reference.results[0].clip.id
