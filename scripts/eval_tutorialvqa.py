#!/usr/bin/env python
"""Retrieval quality on the shared TutorialVQA set: build an index of its clips, bench its labelled questions.

Example usage:

    python scripts/eval_tutorialvqa.py                       # dev questions, index in index/tutorialvqa
    python scripts/eval_tutorialvqa.py --queries queries-train.jsonl --compare --report reports/tutorialvqa
    python scripts/eval_tutorialvqa.py --leave-out 10 --index index/tutorialvqa-abstention \
        --report reports/tutorialvqa-abstention   # in-domain abstention: ten videos left out of the index

The same as `clipsearch index build ../shared/data/tutorialvqa/clips.jsonl --out index/tutorialvqa` followed by
`clipsearch bench --index index/tutorialvqa --queries ../shared/data/tutorialvqa/queries-dev.jsonl`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tutorialvqa import DATA_DIR, TutorialVQA

from clipsearch import Searcher, build_index
from clipsearch.evaluate import report
from clipsearch.evaluate.benchmark import run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--queries", default="queries-dev.jsonl", help="query file inside --data")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"), help="index directory to (re)build")
    parser.add_argument("--compare", action="store_true", help="also bench BM25 only and dense only")
    parser.add_argument("--report", type=Path, help="directory for report.md and the plots")
    parser.add_argument("--json", type=Path, help="file for the metrics JSON")
    parser.add_argument("--leave-out", type=int, default=0, metavar="N",
                        help="build the index without N videos, random.Random(11).sample(sorted(video_ids), N): "
                             "their questions should get answered: false")
    args = parser.parse_args()

    data = TutorialVQA.open(args.data)
    clips = data.clips_path()
    if args.leave_out:
        records = data.clip_records()
        left_out = data.left_out_videos(args.leave_out)
        args.index.mkdir(parents=True, exist_ok=True)
        clips = args.index.parent / f"{args.index.name}-clips.jsonl"
        clips.write_text("".join(json.dumps(r) + "\n" for r in records if r["video_id"] not in left_out))
        print(f"left out {len(left_out)} videos: {', '.join(sorted(left_out))}")
    build = build_index([clips], args.index)
    print(f"index: {build.clips} clips, {build.vectors} vectors, built in {build.seconds:.1f}s")
    source = data.queries_path(args.queries)
    result = run_benchmark(Searcher.open(args.index), data.queries(source), compare=args.compare, sources=[source])
    print(report.render(result, markdown=False), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.report:
        print("wrote", ", ".join(str(p) for p in report.write(result, args.report)))


if __name__ == "__main__":
    main()
