#!/usr/bin/env python
"""Abstention evidence under grouped cross-validation (issue 18): which features of the top result, beyond
the shipped calibration's, tell the in-domain "nothing here answers that" questions apart. Train questions
only; dev is never read.

The questions, folds and left-out videos are those of the abstention half of cv_tutorialvqa.py (same seeds,
same `left_out_runs`), and each feature set is fitted and measured as there (`cross_validate_calibration`:
a logistic regression fitted on the other folds, the threshold with the best abstention F1 that keeps 90 % of
the other folds' answerable questions answered): AUROC of the top result's confidence, abstention F1, answered
rate, each the folds' mean ± spread, and against the current features the gain fold by fold (mean [lowest,
highest]). The feature sets (--sets, default all):

- current: the shipped calibration's FEATURES (score, gap, question, passage, sentence, answer, mean5,
  coverage);
- +bm25: the top result's `bm25` fusion component (its BM25 over the query's best BM25 among the indexed
  clips);
- +agree: whether the top fused clip is also the top clip of the dense channel alone (the fusion without
  `bm25`: `dense_top`) and of BM25 alone (`bm25_top`);
- +ranks: the reciprocal rank of the top fused clip in each channel (`dense_rr`, `bm25_rr`; 0 without BM25);
- +gaps: each channel's own lead of its top clip over its second (`dense_gap`, `bm25_gap`); +bm25gap: BM25's
  alone;
- +bm25raw: log(1 + the query's best raw BM25 among the indexed clips), absolute lexical evidence
  (`bm25_raw`);
- +channels: +bm25, +agree, +ranks and +gaps together; +all: and +bm25raw.

The channels are measured over a question's candidates (the union of every component's top 100, as `collect`
reads them); a search has them all at hand when it fuses. --cache keeps the collected questions (a pickle
outside the repository), so that other feature sets are compared in seconds.

Example usage:

    python scripts/cv_abstention.py --json reports/cv-abstention.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pickle
from pathlib import Path

import numpy as np
from cv_tutorialvqa import left_out_runs, train_folds
from tutorialvqa import DATA_DIR

from clipsearch.evaluate.crossval import FOLDS, Figure, cross_validate_calibration
from clipsearch.evaluate.fitting import MIN_PER_CLASS, Sample, choose_threshold, collect, top_features
from clipsearch.scoring.calibration import FEATURES, Calibration
from clipsearch.scoring.fusion import Fusion

EXTRA = {
    "+bm25": ("bm25",),
    "+agree": ("dense_top", "bm25_top"),
    "+ranks": ("dense_rr", "bm25_rr"),
    "+gaps": ("dense_gap", "bm25_gap"),
    "+bm25gap": ("bm25_gap",),
    "+bm25raw": ("bm25_raw",),
}
EXTRA["+channels"] = EXTRA["+bm25"] + EXTRA["+agree"] + EXTRA["+ranks"] + EXTRA["+gaps"]
EXTRA["+all"] = EXTRA["+channels"] + EXTRA["+bm25raw"]
SETS = {"current": FEATURES, "without coverage": FEATURES[:7],
        **{name: FEATURES + extra for name, extra in EXTRA.items()}}


def channel_features(sample: Sample, fusion: Fusion, best_bm25: float) -> dict[str, float]:
    """The per-channel evidence of ``sample``'s top result under ``fusion`` (the features of the module
    docstring)."""
    if not len(sample.rows):
        return dict.fromkeys(EXTRA["+all"], 0.0)
    components = sample.components
    top = int(np.lexsort((sample.rows, -fusion.score_many(components)))[0])
    channels = {
        "dense": dataclasses.replace(fusion, bm25=0.0).score_many(components),
        "bm25": np.nan_to_num(components["bm25"], nan=0.0),
    }
    out = {"bm25": float(channels["bm25"][top]), "bm25_raw": math.log1p(max(best_bm25, 0.0))}
    for name, scores in channels.items():
        ordered = np.sort(scores)[::-1]
        rank = 1 + int(np.sum(scores > scores[top]))  # ties in the top clip's favour
        scored = name != "bm25" or scores[top] > 0  # a clip without any query term has no BM25 rank
        out[f"{name}_top"] = float(scored and rank == 1)
        out[f"{name}_rr"] = 1.0 / rank if scored else 0.0
        out[f"{name}_gap"] = float(ordered[0] - (ordered[1] if len(ordered) > 1 else 0.0))
    return out


def cross_validate(rows: list[dict[str, float]], answerable: np.ndarray, folds: np.ndarray,
                   features: tuple[str, ...], answered_rate: float = 0.9) -> dict[str, Figure]:
    """`cross_validate_calibration` over precomputed feature rows and any feature names: the same logistic fit
    (`fit_calibration`: C=1, coefficients rounded to 6 places, the threshold rounded down) and figures."""
    from sklearn.linear_model import LogisticRegression

    from clipsearch.evaluate.metrics import abstention, auroc

    X = np.array([[r[name] for name in features] for r in rows], dtype=np.float64)
    per_fold: dict[str, list[float]] = {"auroc": [], "f1": [], "answered_rate": []}
    for fold in sorted(set(folds.tolist())):
        test, train = folds == fold, folds != fold
        if answerable[test].all() or not answerable[test].any():
            continue
        if min(answerable[train].sum(), (~answerable[train]).sum()) < MIN_PER_CLASS:
            continue
        model = LogisticRegression(C=1.0, max_iter=5000).fit(X[train], answerable[train].astype(int))
        coefficients = {name: round(float(c), 6) for name, c in zip(features, model.coef_[0])}
        calibration = Calibration(coefficients, round(float(model.intercept_[0]), 6), 0.0)
        fitted = np.array([calibration.confidence(r) for r, t in zip(rows, train) if t])
        y = answerable[train]
        threshold = math.floor(choose_threshold(fitted, y, y, answered_rate) * 1e6) / 1e6
        confidence = np.array([calibration.confidence(r) for r, t in zip(rows, test) if t])
        truth = answerable[test]
        figures = abstention(truth.tolist(), (confidence >= threshold).tolist())
        per_fold["auroc"].append(auroc(confidence[truth].tolist(), confidence[~truth].tolist()))
        per_fold["f1"].append(figures["f1"] or 0.0)
        per_fold["answered_rate"].append(figures["answered_rate"])
    return {name: Figure.of(values) for name, values in per_fold.items()}


def gather(args: argparse.Namespace) -> tuple[list[Sample], list[float], np.ndarray]:
    """The abstention questions' samples, each one's best raw BM25 and fold (as cv_tutorialvqa.py has
    them)."""
    searcher, queries, _, folds, fold_of_video = train_folds(args.data, args.index, args.folds)
    abstaining: list[Sample] = []
    best: list[float] = []
    for allowed, asked in left_out_runs(searcher, queries, folds, fold_of_video, args.folds, args.per_fold,
                                        args.draws):
        abstaining += collect(searcher, asked, allowed=allowed)
        best += [searcher.index.bm25.match(q.query, 1, allowed).best or 0.0 for q in asked]
    return abstaining, best, np.array([fold_of_video[s.group] for s in abstaining])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR,
                        help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"),
                        help="index directory to (re)build")
    parser.add_argument("--folds", type=int, default=FOLDS, help="folds of whole videos")
    parser.add_argument("--per-fold", type=int, default=2, help="videos of each fold left out for abstention")
    parser.add_argument("--draws", type=int, default=2, help="seeded draws of the videos left out")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS),
                        help="feature sets to compare")
    parser.add_argument("--cache", type=Path,
                        help="pickle of the collected questions: read when there, else written")
    parser.add_argument("--json", type=Path, help="file for the figures, as JSON")
    args = parser.parse_args()

    if args.cache and args.cache.exists():
        abstaining, best, folds = pickle.loads(args.cache.read_bytes())
    else:
        abstaining, best, folds = gather(args)
        if args.cache:
            args.cache.parent.mkdir(parents=True, exist_ok=True)
            args.cache.write_bytes(pickle.dumps((abstaining, best, folds)))
    answerable = np.array([s.answerable for s in abstaining], dtype=bool)
    print(f"abstention: {len(abstaining)} questions ({args.draws} draws), "
          f"{int((~answerable).sum())} about videos left out", flush=True)
    fusion = Fusion()
    rows = [{**base, **channel_features(s, fusion, b)}
            for base, s, b in zip(top_features(abstaining, fusion), abstaining, best)]
    # The protocol's own code on the current features: this script's fit has to give the same figures.
    reference = cross_validate_calibration(abstaining, folds, fusion)
    out: dict[str, dict] = {}
    for name in args.sets:
        figures = cross_validate(rows, answerable, folds, SETS[name])
        if name == "current":
            assert all(abs(figures[k].mean - reference[k].mean) < 1e-9 for k in figures), (figures, reference)
        gains = {k: np.subtract(figures[k].folds, reference[k].folds) for k in ("auroc", "f1")}
        out[name] = {"features": list(SETS[name]), **{k: v.to_dict() for k, v in figures.items()},
                     "gain": {k: Figure.of(v).to_dict() for k, v in gains.items()}}
        shown = "  ".join(f"{k} {v}" for k, v in figures.items())
        gained = "  ".join(f"{k} {v.mean():+.4f} [{v.min():+.3f}, {v.max():+.3f}]" for k, v in gains.items())
        print(f"{name:<18} {shown}  gain {gained}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
