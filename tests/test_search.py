"""Searching: paraphrased questions find their clip first; results carry times, scores and a highlight."""

from __future__ import annotations

import pytest

from clipsearch.search import Searcher
from conftest import DATA, EXAMPLES, read_jsonl

EXAMPLE_PARAPHRASES = read_jsonl(EXAMPLES / "questions.jsonl")
SEED_PARAPHRASES = read_jsonl(DATA / "seed_paraphrases.jsonl")


@pytest.fixture(scope="module")
def example(example_index) -> Searcher:
    return Searcher.open(example_index)


@pytest.fixture(scope="module")
def seed(seed_index) -> Searcher:
    return Searcher.open(seed_index)


@pytest.mark.parametrize("query", EXAMPLE_PARAPHRASES, ids=[q["qid"] for q in EXAMPLE_PARAPHRASES])
def test_example_paraphrases_find_their_clip_first(example, query):
    top = example.search(query["query"], k=3).results[0]
    assert top.clip.id in query["relevant"], f"{query['query']!r} -> {top.clip.question!r}"


@pytest.mark.parametrize("query", SEED_PARAPHRASES, ids=[q["qid"] for q in SEED_PARAPHRASES])
def test_seed_page_paraphrases_find_their_clip_first(seed, query):
    top = seed.search(query["query"], k=3).results[0]
    assert top.clip.id in query["relevant"], f"{query['query']!r} -> {top.clip.question!r}"


def test_a_result_carries_the_clip_its_times_and_scores(seed):
    answer = seed.search("why won't moscow accept nato troops as peacekeepers in ukraine?", k=6)
    assert answer.answered and answer.query.startswith("why won't moscow")
    top = answer.to_dict()["results"][0]
    assert top["id"] == "page-ba772a6ca3b7"
    assert (top["start"], top["end"], top["source"], top["topic"]) == (101, 129, "WION", "NATO Alliance")
    assert top["matched"] in {"question", "answer"}
    assert set(top["scores"]) == {"question", "answer", "sentence", "passage", "bm25"}
    scores = [hit.score for hit in answer.results]
    assert scores == sorted(scores, reverse=True) and len(scores) == 6


def test_the_highlight_is_the_answer_sentence_at_its_offsets(example):
    for hit in example.search("what water temperature for brewing coffee", k=5).results:
        light = hit.highlight
        assert hit.clip.answer[light["char_start"] : light["char_end"]] == light["text"] and light["text"]


def test_asking_for_more_clips_than_exist_returns_them_all_once(seed):
    ids = [hit.clip.id for hit in seed.search("ukraine", k=50).results]
    assert len(ids) == len(set(ids)) == 6


def test_the_same_query_gives_the_same_ranking(example):
    first = [h.to_dict() for h in example.search("chain lube", k=10).results]
    assert first == [h.to_dict() for h in example.search("chain lube", k=10).results]


def test_filters_apply_before_the_top_k_is_cut(example):
    coffee = example.search("how do I fix a flat tyre", k=5, filters={"source": ["Bean Lab"]}).results
    assert len(coffee) == 5 and {hit.clip.source for hit in coffee} == {"Bean Lab"}
    video = example.search("anything", k=50, filters={"video_id": ["kQ7vR2mZt4X"]}).results
    assert video and {hit.clip.video_id for hit in video} == {"kQ7vR2mZt4X"}
    nothing = example.search("flat tyre", k=5, filters={"source": ["No Such Channel"]})
    assert nothing.results == [] and nothing.answered is False


def test_an_unknown_filter_is_an_error(example):
    with pytest.raises(ValueError, match="unknown filter 'colour'"):
        example.search("tyre", filters={"colour": ["red"]})
