"""Benchmark metrics: ranking quality (through ir-measures), abstention, latency percentiles.

A ranking is the list a user sees, best first; each result is the list of clip ids it stands for: its own id, then
the ids it lists in ``overlapping`` (issue 5, item 4), all found at that result's rank. Ranking metrics are averaged
over the answerable queries (those with relevant ids); a query with no results scores 0.

ir-measures (with its pytrec_eval backend) computes the per-query values. It is used rather than ranx because it
imports in 0.1 s and answers its first call in 0.3 s, where ranx's numba JIT took 5 s to import and over a minute on
a cold first call here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

#: The ranking metrics every benchmark reports, in this order.
RANKING_METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "hit@1")
#: The moment metrics a benchmark adds when questions are labelled with time spans (``bench --reference``).
MOMENT_METRICS = ("moment_hit@1", "video_hit@1")
PERCENTILES = (50, 95, 99)

Ranking = Sequence[Sequence[str]]
#: A moment of a video: (video id, start seconds, end seconds).
Span = tuple[str, float, float]


def ranking_metrics(qrels: Mapping[str, Collection[str]], rankings: Mapping[str, Ranking]) -> dict[str, float | None]:
    """Recall@1/5/10, MRR@10, nDCG@10 and Hit@1, means over the queries with relevant ids.

    Args:
        qrels: query id -> relevant clip ids (queries with none are skipped).
        rankings: query id -> results best first, each the ids it stands for (its id, then its overlapping ids).

    Returns:
        ``{name: mean}`` for each of ``RANKING_METRICS``; values are ``None`` when no query has relevant ids.

    MRR, nDCG and Hit count each result once, relevant when any id it stands for is; recall counts every relevant id
    a result stands for as found at its rank.
    """
    import ir_measures
    from ir_measures import RR, Success, nDCG

    judged = _judged(qrels)
    if not judged:
        return dict.fromkeys(RANKING_METRICS)
    measures = {"mrr@10": RR @ 10, "ndcg@10": nDCG @ 10, "hit@1": Success @ 1}
    found = ir_measures.iter_calc(list(measures.values()), _qrels(judged), _positions(judged, rankings))
    means = _means(found, judged, [str(m) for m in measures.values()])
    values = {name: means[str(measure)] for name, measure in measures.items()}
    curve = recall_curve(judged, rankings, 10)
    values.update({f"recall@{k}": curve[k - 1] for k in (1, 5, 10)})
    return {name: values[name] for name in RANKING_METRICS}


def moment_hit(found: Span, relevant: Span) -> bool:
    """True when ``found`` is in the video of ``relevant`` and overlaps it by at least half of the longer of the two,
    so that neither a very long nor a very short clip can hit by merely touching the right moment."""
    if found[0] != relevant[0]:
        return False
    overlap = min(found[2], relevant[2]) - max(found[1], relevant[1])
    return overlap > 0 and overlap >= 0.5 * max(found[2] - found[1], relevant[2] - relevant[1])


def moment_metrics(spans: Mapping[str, Sequence[Span]], tops: Mapping[str, Span | None]) -> dict[str, float | None]:
    """Moment Hit@1 and video Hit@1, means over the queries with relevant spans.

    Args:
        spans: query id -> the moments that answer it (queries with none are skipped).
        tops: query id -> the top result's moment (``None``: no result).

    Returns:
        ``{"moment_hit@1": share whose top result is a :func:`moment_hit` of a relevant span, "video_hit@1": share
        whose top result is in a relevant span's video}``; ``None`` values when no query has spans.
    """
    judged = {qid: list(found) for qid, found in spans.items() if found}
    if not judged:
        return dict.fromkeys(MOMENT_METRICS)
    moments = videos = 0
    for qid, relevant in judged.items():
        top = tops.get(qid)
        if top is not None:
            moments += any(moment_hit(top, span) for span in relevant)
            videos += any(top[0] == span[0] for span in relevant)
    return {"moment_hit@1": moments / len(judged), "video_hit@1": videos / len(judged)}


def recall_curve(qrels: Mapping[str, Collection[str]], rankings: Mapping[str, Ranking], depth: int) -> list[float | None]:
    """Mean recall at 1, 2, ..., ``depth`` results over the queries with relevant ids (``None`` when none)."""
    import ir_measures
    from ir_measures import R

    judged = _judged(qrels)
    if not judged:
        return [None] * depth
    curve = []
    qrels_dict = _qrels(judged)
    for k in range(1, depth + 1):
        # Every id the first k results stand for, in order: the cut is by results seen, not by ids.
        run = {}
        for qid in judged:
            ids = _unique(i for result in list(rankings.get(qid, ()))[:k] for i in result)
            if ids:
                run[qid] = {doc: float(len(ids) - n) for n, doc in enumerate(ids)}
        measure = R @ max([1, *(len(docs) for docs in run.values())])
        curve.append(_means(ir_measures.iter_calc([measure], qrels_dict, run), judged, [str(measure)])[str(measure)])
    return curve


def abstention(should_answer: Sequence[bool], answered: Sequence[bool]) -> dict[str, float | None]:
    """How well ``answered: false`` marks the questions that should not be answered.

    The positive class is "should not be answered": ``precision`` is the share of ``answered: false`` that were
    right, ``recall`` the share of unanswerable questions that got ``answered: false``, ``f1`` their harmonic mean
    (``2TP / (2TP + FP + FN)``); all three are ``None`` when no question is unanswerable, and ``precision`` is
    ``None`` when nothing was left unanswered. ``answered_rate`` is the share of answerable questions answered
    (``None`` when none is answerable).
    """
    if len(should_answer) != len(answered):
        raise ValueError(f"{len(should_answer)} labels but {len(answered)} answers")
    truth = np.asarray(should_answer, dtype=bool)
    said = np.asarray(answered, dtype=bool)
    tp = int(np.sum(~truth & ~said))
    fp = int(np.sum(truth & ~said))
    fn = int(np.sum(~truth & said))
    unanswerable = tp + fn
    result: dict[str, float | None] = {"precision": None, "recall": None, "f1": None, "answered_rate": None}
    if unanswerable:
        result["precision"] = tp / (tp + fp) if tp + fp else None
        result["recall"] = tp / unanswerable
        result["f1"] = 2 * tp / (2 * tp + fp + fn)
    if truth.any():
        result["answered_rate"] = float(np.mean(said[truth]))
    return result


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """Probability that a random ``positive`` score exceeds a random ``negative`` one (ties count half).

    Used for how well a query's top score separates answerable (positive) from unanswerable questions;
    ``None`` when either side is empty.
    """
    pos = np.asarray(positive, dtype=float)
    neg = np.sort(np.asarray(negative, dtype=float))
    if not len(pos) or not len(neg):
        return None
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))


def percentiles(values: Sequence[float], points: Iterable[int] = PERCENTILES) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` with linear interpolation between samples; ``None`` when empty."""
    points = tuple(points)
    if not len(values):
        return {f"p{p}": None for p in points}
    found = np.percentile(np.asarray(values, dtype=float), points)
    return {f"p{p}": float(v) for p, v in zip(points, found)}


def _judged(qrels: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
    return {qid: set(ids) for qid, ids in qrels.items() if ids}


def _qrels(judged: Mapping[str, set[str]]) -> dict[str, dict[str, int]]:
    return {qid: dict.fromkeys(ids, 1) for qid, ids in judged.items()}


def _positions(judged: Mapping[str, set[str]], rankings: Mapping[str, Ranking]) -> dict[str, dict[str, float]]:
    """One document per result, the first relevant id it stands for (else its own), scored so order is kept."""
    run = {}
    for qid, relevant in judged.items():
        docs: list[str] = []
        for result in rankings.get(qid, ()):
            ids = [i for i in result if i not in docs]
            if ids:
                docs.append(next((i for i in ids if i in relevant), ids[0]))
        if docs:
            # Strictly decreasing scores: trec_eval orders by score, and breaks ties by id, not by our order.
            run[qid] = {doc: float(len(docs) - n) for n, doc in enumerate(docs)}
    return run


def _means(found, judged: Mapping[str, set[str]], keys: Sequence[str]) -> dict[str, float]:
    """Per-measure means over every judged query; a query the backend returned nothing for counts 0."""
    sums = dict.fromkeys(keys, 0.0)
    for metric in found:
        if metric.query_id in judged:
            sums[str(metric.measure)] += float(metric.value)
    return {key: total / len(judged) for key, total in sums.items()}


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))
