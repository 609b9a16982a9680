"""Searching: paraphrased questions find their clip first; results carry times, scores and a highlight."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, EXAMPLES, read_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipsearch.index.bm25 import top_positive
from clipsearch.search.searcher import Searcher

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


def test_a_search_alone_runs_its_vector_searches_on_helper_threads_too(example_index):
    """Alone, a search's vector searches are shared with a helper thread (while it runs BM25); beside another
    search, all run on its own thread. The answer is the same either way, and as with one search thread."""
    import threading
    import time

    searcher = Searcher.open(example_index, search_threads=2)
    ranked_alone = Searcher(searcher.index, searcher.encoder, search_threads=1)
    threads_of: dict[str, set[str]] = {}
    entered, release = threading.Event(), threading.Event()
    original_found_by, original_encode = searcher._found_by, searcher.encoder.encode

    def found_by(name, *args):
        threads_of.setdefault(name, set()).add(threading.current_thread().name)
        time.sleep(0.05)  # long enough for a helper to take a field (20 clips are searched in microseconds)
        return original_found_by(name, *args)

    def encode(texts, **options):
        if texts == ["hold"]:  # keep this search in flight
            entered.set()
            release.wait(30)
        return original_encode(texts, **options)

    searcher._found_by = found_by
    alone = searcher.search("how do I fix a flat tyre?")
    assert any(t.startswith("clipsearch-search") for names in threads_of.values() for t in names)

    threads_of.clear()
    searcher.encoder.encode = encode
    try:
        holder = threading.Thread(target=searcher.search, args=("hold",))
        holder.start()
        assert entered.wait(30)
        beside = searcher.search("how do I fix a flat tyre?")
        asked_beside = {name: set(names) for name, names in threads_of.items()}  # the holder has not searched yet
        release.set()
        holder.join(30)
    finally:
        del searcher.encoder.encode
    assert set(asked_beside) == {"question", "answer", "sentence", "passage"}
    assert all(names == {threading.current_thread().name} for names in asked_beside.values())

    one_thread = ranked_alone.search("how do I fix a flat tyre?")
    assert [h.to_dict() for h in alone.results] == [h.to_dict() for h in beside.results]
    assert [h.to_dict() for h in alone.results] == [h.to_dict() for h in one_thread.results]


def test_an_error_in_a_helper_thread_reaches_the_caller(example_index):
    searcher = Searcher.open(example_index, search_threads=2)
    original = searcher._found_by

    def found_by(name, *args):
        if name == "passage":
            raise RuntimeError("passage search failed")
        return original(name, *args)

    searcher._found_by = found_by
    with pytest.raises(RuntimeError, match="passage search failed"):
        searcher.search("how do I fix a flat tyre?")
    searcher._found_by = original
    assert searcher.search("how do I fix a flat tyre?").results


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


OVERLAPPING = [
    {"id": "knots-a", "video_id": "knots", "question": "How do I tie a bowline?", "start": 0, "end": 40,
     "answer": "Make a small loop, pass the end up through it, around the standing line and back down the loop."},
    {"id": "knots-b", "video_id": "knots", "question": "What is a bowline knot used for?", "start": 30, "end": 70,
     "answer": "A bowline makes a fixed loop at the end of a rope, used for mooring and rescue; tie it by "
               "passing the end up through a small loop and around the standing line."},
    {"id": "knots-c", "video_id": "knots", "question": "How do I tie a clove hitch?", "start": 80, "end": 110,
     "answer": "Wrap the rope around the post, cross over itself, wrap again and tuck the end under the last turn."},
]


@pytest.fixture(scope="module")
def knots(tmp_path_factory, encoder) -> Searcher:
    from clipsearch.index.build import build_index

    folder = tmp_path_factory.mktemp("knots")
    corpus = folder / "knots.jsonl"
    corpus.write_text("".join(__import__("json").dumps(r) + "\n" for r in OVERLAPPING))
    build_index([corpus], folder / "index")
    return Searcher.open(folder / "index")


def test_overlapping_moments_of_one_video_collapse_into_the_best(knots):
    hits = knots.search("how to tie a bowline knot", k=3).results
    assert [h.clip.id for h in hits][0] in {"knots-a", "knots-b"}
    assert len(hits) == 2  # the other bowline clip overlaps the best one in time
    assert hits[0].overlapping == [({"knots-a", "knots-b"} - {hits[0].clip.id}).pop()]
    assert hits[1].clip.id == "knots-c" and hits[1].overlapping == []


def test_collapse_can_be_turned_off(knots):
    hits = knots.search("how to tie a bowline knot", k=3, collapse=False).results
    assert len(hits) == 3 and all(h.overlapping == [] for h in hits)


def test_group_by_video_gives_one_result_per_video(example):
    grouped = example.search("bike maintenance", k=10, group_by="video").results
    videos = [hit.clip.video_id for hit in grouped if hit.clip.video_id]
    assert len(videos) == len(set(videos)) == 3  # the example corpus has three videos
    # each video is represented by its best clip: the first of that video in the ungrouped list
    ungrouped = example.search("bike maintenance", k=20, collapse=False).results
    first_of = {}
    for hit in ungrouped:
        first_of.setdefault(hit.clip.video_id, hit.clip.id)
    assert all(first_of[hit.clip.video_id] == hit.clip.id for hit in grouped if hit.clip.video_id)
    # clips without a video id (the coffee page) are each their own group
    assert len(grouped) == 10 and sum(1 for hit in grouped if not hit.clip.video_id) == 7


def test_an_unknown_group_by_is_an_error(example):
    with pytest.raises(ValueError, match="unknown group_by 'source'"):
        example.search("tyre", group_by="source")


SEED_OFFTOPIC = read_jsonl(DATA / "seed_offtopic.jsonl")


def test_the_shipped_calibration_answers_every_seed_paraphrase(seed):
    unanswered = [q["query"] for q in SEED_PARAPHRASES if not seed.search(q["query"], k=5).answered]
    assert unanswered == []


def test_off_topic_questions_get_an_honest_no_answer(seed, example):
    answered = [q["query"] for q in SEED_OFFTOPIC if seed.search(q["query"], k=5).answered]
    assert answered == []
    sourdough = example.search("how do I bake sourdough bread", k=3)
    assert sourdough.answered is False
    # the closest clips are still listed, each with a confidence below the threshold
    assert sourdough.results and all(h.confidence < sourdough.threshold for h in sourdough.results)


def test_an_answer_reports_its_best_score_threshold_and_confidences(example):
    answer = example.search("how do I true a wobbly bicycle wheel", k=4).to_dict()
    assert answer["answered"] is True and answer["best_score"] == answer["results"][0]["score"]
    assert 0 < answer["threshold"] < 1
    assert all(0 <= r["confidence"] <= 1 for r in answer["results"])


def test_confidence_never_rises_down_the_list(example):
    for query in ("my chain squeaks, what should I put on it?", "how do I bake sourdough bread"):
        confidences = [hit.confidence for hit in example.search(query, k=10).results]
        assert confidences == sorted(confidences, reverse=True)


@settings(max_examples=200, deadline=None)
@given(
    scores=arrays(np.float32, st.integers(0, 300), elements=st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.25])),
    k=st.integers(0, 320),
)
def test_the_bm25_top_list_is_a_stable_sort_of_the_positive_scores_cut_at_k(scores, k):
    positive = np.flatnonzero(scores > 0)
    expected = positive[np.argsort(-scores[positive], kind="stable")[:k]]

    assert top_positive(scores, k).tolist() == expected.tolist()
