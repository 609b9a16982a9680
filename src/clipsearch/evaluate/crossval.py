"""Grouped cross-validation: how well fitted ranking weights and calibrations do on questions they were not fitted on.

Questions about one video resemble each other, so a figure measured on questions whose videos took part in the fit
flatters it (issue 18: dev read often enough to fit it, then lower on a held-back split). Here every question
belongs to a group (:attr:`~clipsearch.evaluate.fitting.Sample.group`, the video of its first relevant clip), the
groups are dealt into folds (:func:`group_folds`), and each fold is measured with what was fitted on the others.
The figures are the folds' mean and spread (standard deviation across folds); dev, or any split kept apart, is
then read once to confirm them.

Used by ``clipsearch calibrate`` (it prints the cross-validated figures beside the in-sample ones) and
``scripts/cv_tutorialvqa.py`` (the protocol on the TutorialVQA train questions).

Example usage::

    samples = collect(searcher, read_queries(["questions.jsonl"]))
    folds = group_folds([s.group for s in samples])
    print(cross_validate_fusion(samples, folds)["mrr@10"])          # (mean, spread, per fold)
    print(cross_validate_calibration(samples, folds, Fusion())["f1"])
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from clipsearch.evaluate.fitting import MIN_PER_CLASS, Sample, fit_calibration, fit_fusion, ranking_figures, top_features
from clipsearch.scoring.calibration import Calibration
from clipsearch.scoring.fusion import Fusion

FOLDS = 5
SEED = 18


@dataclass(frozen=True)
class Figure:
    """One measure across folds: ``mean``, ``spread`` (standard deviation across folds) and each fold's value."""

    mean: float
    spread: float
    folds: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        values = [float(v) for v in values]
        return cls(float(np.mean(values)), float(np.std(values)), tuple(values))

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.spread:.3f}"

    def to_dict(self) -> dict:
        return {"mean": round(self.mean, 4), "spread": round(self.spread, 4), "folds": [round(v, 4) for v in self.folds]}


def group_folds(groups: Sequence[str | None], folds: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """The fold (0 .. folds-1) of each question: whole groups dealt round-robin in a seeded shuffled order, so that
    no group is in two folds. Questions without a group (ones that should not be answered) are dealt the same way,
    each on its own."""
    named = sorted({g for g in groups if g is not None})
    random.Random(seed).shuffle(named)
    fold_of = {g: i % folds for i, g in enumerate(named)}
    loose = [i for i, g in enumerate(groups) if g is None]
    random.Random(seed + 1).shuffle(loose)
    out = np.array([fold_of.get(g, -1) if g is not None else -1 for g in groups], dtype=np.int64)
    for n, i in enumerate(loose):
        out[i] = (len(named) + n) % folds
    return out


def cross_validate_fusion(
    samples: Sequence[Sample], folds: np.ndarray, *, fit: Callable[[Sequence[Sample]], Fusion] | None = None,
) -> dict[str, Figure]:
    """MRR@10, Hit@1 and Recall@10 of each fold ranked with the weights fitted on the other folds.

    Args:
        fit: samples -> fusion; default :func:`~clipsearch.evaluate.fitting.fit_fusion` (the weight grid). A
            function that ignores its samples measures a fixed fusion fold by fold.
    """
    fit = fit or (lambda train: fit_fusion(train)[0])
    per_fold: dict[str, list[float]] = {}
    for fold in _folds_with_answerable(samples, folds):
        train = [s for s, f in zip(samples, folds) if f != fold]
        test = [s for s, f in zip(samples, folds) if f == fold]
        for name, value in ranking_figures(test, fit(train)).items():
            per_fold.setdefault(name, []).append(value)
    return {name: Figure.of(values) for name, values in per_fold.items()}


def cross_validate_calibration(
    samples: Sequence[Sample], folds: np.ndarray, fusion: Fusion, *, answered_rate: float = 0.9,
    fixed: Calibration | None = None,
) -> dict[str, Figure]:
    """AUROC of the top result's confidence, abstention F1 and the answered rate of each fold, with a calibration
    (and threshold) fitted on the other folds; ``fixed``: measure that calibration instead of fitting one.

    Folds without both kinds of question are skipped (AUROC and F1 need both); so is the whole when no training
    side has :data:`~clipsearch.evaluate.fitting.MIN_PER_CLASS` of each (an empty dict then).
    """
    from clipsearch.evaluate.metrics import abstention, auroc

    answerable = np.array([s.answerable for s in samples], dtype=bool)
    per_fold: dict[str, list[float]] = {"auroc": [], "f1": [], "answered_rate": []}
    for fold in sorted(set(folds.tolist())):
        test = folds == fold
        train = ~test
        if answerable[test].all() or not answerable[test].any():
            continue
        if fixed is None:
            if min(answerable[train].sum(), (~answerable[train]).sum()) < MIN_PER_CLASS:
                continue
            calibration = fit_calibration([s for s, t in zip(samples, train) if t], fusion,
                                          answered_rate=answered_rate)
        else:
            calibration = fixed
        tested = [s for s, t in zip(samples, test) if t]
        confidence = np.array([calibration.confidence(f) for f in top_features(tested, fusion)])
        truth = answerable[test]
        figures = abstention(truth.tolist(), (confidence >= calibration.threshold).tolist())
        per_fold["auroc"].append(auroc(confidence[truth].tolist(), confidence[~truth].tolist()))
        per_fold["f1"].append(figures["f1"] or 0.0)
        per_fold["answered_rate"].append(figures["answered_rate"])
    if not per_fold["auroc"]:
        return {}
    return {name: Figure.of(values) for name, values in per_fold.items()}


def _folds_with_answerable(samples: Sequence[Sample], folds: np.ndarray) -> list[int]:
    return sorted({int(f) for s, f in zip(samples, folds) if s.answerable})
