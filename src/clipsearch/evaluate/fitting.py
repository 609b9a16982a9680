"""Fit ranking weights and the abstention calibration of one index on labelled questions.

Used by ``clipsearch calibrate`` (:mod:`clipsearch.evaluate.calibrate`), grouped cross-validation
(:mod:`clipsearch.evaluate.crossval`), ``clipsearch tune`` (weights for a fine-tuned
model) and ``scripts/fit_calibration.py`` (the calibration that ships with clipsearch).

- :func:`fit_fusion` searches a grid of component weights for the best MRR@10 over the answerable questions. Every
  question's candidates and components are computed once; each grid point is then only arithmetic.
- :func:`fit_calibration` fits a logistic regression (scikit-learn) over the top result's calibration features, the
  answerable questions being the positive class, and takes the threshold with the best abstention F1 among those
  that keep ``answered_rate`` of the answerable questions answered (:func:`choose_threshold`).

Example usage::

    searcher = Searcher.open("index/example")
    samples = collect(searcher, read_queries(["examples/questions.jsonl", "examples/offtopic.jsonl"]))
    fusion, mrr = fit_fusion(samples)
    calibration = fit_calibration(samples, fusion)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipsearch.scoring.calibration import FEATURES, Calibration, result_features
from clipsearch.scoring.fusion import COMPONENTS, Fusion

#: The weights tried for each component by :func:`fit_fusion` (5 components: 5^5 = 3,125 grid points).
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
#: Candidates read per component and question while fitting (deeper than a search's, so rankings can change).
FETCH = 100
#: Fewer answerable questions than this and the fitted weights would be noise: the current ones are kept.
MIN_ANSWERABLE = 20
#: Fewer questions than this of either kind and no logistic model is fitted (only the threshold moves).
MIN_PER_CLASS = 5


@dataclass
class Sample:
    """One labelled question's candidates and their components, ready to be fused with any weights."""

    qid: str
    query: str
    rows: np.ndarray  # candidate clip rows
    components: dict[str, np.ndarray]
    relevant: np.ndarray  # bool per candidate
    answerable: bool
    #: share of the question's terms in each candidate's text (the calibration's ``coverage``), None: not measured
    coverage: np.ndarray | None = None
    #: the group the question belongs to for grouped cross-validation (the video of its first relevant clip)
    group: str | None = None


def collect(searcher, queries: Sequence, *, batch_size: int = 64, allowed: np.ndarray | None = None,
            groups: dict[str, str] | None = None) -> list[Sample]:
    """Candidates and components of every question (``LabelledQuery``); relevant ids missing from the index (or
    outside ``allowed``, clip rows standing for an index of only those) are dropped, and a question left with none
    counts as unanswerable (as in ``bench``). ``groups``: clip id -> group (default: the clip's video id) for
    :attr:`Sample.group`."""
    clips = searcher.index.clips
    row_of = {clip.id: row for row, clip in enumerate(clips)}
    if groups is None:
        groups = {clip.id: clip.video_id or clip.id for clip in clips}
    inside = None if allowed is None else set(np.asarray(allowed).tolist())
    vectors = searcher.encoder.encode([q.query for q in queries], batch_size=batch_size)
    samples = []
    for query, vector in zip(queries, vectors):
        relevant_rows = [row_of[i] for i in query.relevant if i in row_of and (inside is None or row_of[i] in inside)]
        rows, components = searcher.components(query.query, vector[None], FETCH, allowed)
        components = {name: np.asarray(components[name], dtype=np.float64) for name in COMPONENTS}
        group = next((groups[i] for i in query.relevant if i in groups), None)
        samples.append(Sample(query.qid, query.query, rows, components, np.isin(rows, relevant_rows),
                              bool(relevant_rows), searcher.index.bm25.coverage(query.query, rows), group))
    return samples


def mrr_at_10(samples: Sequence[Sample], fusion: Fusion) -> float:
    """Mean reciprocal rank (cut at 10) of the first relevant clip over the answerable samples, ties by clip row
    (as a search breaks them)."""
    return _Stacked(samples).mrr_at_10(fusion)


def ranking_figures(samples: Sequence[Sample], fusion: Fusion) -> dict[str, float]:
    """MRR@10, Hit@1 and Recall@10 (share of a question's relevant clips in its top 10) over the answerable
    samples under ``fusion``, ties by clip row; the figures grouped cross-validation reports."""
    return _Stacked(samples).figures(fusion)


def fit_fusion(samples: Sequence[Sample], start: Fusion | None = None,
               grid: Sequence[float] = WEIGHT_GRID) -> tuple[Fusion, float]:
    """The grid point with the best MRR@10 on the answerable samples, and that MRR.

    ``start``'s paraphrase setting is kept, and ``start`` itself wins ties (so weights only move for a gain).
    With fewer than :data:`MIN_ANSWERABLE` answerable samples ``start`` is returned unchanged.
    """
    start = start or Fusion()
    stacked = _Stacked(samples)
    best, best_mrr = start, stacked.mrr_at_10(start)
    if sum(s.answerable for s in samples) < MIN_ANSWERABLE:
        return best, best_mrr
    for weights in itertools.product(grid, repeat=len(COMPONENTS)):
        if not any(weights[i] for i, name in enumerate(COMPONENTS) if name != "question"):
            continue  # clips without a question would have no score at all
        candidate = dataclasses.replace(start, **dict(zip(COMPONENTS, weights)))
        mrr = stacked.mrr_at_10(candidate)
        if mrr > best_mrr + 1e-9:
            best, best_mrr = candidate, mrr
    return best, best_mrr


class _Stacked:
    """The answerable samples' candidates as padded 2-D arrays, so that one fusion scores all of them at once."""

    def __init__(self, samples: Sequence[Sample]):
        answerable = [s for s in samples if s.answerable]
        width = max((len(s.rows) for s in answerable), default=0)
        shape = (len(answerable), width)
        self.valid = np.zeros(shape, dtype=bool)
        self.relevant = np.zeros(shape, dtype=bool)
        self.rows = np.full(shape, np.iinfo(np.int64).max, dtype=np.int64)
        self.components = {name: np.full(shape, np.nan) for name in COMPONENTS}
        for i, sample in enumerate(answerable):
            n = len(sample.rows)
            self.valid[i, :n] = True
            self.relevant[i, :n] = sample.relevant
            self.rows[i, :n] = sample.rows
            for name in COMPONENTS:
                self.components[name][i, :n] = sample.components[name]

    def figures(self, fusion: Fusion) -> dict[str, float]:
        if not len(self.valid):
            return {"mrr@10": 0.0, "hit@1": 0.0, "recall@10": 0.0}
        fused = np.where(self.valid, fusion.score_many(self.components), -np.inf)
        order = np.lexsort((self.rows, -fused), axis=1)[:, :10]
        top = np.take_along_axis(self.relevant, order, axis=1)
        first = np.where(top.any(axis=1), np.argmax(top, axis=1) + 1, 0)
        return {
            "mrr@10": float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0))),
            "hit@1": float(np.mean(top[:, 0])),
            "recall@10": float(np.mean(top.sum(axis=1) / np.maximum(self.relevant.sum(axis=1), 1))),
        }

    def mrr_at_10(self, fusion: Fusion) -> float:
        """The MRR@10 of :meth:`figures` by counting instead of sorting: the weight grid calls it 3,125 times."""
        if not len(self.valid):
            return 0.0
        fused = np.where(self.valid, fusion.score_many(self.components), -np.inf)
        best = np.max(np.where(self.relevant, fused, -np.inf), axis=1, keepdims=True)
        first_row = np.min(np.where(self.relevant & (fused == best), self.rows, np.iinfo(np.int64).max),
                           axis=1, keepdims=True)
        rank = 1 + np.sum(fused > best, axis=1) + np.sum((fused == best) & (self.rows < first_row), axis=1)
        found = self.relevant.any(axis=1) & (rank <= 10)
        return float(np.mean(np.where(found, 1.0 / rank, 0.0)))


def top_features(samples: Sequence[Sample], fusion: Fusion) -> list[dict[str, float]]:
    """The calibration features (:func:`~clipsearch.scoring.calibration.result_features`) of each sample's top result
    under ``fusion``."""
    rows = []
    for sample in samples:
        fused = fusion.score_many(sample.components)
        order = np.lexsort((sample.rows, -fused))[:10]
        parts = [{name: _present(sample.components[name][i]) for name in COMPONENTS} for i in order]
        coverage = None if sample.coverage is None else [float(sample.coverage[i]) for i in order]
        features = result_features([float(fused[i]) for i in order], parts, coverage)
        rows.append(features[0] if features else dict.fromkeys(FEATURES, 0.0))
    return rows


def fit_calibration(
    samples: Sequence[Sample],
    fusion: Fusion,
    *,
    answered_rate: float = 0.9,
    weights: Sequence[float] | None = None,
    rate_of: Sequence[bool] | None = None,
    fallback: Calibration | None = None,
) -> Calibration:
    """A logistic calibration fitted on the samples' top results, with the threshold of :func:`choose_threshold`.

    Args:
        weights: per-sample weights for the fit (default 1).
        rate_of: which samples the threshold's answered rate is measured on (default all answerable ones).
        fallback: coefficients to keep when either kind has fewer than :data:`MIN_PER_CLASS` samples (only the
            threshold is fitted then). Without it, that case raises ``ValueError``.
    """
    from sklearn.linear_model import LogisticRegression

    features = top_features(samples, fusion)
    X = np.array([[f[name] for name in FEATURES] for f in features], dtype=np.float64).reshape(len(features), -1)
    y = np.array([s.answerable for s in samples], dtype=bool)
    answerable, unanswerable = int(y.sum()), int(len(y) - y.sum())
    if min(answerable, unanswerable) >= MIN_PER_CLASS:
        model = LogisticRegression(C=1.0, max_iter=5000).fit(X, y.astype(int), sample_weight=weights)
        coefficients = {name: round(float(c), 6) for name, c in zip(FEATURES, model.coef_[0])}
        intercept = round(float(model.intercept_[0]), 6)
    elif fallback is not None and answerable:
        coefficients, intercept = dict(fallback.coefficients), fallback.intercept
    else:
        raise ValueError(
            f"calibration needs at least {MIN_PER_CLASS} answerable and {MIN_PER_CLASS} unanswerable questions "
            f"(got {answerable} and {unanswerable})"
        )
    model = Calibration(coefficients, intercept, 0.0)
    measured = y & (np.array(rate_of, dtype=bool) if rate_of is not None else True)
    confidence = np.array([model.confidence(f) for f in features])
    threshold = choose_threshold(confidence, y, measured, answered_rate)
    # Rounded down, so that the rounding never turns an answered question into an unanswered one.
    return Calibration(coefficients, intercept, math.floor(threshold * 1e6) / 1e6)


def choose_threshold(confidence: np.ndarray, answerable: np.ndarray, measured: np.ndarray, answered_rate: float) -> float:
    """The threshold with the best abstention F1 among those that keep at least ``answered_rate`` of the
    ``measured`` answerable questions answered; ties go to the one answering most, placed halfway into the gap
    below the next confidence (a margin on both sides). Without unanswerable questions: the highest threshold
    that keeps the rate."""
    from clipsearch.evaluate.metrics import abstention

    levels = np.unique(confidence)
    best_key, best, highest = None, float(levels[0]), float(levels[0])
    for i, level in enumerate(levels):
        answered = confidence >= level
        if answered[measured].mean() < answered_rate - 1e-12:
            break  # higher thresholds answer even fewer
        highest = float(level)
        if answerable.all():
            continue
        f1 = abstention(answerable, answered)["f1"] or 0.0
        key = (f1, answered[answerable].mean())
        if best_key is None or key > best_key:
            below = levels[i - 1] if i else 0.0
            best_key, best = key, float((level + below) / 2) if f1 else float(level)
    return highest if answerable.all() else best


def _present(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
