#!/usr/bin/env python
"""Fit the default abstention calibration that ships as src/clipsearch/scoring/default_calibration.json.

Train-side data only, never a dev question and never the ten videos `random.Random(11).sample(video_ids, 10)` that
the in-domain abstention benchmark leaves out:

- an index of TutorialVQA clips without ten *other* videos (`random.Random(2024)` over the rest);
- answerable: the train questions about indexed videos; unanswerable: the train questions about the ten left out;
- our own sets: examples/questions.jsonl and tests/data/seed_paraphrases.jsonl (answerable) and the two off-topic
  sets (unanswerable), over indexes of the example corpus and the seed page, weighted 5x.

A logistic regression (scikit-learn) over the top result's calibration features
(`clipsearch.evaluate.fitting.fit_calibration`); the threshold is the one with the best abstention F1 that keeps
ANSWERED_RATE of the answerable TutorialVQA train questions answered.

Example usage:

    python scripts/fit_calibration.py --work /tmp/calibration --write
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from tutorialvqa import REPO, SHARED, TRAIN, TutorialVQA

from clipsearch import Searcher, build_index
from clipsearch.evaluate.benchmark import read_queries
from clipsearch.evaluate.fitting import collect, fit_calibration
from clipsearch.scoring.fusion import Fusion

OWN_WEIGHT = 5.0
ANSWERED_RATE = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/clipsearch-calibration"), help="scratch folder")
    parser.add_argument("--write", action="store_true", help="write src/clipsearch/scoring/default_calibration.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    data = TutorialVQA.open()
    clips = data.clip_records()
    videos = data.video_ids()
    benchmark_held_out = data.left_out_videos(10)
    held_out = set(random.Random(2024).sample([v for v in videos if v not in benchmark_held_out], 10))
    kept = args.work / "clips.jsonl"
    kept.write_text("".join(json.dumps(c) + "\n" for c in clips if c["video_id"] not in held_out))
    build_index([kept], args.work / "tutorialvqa", cache_dir=args.work / "cache")
    # A question about a held-out video names no clip of the index: it counts as unanswerable.
    samples = collect(Searcher.open(args.work / "tutorialvqa"), data.queries(TRAIN))
    weights = [1.0] * len(samples)
    tutorial = len(samples)

    own = [
        ([REPO / "examples" / "clips.jsonl", REPO / "examples" / "page.txt"],
         [REPO / "examples" / "questions.jsonl", REPO / "examples" / "offtopic.jsonl"], "example"),
        ([SHARED / "seeds" / "000_54ed5500dd6f44a6.txt"],
         [REPO / "tests" / "data" / "seed_paraphrases.jsonl", REPO / "tests" / "data" / "seed_offtopic.jsonl"], "seed"),
    ]
    for sources, query_files, name in own:
        build_index(sources, args.work / name, cache_dir=args.work / "cache")
        samples += collect(Searcher.open(args.work / name), read_queries(query_files))
        weights += [OWN_WEIGHT] * (len(samples) - len(weights))

    rate_of = [i < tutorial for i in range(len(samples))]
    calibration = fit_calibration(samples, Fusion(), answered_rate=ANSWERED_RATE, weights=weights, rate_of=rate_of)
    text = json.dumps(calibration.to_dict(), indent=2) + "\n"
    print(text)
    if args.write:
        (REPO / "src" / "clipsearch" / "scoring" / "default_calibration.json").write_text(text)


if __name__ == "__main__":
    main()
