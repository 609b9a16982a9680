#!/usr/bin/env python
"""Fine-tune on the shared TutorialVQA train questions and measure on dev, as `clipsearch tune` does.

Two settings:

- default: train on all of queries-train.jsonl, measure on all of queries-dev.jsonl (85 dev questions repeat a train
  question word for word, so this flatters the model);
- `--video-disjoint`: what a new corpus sees. Train on the train questions of every video except the ten
  `random.Random(11).sample(sorted(video_ids), 10)`, measure on those ten videos' dev questions.

Example usage:

    python scripts/tune_tutorialvqa.py --out models/tutorialvqa
    python scripts/tune_tutorialvqa.py --video-disjoint --out models/tutorialvqa-disjoint
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tutorialvqa import DATA_DIR, DEV, TRAIN, TutorialVQA

from clipsearch.evaluate.tuning import TuneOptions, tune


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--video-disjoint", action="store_true", help="hold the ten Random(11) videos out of training")
    parser.add_argument("--work", type=Path, help="scratch directory kept between runs (embedding cache)")
    args = parser.parse_args()

    data = TutorialVQA.open(args.data)
    clips, train, dev = data.clips_path(), data.queries_path(TRAIN), data.queries_path(DEV)
    with tempfile.TemporaryDirectory() as scratch:
        if args.video_disjoint:
            video_of = {c["id"]: c["video_id"] for c in data.clip_records()}
            held = data.left_out_videos(10)
            about_held = lambda q: bool({video_of[i] for i in q["relevant"]} & held)  # noqa: E731
            train = write_jsonl(Path(scratch) / "train.jsonl",
                                [q for q in data.query_records(TRAIN) if not about_held(q)])
            dev = write_jsonl(Path(scratch) / "dev.jsonl", [q for q in data.query_records(DEV) if about_held(q)])
        result = tune([clips], [train], args.out, dev_files=[dev], options=TuneOptions(), work=args.work,
                      say=lambda message: print(message, flush=True))
    print(json.dumps({"before": result.before, "after": result.after, "fusion": result.fusion,
                      "train_questions": result.train_questions, "dev_questions": result.dev_questions,
                      "seconds": result.seconds}, indent=2))


if __name__ == "__main__":
    main()
