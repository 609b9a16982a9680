#!/usr/bin/env python
"""Fit the default abstention calibration that ships as src/clipsearch/default_calibration.json.

Train-side data only, never a dev question and never the ten videos `random.Random(11).sample(video_ids, 10)` that
the in-domain abstention benchmark leaves out:

- an index of TutorialVQA clips without ten *other* videos (`random.Random(2024)` over the rest);
- answerable: the train questions about indexed videos; unanswerable: the train questions about the ten left out;
- our own sets: examples/questions.jsonl and tests/data/seed_paraphrases.jsonl (answerable) and the two off-topic
  sets (unanswerable), over indexes of the example corpus and the seed page, weighted 5x.

A logistic regression (scikit-learn: `pip install scikit-learn`) over the top result's calibration features; the
threshold keeps 90 % of the answerable TutorialVQA train questions answered.

Example usage:

    python scripts/fit_calibration.py --work /tmp/calibration --write
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from clipsearch import Searcher, build_index
from clipsearch.calibration import FEATURES, Calibration, result_features

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TUTORIALVQA = SHARED / "data" / "tutorialvqa"
OWN_WEIGHT = 5.0
ANSWERED_RATE = 0.90


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def top_features(searcher: Searcher, queries: list[str]) -> list[list[float]]:
    vectors = searcher.encoder.encode(queries, batch_size=64)
    rows = []
    for query, vector in zip(queries, vectors):
        hits = searcher.search_encoded(query, vector[None], k=10).results
        features = result_features([h.score for h in hits], [h.scores for h in hits])[0]
        rows.append([features[name] for name in FEATURES])
    return rows


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/clipsearch-calibration"), help="scratch folder")
    parser.add_argument("--write", action="store_true", help="write src/clipsearch/default_calibration.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    clips = read_jsonl(TUTORIALVQA / "clips.jsonl")
    videos = sorted({c["video_id"] for c in clips})
    benchmark_held_out = set(random.Random(11).sample(videos, 10))
    held_out = set(random.Random(2024).sample([v for v in videos if v not in benchmark_held_out], 10))
    kept = args.work / "clips.jsonl"
    kept.write_text("".join(json.dumps(c) + "\n" for c in clips if c["video_id"] not in held_out))
    build_index([kept], args.work / "tutorialvqa", cache_dir=args.work / "cache")
    video_of = {c["id"]: c["video_id"] for c in clips}
    train = read_jsonl(TUTORIALVQA / "queries-train.jsonl")
    X = top_features(Searcher.open(args.work / "tutorialvqa"), [q["query"] for q in train])
    y = [0 if {video_of[c] for c in q["relevant"]} & held_out else 1 for q in train]
    weights = [1.0] * len(y)

    own = [
        ([REPO / "examples" / "clips.jsonl", REPO / "examples" / "page.txt"],
         [REPO / "examples" / "questions.jsonl", REPO / "examples" / "offtopic.jsonl"], "example"),
        ([SHARED / "seeds" / "000_54ed5500dd6f44a6.txt"],
         [REPO / "tests" / "data" / "seed_paraphrases.jsonl", REPO / "tests" / "data" / "seed_offtopic.jsonl"], "seed"),
    ]
    for sources, query_files, name in own:
        build_index(sources, args.work / name, cache_dir=args.work / "cache")
        queries = [q for f in query_files for q in read_jsonl(f)]
        X += top_features(Searcher.open(args.work / name), [q["query"] for q in queries])
        y += [1 if q["relevant"] else 0 for q in queries]
        weights += [OWN_WEIGHT] * len(queries)

    X, y, weights = np.array(X), np.array(y), np.array(weights)
    model = LogisticRegression(C=1.0, max_iter=3000).fit(X, y, sample_weight=weights)
    tutorial = np.arange(len(train))
    confidence = model.predict_proba(X[tutorial])[:, 1]
    threshold = float(np.quantile(confidence[y[tutorial] == 1], 1 - ANSWERED_RATE))
    calibration = Calibration(
        {name: round(float(c), 6) for name, c in zip(FEATURES, model.coef_[0])},
        round(float(model.intercept_[0]), 6),
        round(threshold, 6),
    )
    text = json.dumps(calibration.to_dict(), indent=2) + "\n"
    print(text)
    if args.write:
        (REPO / "src" / "clipsearch" / "default_calibration.json").write_text(text)


if __name__ == "__main__":
    main()
