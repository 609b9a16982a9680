#!/usr/bin/env python
"""Moments found in raw transcripts: cut the shared TutorialVQA transcripts into clips, bench the labelled questions.

Builds an index from ``videos.jsonl`` (the 76 WebVTT transcripts, cut by clipsearch's segmentation) and benches the
questions with the human clips as the reference moments (``clipsearch bench --reference``). ``--windows 15 30 60``
adds fixed-window baselines (consecutive cues grouped up to N seconds, the way yt-fts cuts transcripts), built and
benched in the same run.

Example usage:

    python scripts/eval_transcripts.py                                   # dev questions, default segmentation
    python scripts/eval_transcripts.py --queries queries-train.jsonl queries-dev.jsonl --windows 15 30 60
    python scripts/eval_transcripts.py --model models/tutorialvqa --index index/transcripts-tuned   # a tuned model

The first line is the same as
`clipsearch index build ../shared/data/tutorialvqa/videos.jsonl --out index/transcripts` followed by
`clipsearch bench --index index/transcripts --queries ../shared/data/tutorialvqa/queries-dev.jsonl
--reference ../shared/data/tutorialvqa/clips.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tutorialvqa import DATA_DIR, TutorialVQA

from clipsearch import Searcher, build_index
from clipsearch.evaluate.benchmark import run_benchmark
from clipsearch.ingest.segmentation import Segmentation, clip_id


def fixed_windows(data: TutorialVQA, seconds: float, out: Path) -> Path:
    """A clip file of the transcripts cut into consecutive windows of cues up to ``seconds`` long."""
    rows = []
    for transcript in data.transcripts():
        windows: list[list] = []
        for cue in transcript.cues:
            if not windows or cue.end - windows[-1][0].start > seconds:
                windows.append([])
            windows[-1].append(cue)
        for cues in windows:
            start, end = cues[0].start, cues[-1].end
            rows.append({"id": clip_id(transcript.video_id, start, end), "question": "",
                         "answer": " ".join(c.text for c in cues), "start": start, "end": end,
                         "video_id": transcript.video_id, "video_title": transcript.title, "url": transcript.url})
    out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--queries", nargs="+", default=["queries-dev.jsonl"],
                        help="query files inside --data (or paths); each index is benched on each")
    parser.add_argument("--index", type=Path, default=Path("index/transcripts"), help="index directory to (re)build")
    defaults = Segmentation()
    parser.add_argument("--min", type=float, default=defaults.min_seconds, help="shortest clip, seconds")
    parser.add_argument("--target", type=float, default=defaults.target_seconds, help="target clip length, seconds")
    parser.add_argument("--max", type=float, default=defaults.max_seconds, help="longest clip, seconds")
    parser.add_argument("--pause", type=float, default=defaults.pause_seconds, help="a full-boundary pause, seconds")
    parser.add_argument("--no-overlap", action="store_true", help="no clips across the cuts")
    parser.add_argument("--windows", type=float, nargs="*", default=[], help="fixed-window baselines, seconds")
    parser.add_argument("--model", help="encoder name or directory, e.g. one written by `clipsearch tune` "
                        "(default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--json", type=Path, help="file for the metrics of every row, as JSON")
    args = parser.parse_args()

    data = TutorialVQA.open(args.data)
    videos, reference = data.videos_path(), data.reference()
    question_sets = {name: data.queries(name) for name in args.queries}
    segmentation = Segmentation(args.min, args.max, args.target, args.pause, overlap=not args.no_overlap)
    rows = []
    print(f"{'index':<28} {'questions':<24} {'moment Hit@1':>12} {'video Hit@1':>11} {'mean clip s':>11} {'clips':>6}")
    with tempfile.TemporaryDirectory() as temp:
        shape = f"{args.min:g}/{args.target:g}/{args.max:g} s{'' if args.no_overlap else ' +overlap'}"
        inputs = {f"segmented {shape}": ([videos], args.index)}
        for seconds in args.windows:
            clips = fixed_windows(data, seconds, Path(temp) / f"windows-{seconds:g}.jsonl")
            inputs[f"fixed windows {seconds:g} s"] = ([clips], Path(temp) / f"index-{seconds:g}")
        for name, (sources, index) in inputs.items():
            build_index(sources, index, model=args.model, segmentation=segmentation, cache_dir=args.index / "cache")
            searcher = Searcher.open(index)
            for queries_name, queries in question_sets.items():
                result = run_benchmark(searcher, queries, sources=[queries_name], reference=reference)
                row = {"index": name, "questions": Path(queries_name).name, "clips": result.index["clips"],
                       "mean_clip_seconds": result.mean_clip_seconds,
                       **{k: result.main.metrics[k] for k in ("moment_hit@1", "video_hit@1")}}
                rows.append(row)
                print(f"{name:<28} {row['questions']:<24} {row['moment_hit@1']:>12.3f} {row['video_hit@1']:>11.3f} "
                      f"{row['mean_clip_seconds']:>11.1f} {row['clips']:>6}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
