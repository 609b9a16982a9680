"""BM25: every clip scored up to a size, above it candidates from the rarest query terms and exact scores of those."""

from __future__ import annotations

import numpy as np
import pytest
from test_onnx_encoder import QUESTIONS

from clipsearch.index import bm25 as lexical  # the module; the fixture below is named bm25
from clipsearch.index.clip_index import ClipIndex
from clipsearch.search.searcher import Searcher

QUERIES = ["how fine should I grind coffee for espresso", "my bike chain squeaks", "bleed a radiator valve",
           "the the the", "espresso espresso grind"]


@pytest.fixture(scope="module")
def bm25(example_index):
    return ClipIndex.open(example_index).bm25


def pruned(monkeypatch, postings: int) -> None:
    monkeypatch.setattr(lexical, "EXACT_MAX_CLIPS", 0)
    monkeypatch.setattr(lexical, "CANDIDATE_POSTINGS", postings)


def test_up_to_the_size_limit_every_clip_is_scored(bm25):
    for query in QUERIES:
        scores = bm25.scores(query)
        match = bm25.match(query, 5)

        assert match.top.tolist() == lexical.top_positive(scores, 5).tolist()
        assert match.best == pytest.approx(float(scores.max()))
        assert np.array_equal(match.scores_of(np.arange(bm25.size)), scores)


def test_above_it_the_scores_of_any_rows_are_still_exact(bm25, monkeypatch):
    pruned(monkeypatch, postings=1)  # only the rarest term finds candidates

    for query in QUERIES:
        match = bm25.match(query, 5)
        rows = np.arange(bm25.size)[::-1]  # any order

        assert match.best is None
        assert np.array_equal(match.scores_of(rows), bm25.scores(query)[rows])
        assert set(match.top.tolist()) <= set(np.flatnonzero(bm25.scores(query) > 0).tolist())


def test_above_it_the_candidates_come_from_the_rarest_terms_within_a_filter(bm25, monkeypatch):
    pruned(monkeypatch, postings=1)
    terms = bm25._term_ids("espresso grind radiator")
    lengths = {int(t): int(bm25.retriever.scores["indptr"][t + 1] - bm25.retriever.scores["indptr"][t]) for t in terms}
    rarest = min(lengths, key=lengths.get)
    indptr, indices = bm25.retriever.scores["indptr"], bm25.retriever.scores["indices"]
    with_rarest = set(indices[indptr[rarest] : indptr[rarest + 1]].tolist())
    allowed = np.array(sorted(with_rarest)[:1] + [r for r in range(bm25.size) if r not in with_rarest])

    assert set(bm25.match("espresso grind radiator", 50).top.tolist()) == with_rarest
    assert bm25.match("espresso grind radiator", 50, allowed).top.tolist() == sorted(with_rarest)[:1]


def test_a_search_above_the_limit_with_every_term_gives_the_same_answer(example_index, encoder, monkeypatch):
    searcher = Searcher(ClipIndex.open(example_index), encoder)
    expected = [searcher.search(q, k=5).to_dict() for q in QUESTIONS[:8]]
    pruned(monkeypatch, postings=10**9)  # every term finds candidates; the top clip's score stands for the best

    assert [searcher.search(q, k=5).to_dict() for q in QUESTIONS[:8]] == expected


def test_coverage_is_the_share_of_the_questions_distinct_terms_in_each_clips_text(bm25, example_index):
    clips = ClipIndex.open(example_index).clips
    texts = [set(lexical.tokenize([lexical.clip_text(clip)])[0]) for clip in clips]
    rows = np.arange(len(clips))
    for query in ["my bike chain squeaks", "espresso espresso grind", "bleed a radiator valve zzzunknownword"]:
        terms = set(lexical.tokenize([query])[0])

        assert bm25.coverage(query, rows).tolist() == pytest.approx([len(terms & text) / len(terms) for text in texts])
    assert bm25.coverage("the the the", rows).tolist() == [0.0] * len(clips)  # stopwords only: no term
    chain = bm25.coverage("my bike chain squeaks", rows)
    assert 0 < chain.max() < 1  # "squeaks" is in no clip
