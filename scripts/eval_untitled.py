#!/usr/bin/env python
"""Do clips without a question (transcript cuts) lose to titled clips beside them? TutorialVQA, half untitled.

Builds three indexes of the 408 hand-cut TutorialVQA clips: the questions of a seeded half of the videos removed
("mixed"), every question removed, every question kept. Prints dev Hit@1 separately for the questions about that
half and about the other half. If untitled clips were pushed down by titled ones, "mixed" would score the untitled
half below the all-untitled index.

Example usage:

    python scripts/eval_untitled.py                    # dev questions, seed 3
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from tutorialvqa import DATA_DIR, TutorialVQA

from clipsearch import Searcher, build_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--queries", default="queries-dev.jsonl", help="query file inside --data")
    parser.add_argument("--seed", type=int, default=3, help="which half of the videos loses its questions")
    parser.add_argument("--cache", type=Path, help="embedding cache directory shared by the three builds")
    args = parser.parse_args()

    data = TutorialVQA.open(args.data)
    clips = data.clips()
    videos = sorted({clip.video_id for clip in clips})
    random.Random(args.seed).shuffle(videos)
    half = set(videos[: len(videos) // 2])
    video_of = {clip.id: clip.video_id for clip in clips}
    queries = data.queries(args.queries)
    print(f"{'index':<8} {'Hit@1, untitled half':>21} {'Hit@1, other half':>18}")
    with tempfile.TemporaryDirectory() as temp:
        cache = args.cache or Path(temp) / "cache"
        vectors = None
        for name, untitled in (("mixed", half), ("none", set(videos)), ("all", set())):
            source = Path(temp) / f"{name}.jsonl"
            source.write_text("".join(
                json.dumps({**clip.to_dict(), "question": "" if clip.video_id in untitled else clip.question}) + "\n"
                for clip in clips), encoding="utf-8")
            build_index([source], Path(temp) / name, cache_dir=cache)
            searcher = Searcher.open(Path(temp) / name)
            if vectors is None:
                vectors = searcher.encoder.encode([q.query for q in queries])
            hits = {True: [], False: []}
            for query, vector in zip(queries, vectors):
                top = searcher.search_encoded(query.query, vector[None], k=1, collapse=False).results
                in_half = any(video_of.get(r) in half for r in query.relevant)
                hits[in_half].append(bool(top) and top[0].clip.id in query.relevant)
            print(f"{name:<8} {sum(hits[True]) / len(hits[True]):>21.3f} {sum(hits[False]) / len(hits[False]):>18.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
