"""What a search returns: an Answer (answered or not) and its Hits, each with its clip's times and a jump link."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipsearch.ingest.clip_record import Clip, format_time, jump_link


@dataclass(frozen=True)
class Hit:
    """One clip in an answer.

    ``score`` is the number the ranking used; ``scores`` its components (``None`` where absent); ``matched`` the
    field whose vectors matched best (``question`` or ``answer``); ``highlight`` the answer sentence that matches
    the query best, with its character offsets in the answer.
    """

    clip: Clip
    score: float
    matched: str
    scores: dict[str, float | None]
    highlight: dict | None = None
    overlapping: list[str] = field(default_factory=list)
    confidence: float | None = None

    def to_dict(self) -> dict:
        """The clip's fields plus its time range as labels, its length, a link to the moment, and the scores."""
        clip = self.clip
        return {
            **clip.to_dict(),
            "duration": round(clip.duration, 3),
            "start_label": format_time(clip.start),
            "end_label": format_time(clip.end),
            "link": jump_link(clip.url, clip.start, clip.end),
            "score": self.score,
            "confidence": self.confidence,
            "matched": self.matched,
            "scores": self.scores,
            "highlight": self.highlight,
            "overlapping": self.overlapping,
        }


@dataclass(frozen=True)
class Answer:
    """The answer to one query: the closest clips, best first.

    ``answered`` is false when nothing answers the query: no results, or a calibrated index's top confidence below
    ``threshold`` (the results are then the closest, not confident ones). ``best_score`` is the top result's score.
    """

    query: str
    answered: bool
    results: list[Hit] = field(default_factory=list)
    threshold: float | None = None

    @property
    def best_score(self) -> float | None:
        return self.results[0].score if self.results else None

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "answered": self.answered,
            "best_score": self.best_score,
            "threshold": self.threshold,
            "results": [h.to_dict() for h in self.results],
        }
