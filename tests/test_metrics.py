"""Benchmark metrics against numbers worked out by hand (ir-measures computes them; these pin what they mean)."""

from __future__ import annotations

import math

import pytest

from clipsearch.evaluate.metrics import (
    RANKING_METRICS,
    abstention,
    auroc,
    moment_hit,
    moment_metrics,
    percentiles,
    ranking_metrics,
    recall_curve,
)

# Four answerable questions and one that should not be answered. Each result lists the ids it stands for: its own,
# then the overlapping ones it collapsed.
QRELS = {"q1": ["a"], "q2": ["d"], "q3": ["e", "f"], "q4": ["g"], "q5": []}
RANKINGS = {
    "q1": [["a"], ["b"], ["c"]],  # relevant at rank 1
    "q2": [["b"], ["c"], ["d"]],  # relevant at rank 3
    "q3": [["x", "f"], ["y"], ["z"], ["w"], ["v"], ["e"]],  # f overlaps the rank-1 result, e at rank 6
    "q4": [],  # nothing returned: 0 on every metric
    "q5": [["a"]],  # no relevant ids: not in the ranking metrics
}


def test_ranking_metrics_by_hand():
    # recall@1  = (1 + 0 + 1/2 + 0) / 4;  recall@5 = (1 + 1 + 1/2 + 0) / 4;  recall@10 = (1 + 1 + 1 + 0) / 4
    # mrr@10    = (1 + 1/3 + 1 + 0) / 4;  hit@1 = (1 + 0 + 1 + 0) / 4
    # ndcg@10   q1: 1;  q2: 1/log2(4) = 0.5;  q3: (1 + 1/log2(7)) / (1 + 1/log2(3));  q4: 0
    q3_ndcg = (1 + 1 / math.log2(7)) / (1 + 1 / math.log2(3))
    assert q3_ndcg == pytest.approx(0.831555, abs=1e-6)
    expected = {
        "recall@1": 0.375,
        "recall@5": 0.625,
        "recall@10": 0.75,
        "mrr@10": 7 / 12,
        "ndcg@10": (1 + 0.5 + q3_ndcg) / 4,
        "hit@1": 0.5,
    }
    got = ranking_metrics(QRELS, RANKINGS)
    assert list(got) == list(RANKING_METRICS)
    assert got == pytest.approx(expected, abs=1e-9)


def test_recall_curve_by_hand():
    # rank:          1      2      3      4      5      6     7..10
    # q1 (a@1)       1      1      1      1      1      1     1
    # q2 (d@3)       0      0      1      1      1      1     1
    # q3 (f@1, e@6)  .5     .5     .5     .5     .5     1     1
    # q4             0 ...
    assert recall_curve(QRELS, RANKINGS, 7) == pytest.approx([0.375, 0.375, 0.625, 0.625, 0.625, 0.75, 0.75])


def test_an_overlapping_id_counts_at_its_results_rank():
    got = ranking_metrics({"q": ["late"]}, {"q": [["top", "late"], ["other"]]})
    assert got == pytest.approx(dict.fromkeys(RANKING_METRICS, 1.0))


def test_the_users_order_counts_not_the_ids():
    # trec_eval breaks score ties by id; the benchmark must rank by position only.
    got = ranking_metrics({"q": ["a"]}, {"q": [["z"], ["a"]]})
    assert got["mrr@10"] == pytest.approx(0.5)
    assert got["hit@1"] == 0.0


def test_no_answerable_questions_give_none():
    assert ranking_metrics({"q": []}, {"q": [["a"]]}) == dict.fromkeys(RANKING_METRICS)


def test_abstention_by_hand():
    should_answer = [True, True, True, True, False, False, False]
    answered = [True, True, True, False, False, False, True]
    # positive = should not be answered. answered:false were q4 (wrong), q5, q6 (right): precision 2/3.
    # unanswerable q5, q6, q7, two of them got answered:false: recall 2/3. F1 = 2*2 / (2*2 + 1 + 1) = 2/3.
    # answerable q1..q4, three answered: 3/4.
    assert abstention(should_answer, answered) == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "answered_rate": 0.75}
    )


def test_abstention_unbalanced_by_hand():
    # 1 of 4 unanswerable caught, no false alarms: P = 1, R = 1/4, F1 = 2 / (2 + 0 + 3) = 0.4
    got = abstention([True, False, False, False, False], [True, False, True, True, True])
    assert got == pytest.approx({"precision": 1.0, "recall": 0.25, "f1": 0.4, "answered_rate": 1.0})


def test_abstention_is_null_without_unanswerable_questions():
    assert abstention([True, True], [True, False]) == {
        "precision": None, "recall": None, "f1": None, "answered_rate": 0.5
    }


def test_abstention_precision_is_null_when_nothing_was_left_unanswered():
    assert abstention([True, False], [True, True]) == {"precision": None, "recall": 0.0, "f1": 0.0, "answered_rate": 1.0}


def test_percentiles_interpolate_linearly():
    # 1..10: p50 between 5 and 6; p95 at position 0.95 * 9 = 8.55 -> 9.55; p99 at 8.91 -> 9.91
    assert percentiles(list(range(1, 11))) == pytest.approx({"p50": 5.5, "p95": 9.55, "p99": 9.91})
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_auroc_by_hand():
    # pairs (pos, neg): 0.9 beats both, 0.8 beats both, 0.5 ties 0.5 (half) and beats 0.1: 5.5 / 6
    assert auroc([0.9, 0.8, 0.5], [0.5, 0.1]) == pytest.approx(5.5 / 6)
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5], []) is None


# --- moments (bench --reference) ---

HUMAN = ("v1", 30.0, 50.0)  # a 20 s labelled moment


@pytest.mark.parametrize(
    "found, hit",
    [
        (("v1", 30.0, 50.0), True),  # the same span
        (("v1", 25.0, 45.0), True),  # overlap 15 s >= 10 s (half of 20)
        (("v1", 40.0, 60.0), True),  # overlap 10 s = half of the longer (20): exactly enough
        (("v1", 41.0, 61.0), False),  # overlap 9 s
        (("v1", 0.0, 100.0), False),  # covers it all, but 20 s < half of 100 s: a long clip cannot game it
        (("v1", 35.0, 38.0), False),  # inside, but 3 s < half of 20 s: nor can a short one
        (("v1", 32.0, 48.0), True),  # inside, 16 s >= 10 s
        (("v2", 30.0, 50.0), False),  # the right time in another video
        (("v1", 50.0, 70.0), False),  # touching only
    ],
)
def test_moment_hit_needs_half_of_the_longer_span(found, hit):
    assert moment_hit(found, HUMAN) is hit


def test_moment_metrics_by_hand():
    spans = {
        "q1": [HUMAN],
        "q2": [("v2", 0.0, 10.0), ("v3", 0.0, 30.0)],  # either moment answers it
        "q3": [("v1", 100.0, 130.0)],
        "q4": [("v4", 0.0, 10.0)],
        "q5": [],  # should not be answered: not counted
    }
    tops = {
        "q1": ("v1", 28.0, 52.0),  # moment hit
        "q2": ("v3", 10.0, 40.0),  # overlap 20 s >= 15 s: moment hit in the second span's video
        "q3": ("v1", 0.0, 30.0),  # right video, wrong moment
        "q4": None,  # no result
        "q5": ("v9", 0.0, 1.0),
    }
    assert moment_metrics(spans, tops) == {"moment_hit@1": 2 / 4, "video_hit@1": 3 / 4}
    assert moment_metrics({"q": []}, {"q": None}) == {"moment_hit@1": None, "video_hit@1": None}
