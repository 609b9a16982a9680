#!/usr/bin/env python
"""Grouped cross-validation on the TutorialVQA train questions: the figures every ranking or abstention choice is
made on (issue 18). Dev is never read here; read it once, at the end, with eval_tutorialvqa.py.

The train questions are grouped by video (the video of their relevant clips) and the 76 videos dealt into --folds
folds (`clipsearch.evaluate.crossval.group_folds`, seed 18). Each fold is measured with what was fitted on the
other folds, and each figure is the folds' mean ± spread (standard deviation across folds).

- Ranking: MRR@10, Hit@1, Recall@10 of the shipped weights, and of weights refitted on the other folds (the
  weight grid of `clipsearch calibrate`), over an index of all 408 clips.
- In-domain abstention: in each fold, --per-fold of its videos (seeded, --draws times) are left out of the index
  (their questions should get `answered: false`; about 13 % of the questions, as in `eval_tutorialvqa.py
  --leave-out 10`). AUROC of the top result's confidence, abstention F1 and the answered rate of the shipped
  calibration, and of calibrations fitted on the other folds with and without the `coverage` feature.

Example usage:

    python scripts/cv_tutorialvqa.py --json reports/cv.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from pathlib import Path

import numpy as np
from tutorialvqa import DATA_DIR, TRAIN, TutorialVQA

from clipsearch import Searcher, build_index
from clipsearch.evaluate.crossval import FOLDS, cross_validate_calibration, cross_validate_fusion, group_folds
from clipsearch.evaluate.fitting import collect
from clipsearch.scoring.calibration import default_calibration
from clipsearch.scoring.fusion import Fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"), help="index directory to (re)build")
    parser.add_argument("--folds", type=int, default=FOLDS, help="folds of whole videos")
    parser.add_argument("--per-fold", type=int, default=2, help="videos of each fold left out for abstention")
    parser.add_argument("--draws", type=int, default=2, help="seeded draws of the videos left out")
    parser.add_argument("--no-refit", action="store_true", help="skip refitting the weight grid per fold (slow)")
    parser.add_argument("--json", type=Path, help="file for the figures, as JSON")
    args = parser.parse_args()

    searcher, queries, samples, folds, fold_of_video = train_folds(args.data, args.index, args.folds)
    out: dict[str, dict] = {}

    def show(kind: str, name: str, figures: dict) -> None:
        out.setdefault(kind, {})[name] = {k: v.to_dict() for k, v in figures.items()}
        print(f"{kind:<11} {name:<44} " + "  ".join(f"{k} {v}" for k, v in figures.items()), flush=True)

    show("ranking", "shipped weights", cross_validate_fusion(samples, folds, fit=lambda _: Fusion()))
    if not args.no_refit:
        show("ranking", "weights refitted on the other folds", cross_validate_fusion(samples, folds))

    # In-domain abstention: each fold's questions over an index without some of that fold's videos.
    abstaining = []
    for allowed, asked in left_out_runs(searcher, queries, folds, fold_of_video, args.folds, args.per_fold,
                                        args.draws):
        abstaining += collect(searcher, asked, allowed=allowed)
    folds_abstaining = np.array([fold_of_video[s.group] for s in abstaining])
    print(f"abstention: {len(abstaining)} questions ({args.draws} draws), "
          f"{sum(not s.answerable for s in abstaining)} about videos left out", flush=True)
    shipped = Fusion()
    show("abstention", "shipped calibration",
         cross_validate_calibration(abstaining, folds_abstaining, shipped, fixed=default_calibration()))
    show("abstention", "fitted on the other folds",
         cross_validate_calibration(abstaining, folds_abstaining, shipped))
    without = [dataclasses.replace(s, coverage=None) for s in abstaining]
    show("abstention", "fitted on the other folds, without coverage",
         cross_validate_calibration(without, folds_abstaining, shipped))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def train_folds(data_dir: Path, index: Path, n_folds: int):
    """The train questions over an index of all the clips (built or reused at ``index``): the searcher, the
    questions, their samples (`clipsearch.evaluate.fitting.collect`), each one's fold of whole videos and the fold
    of each video."""
    data = TutorialVQA.open(data_dir)
    build_index([data.clips_path()], index)
    searcher = Searcher.open(index, query_encoder="torch")
    queries = data.queries(TRAIN)
    samples = collect(searcher, queries)
    folds = group_folds([s.group for s in samples], n_folds)
    fold_of_video = {s.group: int(f) for s, f in zip(samples, folds)}
    return searcher, queries, samples, folds, fold_of_video


def left_out_runs(searcher, queries: list, folds: np.ndarray, fold_of_video: dict[str, int], n_folds: int,
                  per_fold: int, draws: int) -> list[tuple[np.ndarray, list]]:
    """The in-domain abstention runs, (clip rows left in the index, the questions asked over them): in each
    draw and fold, ``per_fold`` of the fold's videos (seeded by draw and fold) are left out and the fold's
    questions asked. Also used by cv_abstention.py, so that both measure the same questions and indexes."""
    video_of_row = np.array([clip.video_id for clip in searcher.index.clips])
    runs = []
    for draw in range(draws):
        for fold in range(n_folds):
            members = sorted(v for v, f in fold_of_video.items() if f == fold)
            left = random.Random(100 * draw + fold).sample(members, min(per_fold, len(members)))
            allowed = np.flatnonzero(~np.isin(video_of_row, left))
            runs.append((allowed, [q for q, f in zip(queries, folds) if f == fold]))
    return runs


if __name__ == "__main__":
    main()
