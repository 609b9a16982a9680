"""Cut a transcript's cues into clips with exact start and end times.

Rules, in order of precedence:

1. chapters are hard boundaries, and a chapter's title is the ``question`` of its clips (else ``""``);
2. a cue is never split: a clip starts at one cue's start and ends at a later (or the same) cue's end;
3. a clip is at most ``max_seconds`` long unless it is a single cue that long, and at least ``min_seconds`` long
   unless it cannot join a neighbour within ``max_seconds`` (or its chapter is shorter);
4. among the cuts that respect the bounds, the best one (dynamic programming over the cue gaps) prefers gaps at
   sentence ends and long pauses (auto-captions have no punctuation) and clips near the target length;
5. with ``overlap`` (the default), each cut inside a chapter also gets a clip from the middle cue of the clip before
   it to the middle cue of the clip after it (when that is within ``max_seconds``), so a moment that straddles a
   cut is still one clip. The search collapses overlapping clips of a video into one result.

Measured on 700 TutorialVQA train questions (moment Hit@1, see ``scripts/eval_transcripts.py``), the overlap clips
were worth about +0.03; a topic-shift term (a drop in embedding similarity between neighbouring cues) did not
measurably help and is not used, nor are discourse markers at a cue's start ("now", "next" as boundaries, "and",
"or" as continuations: -0.002 to -0.008 on the same sample).

Clip ids are ``{video_id}@{start_ms}-{end_ms}``: the ``@`` never occurs in derived or hand-cut TutorialVQA ids.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from clipsearch.ingest.clip_record import Clip
from clipsearch.ingest.transcripts import Cue, Transcript

_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


@dataclass(frozen=True)
class Segmentation:
    """How transcripts are cut into clips (the defaults were chosen on TutorialVQA train questions).

    Args:
        min_seconds: shortest clip, unless its chapter or transcript is shorter.
        max_seconds: longest clip, unless it is one cue that long.
        target_seconds: the length a clip is drawn to, between the bounds.
        pause_seconds: a silence between cues this long counts as a full boundary.
        overlap: also cut a clip across each boundary, from the middle of one clip to the middle of the next.
    """

    min_seconds: float = 15.0
    max_seconds: float = 60.0
    target_seconds: float = 30.0
    pause_seconds: float = 1.5
    overlap: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds <= self.target_seconds <= self.max_seconds or self.max_seconds <= 0:
            raise ValueError(
                "clip lengths must satisfy 0 <= min <= target <= max and max > 0, got "
                f"min {self.min_seconds:g}, target {self.target_seconds:g}, max {self.max_seconds:g}"
            )
        if self.pause_seconds <= 0:
            raise ValueError(f"pause_seconds must be > 0, got {self.pause_seconds:g}")

    def to_dict(self) -> dict:
        return asdict(self)


def segment(transcript: Transcript, settings: Segmentation | None = None) -> list[tuple[Clip, int]]:
    """The clips of a transcript, in time order, each with the line of its first cue.

    Example usage::

        transcript = read_transcript("talk.srt")
        clips = [clip for clip, _ in segment(transcript, Segmentation(max_seconds=45))]
    """
    settings = settings or Segmentation()
    clips = []
    for title, cues in _chapter_parts(transcript):
        groups = cut(cues, settings)
        if settings.overlap:
            groups += straddling(groups, settings)
        for group in sorted(groups, key=lambda g: (g[0].start, g[-1].end)):
            clips.append((_clip(transcript, group, title), group[0].line))
    return clips


def straddling(groups: list[list[Cue]], settings: Segmentation) -> list[list[Cue]]:
    """For each cut between two groups, the cues from the middle of the one before to the middle of the one after
    (the middle cue included on both sides), when that is at most ``max_seconds`` long."""
    extra = []
    for before, after in zip(groups, groups[1:]):
        cues = before[len(before) // 2 :] + after[: (len(after) + 1) // 2]
        if cues[-1].end - cues[0].start <= settings.max_seconds:
            extra.append(cues)
    return extra


def cut(cues: list[Cue], settings: Segmentation) -> list[list[Cue]]:
    """Split consecutive, monotonic cues into groups (each a future clip), every cue in exactly one group.

    The cut minimises first the number of groups shorter than ``min_seconds`` (so a short group is left only where
    it cannot join a neighbour within ``max_seconds``), then the sum of :func:`length_cost` and ``1 -``
    :func:`boundary_strength` at each cut. No group is longer than ``max_seconds`` unless it is a single cue.
    """
    n = len(cues)
    if n == 0:
        return []
    strength = [boundary_strength(cues[k], cues[k + 1], settings) for k in range(n - 1)]
    best: list[tuple[int, float]] = [(0, 0.0)] + [(n + 1, math.inf)] * n  # best[j]: (short groups, cost) of cues[:j]
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        closing = 0.0 if j == n else 1.0 - strength[j - 1]
        for i in range(j - 1, -1, -1):
            length = cues[j - 1].end - cues[i].start
            if length > settings.max_seconds and i < j - 1:
                break
            shorts, cost = best[i]
            candidate = (shorts + (length < settings.min_seconds), cost + length_cost(length, settings) + closing)
            if candidate < best[j]:
                best[j], back[j] = candidate, i
    groups, j = [], n
    while j > 0:
        groups.append(cues[back[j] : j])
        j = back[j]
    return groups[::-1]


def boundary_strength(before: Cue, after: Cue, settings: Segmentation) -> float:
    """How good a clip boundary the gap between two cues is, 0..1: half for a sentence end, half for a pause."""
    sentence = 1.0 if _SENTENCE_END.search(before.text) else 0.0
    pause = min(max(after.start - before.end, 0.0) / settings.pause_seconds, 1.0)
    return 0.5 * sentence + 0.5 * pause


def length_cost(seconds: float, settings: Segmentation) -> float:
    """The cost of one clip of this length: its squared relative distance from the target length."""
    return ((seconds - settings.target_seconds) / max(settings.target_seconds, 1e-9)) ** 2


def clip_id(video_id: str, start: float, end: float) -> str:
    """``{video_id}@{start_ms}-{end_ms}``."""
    return f"{video_id}@{round(start * 1000)}-{round(end * 1000)}"


def _chapter_parts(transcript: Transcript) -> list[tuple[str, list[Cue]]]:
    """The cues of each chapter (a cue belongs to the chapter it starts in), with the chapter's title."""
    chapters = transcript.chapters
    parts: list[tuple[str, list[Cue]]] = []
    current = -1
    for cue in transcript.cues:
        at = current
        while at + 1 < len(chapters) and chapters[at + 1].start <= cue.start:
            at += 1
        if not parts or at != current:
            parts.append((chapters[at].title if at >= 0 else "", []))
            current = at
        parts[-1][1].append(cue)
    return parts


def _clip(transcript: Transcript, cues: list[Cue], question: str) -> Clip:
    start, end = cues[0].start, cues[-1].end
    return Clip(
        id=clip_id(transcript.video_id, start, end),
        question=question,
        answer=" ".join(cue.text for cue in cues),
        start=start,
        end=end,
        source=transcript.source,
        url=transcript.url,
        video_id=transcript.video_id,
        video_title=transcript.title,
    )
