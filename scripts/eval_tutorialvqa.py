#!/usr/bin/env python
"""Retrieval quality on the shared TutorialVQA set: build an index of its clips, ask its labelled questions.

Example usage:

    python scripts/eval_tutorialvqa.py                       # dev questions, index in index/tutorialvqa
    python scripts/eval_tutorialvqa.py --queries queries-train.jsonl

Prints MRR@10, Hit@1, Recall@10 and the per-query latency (median, p95) of Searcher.search.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from clipsearch import Searcher, build_index

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tutorialvqa"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--queries", default="queries-dev.jsonl", help="query file inside --data")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"), help="index directory to (re)build")
    args = parser.parse_args()

    build = build_index([args.data / "clips.jsonl"], args.index)
    print(f"index: {build.clips} clips, {build.vectors} vectors, built in {build.seconds:.1f}s")
    searcher = Searcher.open(args.index)
    queries = [json.loads(line) for line in (args.data / args.queries).read_text().splitlines() if line.strip()]
    reciprocal, hits, recall, latencies = [], 0, 0, []
    for query in queries:
        began = time.perf_counter()
        answer = searcher.search(query["query"], k=10)
        latencies.append((time.perf_counter() - began) * 1000)
        ids = [hit.clip.id for hit in answer.results]
        ranks = [rank for rank, clip in enumerate(ids, start=1) if clip in query["relevant"]]
        reciprocal.append(1 / ranks[0] if ranks else 0.0)
        hits += bool(ranks) and ranks[0] == 1
        recall += len(set(ids) & set(query["relevant"])) / len(query["relevant"])
    n = len(queries)
    latencies.sort()
    print(f"{args.queries}: {n} questions")
    print(f"MRR@10 {sum(reciprocal) / n:.3f}  Hit@1 {hits / n:.3f}  Recall@10 {recall / n:.3f}")
    print(f"latency per query: p50 {statistics.median(latencies):.1f} ms, p95 {latencies[int(0.95 * n)]:.1f} ms")


if __name__ == "__main__":
    main()
