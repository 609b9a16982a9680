#!/usr/bin/env python
"""The shared TutorialVQA data: where the scripts that reproduce its figures find it, and what they read from it.

The data set lives beside the repository, in the sibling folder ``shared/data/tutorialvqa`` (found relative to this
file; its README.md describes the files): ``clips.jsonl`` (408 hand-cut clips), ``queries-train.jsonl`` and
``queries-dev.jsonl`` (labelled questions), ``videos.jsonl`` and ``transcripts/`` (the 76 videos' WebVTT
transcripts). Scripts with a ``--data`` option read another copy from there. A missing folder or file stops the
script with a message saying what is missing and where it was looked for (:class:`MissingData`).

Used by eval_tutorialvqa.py, eval_transcripts.py, eval_untitled.py, fit_calibration.py, tune_tutorialvqa.py and
the perf package of bench_perf.py: a script run as ``python scripts/X.py`` has scripts/ first on ``sys.path``, so
``import tutorialvqa`` finds this module.

Example usage:

    data = TutorialVQA.open(args.data)      # None: the shared folder
    clips = data.clips()                    # list[Clip]
    dev = data.queries(DEV)                 # list[LabelledQuery]
    held = data.left_out_videos(10)         # the ten videos the in-domain abstention benchmark leaves out

Run alone, it says whether the data is there and what it holds:

    python scripts/tutorialvqa.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from clipsearch.evaluate.benchmark import read_queries, read_reference
from clipsearch.ingest.corpus import read_clips
from clipsearch.ingest.textfiles import jsonl_records, read_text
from clipsearch.ingest.transcripts import read_video_list

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA_DIR = SHARED / "data" / "tutorialvqa"

CLIPS = "clips.jsonl"
VIDEOS = "videos.jsonl"
TRAIN = "queries-train.jsonl"
DEV = "queries-dev.jsonl"
#: ``random.Random(LEAVE_OUT_SEED).sample(sorted(video_ids), n)`` picks the videos the in-domain abstention benchmark
#: (eval_tutorialvqa.py --leave-out), the calibration fit and the video-disjoint tuning hold out.
LEAVE_OUT_SEED = 11


class MissingData(SystemExit):
    """The TutorialVQA folder or one of its files is not there. A SystemExit: the script stops with this message
    (status 1) instead of a traceback."""


@dataclass(frozen=True)
class TutorialVQA:
    """One copy of the TutorialVQA folder; every path it hands out exists."""

    root: Path

    @classmethod
    def open(cls, root: str | Path | None = None) -> TutorialVQA:
        """The folder ``root`` (default :data:`DATA_DIR`, the shared one).

        Raises:
            MissingData: the folder does not exist.
        """
        root = DATA_DIR if root is None else Path(root)
        if not root.is_dir():
            raise MissingData(_missing(root, "folder"))
        return cls(root)

    def path(self, name: str | Path) -> Path:
        """The file ``name`` inside the folder (an absolute ``name`` stands for itself).

        Raises:
            MissingData: the file does not exist.
        """
        path = self.root / name
        if not path.is_file():
            raise MissingData(_missing(path, "file"))
        return path

    # clips ---------------------------------------------------------------------------------------------------

    def clips_path(self) -> Path:
        return self.path(CLIPS)

    def clip_records(self) -> list[dict]:
        """The rows of clips.jsonl as they are (JSON objects), in file order."""
        return read_jsonl(self.clips_path())

    def clips(self) -> list:
        """The clips of clips.jsonl as clipsearch reads them (``Clip``), in file order."""
        return read_clips([self.clips_path()])

    def reference(self) -> dict:
        """The moment of every clip, ``{clip id: (video_id, start, end)}``: the reference of ``bench --reference``."""
        return read_reference([self.clips_path()])

    def video_ids(self) -> list[str]:
        """The videos the clips come from, sorted."""
        return sorted({record["video_id"] for record in self.clip_records()})

    def left_out_videos(self, count: int, seed: int = LEAVE_OUT_SEED) -> set[str]:
        """``random.Random(seed).sample(video_ids, count)``: the videos a held-out run leaves out."""
        return set(random.Random(seed).sample(self.video_ids(), count))

    # questions -----------------------------------------------------------------------------------------------

    def queries_path(self, name: str | Path) -> Path:
        """A question file: ``name`` inside the folder (:data:`TRAIN`, :data:`DEV`), or a path."""
        return self.path(name)

    def queries(self, *names: str | Path) -> list:
        """The labelled questions (``LabelledQuery``) of the question files ``names``, in order."""
        return read_queries([self.queries_path(name) for name in names])

    def query_records(self, name: str | Path) -> list[dict]:
        """The rows of one question file as they are (``qid``, ``query``, ``relevant``)."""
        return read_jsonl(self.queries_path(name))

    # videos and transcripts ----------------------------------------------------------------------------------

    def videos_path(self) -> Path:
        """videos.jsonl: the video list that names each video's WebVTT transcript (a clipsearch input)."""
        return self.path(VIDEOS)

    def transcripts(self) -> list:
        """The transcripts videos.jsonl names (``Transcript``: video id, title, url, timed cues), in order."""
        videos = self.videos_path()
        return read_video_list(videos, jsonl_records(read_text(videos, str(videos)), str(videos)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _missing(path: Path, what: str) -> str:
    return (
        f"TutorialVQA data: {what} {path} not found. The scripts read the TutorialVQA set from the repository's "
        f"sibling folder shared/data/tutorialvqa (here {DATA_DIR}); scripts with a --data option take another "
        "copy. Its README.md lists the files: clips.jsonl, queries-train.jsonl, queries-dev.jsonl, videos.jsonl, "
        "transcripts/."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    args = parser.parse_args(argv)
    data = TutorialVQA.open(args.data)
    print(f"{data.root}: {len(data.clip_records())} clips of {len(data.video_ids())} videos, "
          f"{len(data.query_records(TRAIN))} train and {len(data.query_records(DEV))} dev questions, "
          f"{len(data.transcripts())} transcripts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
