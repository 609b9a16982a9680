"""``clipsearch calibrate``: fit an index's ranking weights and abstention calibration on labelled questions, write
them as a new version, and measure the fit in-sample and by grouped cross-validation (issue 18).

Example usage::

    done = calibrate("index/example", read_queries(["examples/questions.jsonl", "examples/offtopic.jsonl"]))
    print(done.version, done.mrr_after, done.cross_validated["ranking"]["mrr@10"])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clipsearch.evaluate.crossval import cross_validate_calibration, cross_validate_fusion, group_folds
from clipsearch.evaluate.fitting import (
    MIN_ANSWERABLE,
    Sample,
    collect,
    fit_calibration,
    fit_fusion,
    mrr_at_10,
    top_features,
)
from clipsearch.scoring.calibration import Calibration
from clipsearch.scoring.fusion import Fusion


@dataclass
class Calibrated:
    """What ``calibrate`` fitted and wrote: the new version and in-sample figures before and after."""

    version: str
    answerable: int
    unanswerable: int
    fusion: Fusion
    calibration: Calibration
    mrr_before: float
    mrr_after: float
    abstention_before: dict
    abstention_after: dict
    #: grouped cross-validation (issue 18): {"ranking": {metric: Figure}, "abstention": {metric: Figure}}, each
    #: fold measured with weights and a calibration fitted on the other folds; empty without enough questions
    cross_validated: dict = dataclasses.field(default_factory=dict)
    folds: int = 0


def calibrate(index_dir, queries: Sequence, *, answered_rate: float = 0.9, keep_versions: int = 3,
              sources: Sequence = (), folds: int = 5) -> Calibrated:
    """Fit ranking weights and the abstention calibration of an index on labelled questions and write them as a
    new version of it (made current once verified; a serving index picks it up on its next reload).

    Weights are fitted when there are at least :data:`MIN_ANSWERABLE` answerable questions; a logistic model
    when each kind has at least :data:`MIN_PER_CLASS` questions, else only the threshold (keeping the index's
    calibration, or the shipped default). The figures returned are in-sample: measured on the questions fitted,
    plus, with ``folds`` of 2 or more, grouped cross-validated ones (:mod:`clipsearch.evaluate.crossval`: questions
    grouped by the video of their first relevant clip, each fold measured with what the other folds fitted): the
    ones to trust.

    Raises:
        ValueError: no answerable question (nothing to fit on).
    """
    from clipsearch.index.build import derive_version
    from clipsearch.scoring.calibration import default_calibration
    from clipsearch.search.searcher import Searcher

    searcher = Searcher.open(index_dir, query_encoder="torch")  # batches of questions: torch is at its best
    samples = collect(searcher, queries)
    answerable = sum(s.answerable for s in samples)
    if not answerable:
        raise ValueError("none of the questions names a clip of this index: nothing to calibrate on")
    before_fusion, before_calibration = searcher.fusion, searcher.calibration
    fusion, mrr_after = fit_fusion(samples, before_fusion)
    calibration = fit_calibration(samples, fusion, answered_rate=answered_rate,
                                  fallback=before_calibration or default_calibration())
    note = {
        "questions": len(samples), "answerable": answerable, "unanswerable": len(samples) - answerable,
        "answered_rate": answered_rate, "query_files": [Path(s).name for s in sources],
    }
    index = derive_version(index_dir, fusion=fusion, calibration=calibration, note=note, keep_versions=keep_versions)
    cross_validated = _cross_validated(samples, folds, before_fusion, answered_rate) if folds >= 2 else {}
    return Calibrated(
        cross_validated=cross_validated, folds=folds if cross_validated else 0,
        version=index.version, answerable=answerable, unanswerable=len(samples) - answerable,
        fusion=fusion, calibration=calibration,
        mrr_before=mrr_at_10(samples, before_fusion), mrr_after=mrr_after,
        abstention_before=_abstention(samples, before_fusion, before_calibration),
        abstention_after=_abstention(samples, fusion, calibration),
    )


def _cross_validated(samples: Sequence[Sample], folds: int, start: Fusion, answered_rate: float) -> dict:
    """Out-of-fold figures of what :func:`calibrate` fits: weights (with enough answerable questions) and the
    calibration (with both kinds), each fold fitted on the others."""
    fold_of = group_folds([s.group for s in samples], folds)
    if len(set(fold_of.tolist())) < 2:
        return {}
    out = {}
    if sum(s.answerable for s in samples) >= MIN_ANSWERABLE:
        out["ranking"] = cross_validate_fusion(samples, fold_of, fit=lambda train: fit_fusion(train, start)[0])
    abstaining = cross_validate_calibration(samples, fold_of, start, answered_rate=answered_rate)
    if abstaining:
        out["abstention"] = abstaining
    return out


def _abstention(samples: Sequence[Sample], fusion: Fusion, calibration: Calibration | None) -> dict:
    from clipsearch.evaluate.metrics import abstention

    if calibration is None:
        answered = [True] * len(samples)
    else:
        answered = [calibration.confidence(f) >= calibration.threshold for f in top_features(samples, fusion)]
    return abstention([s.answerable for s in samples], answered)
