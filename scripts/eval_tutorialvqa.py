#!/usr/bin/env python
"""Retrieval quality on the shared TutorialVQA set: build an index of its clips, bench its labelled questions.

Example usage:

    python scripts/eval_tutorialvqa.py                       # dev questions, index in index/tutorialvqa
    python scripts/eval_tutorialvqa.py --queries queries-train.jsonl --compare --report reports/tutorialvqa

The same as `clipsearch index build ../shared/data/tutorialvqa/clips.jsonl --out index/tutorialvqa` followed by
`clipsearch bench --index index/tutorialvqa --queries ../shared/data/tutorialvqa/queries-dev.jsonl`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clipsearch import Searcher, build_index
from clipsearch.benchmark import read_queries, run_benchmark

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tutorialvqa"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--queries", default="queries-dev.jsonl", help="query file inside --data")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"), help="index directory to (re)build")
    parser.add_argument("--compare", action="store_true", help="also bench BM25 only and dense only")
    parser.add_argument("--report", type=Path, help="directory for report.md and the plots")
    parser.add_argument("--json", type=Path, help="file for the metrics JSON")
    args = parser.parse_args()

    build = build_index([args.data / "clips.jsonl"], args.index)
    print(f"index: {build.clips} clips, {build.vectors} vectors, built in {build.seconds:.1f}s")
    source = args.data / args.queries
    result = run_benchmark(Searcher.open(args.index), read_queries([source]), compare=args.compare, sources=[source])
    print(result.text(), end="")
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.report:
        print("wrote", ", ".join(str(p) for p in result.write_report(args.report)))


if __name__ == "__main__":
    main()
