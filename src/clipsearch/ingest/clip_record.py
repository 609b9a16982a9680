"""The Clip record, clip times (``MM:SS`` / ``H:MM:SS`` <-> seconds) and links that open a video at a clip."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: The optional fields a clip may carry, in the order they are written out.
OPTIONAL_FIELDS = ("url", "video_id", "video_title", "topic")
#: Every field a clip record may name.
CLIP_FIELDS = ("id", "question", "answer", "start", "end", "source", *OPTIONAL_FIELDS)

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d{2})(?:\.(\d+))?$")


@dataclass(frozen=True)
class Clip:
    """One answer clip: a span ``[start, end)`` seconds of a video that answers ``question``.

    Args:
        id: unique within an index.
        question: the question the clip answers; may be empty (then it gets no question vector).
        answer: what is said in the clip; never empty.
        start: start time in seconds, ``0 <= start < end``.
        end: end time in seconds.
        source: the channel or publisher; may be empty.
        url, video_id, video_title, topic: optional metadata.
    """

    id: str
    question: str
    answer: str
    start: float
    end: float
    source: str = ""
    url: str | None = None
    video_id: str | None = None
    video_title: str | None = None
    topic: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        """The clip as JSON-ready dict; optional fields only when set."""
        # Not dataclasses.asdict: it deep-copies every value, 70 us a clip (0.7 ms of a 10-result answer).
        return {k: v for k in CLIP_FIELDS if (v := getattr(self, k)) is not None or k not in OPTIONAL_FIELDS}


def clip_id(source: str, start: float, end: float, question: str, prefix: str) -> str:
    """A content-derived id: ``prefix-`` + 12 hex digits of sha1(``source|start|end|question``), times in whole seconds."""
    key = f"{source}|{int(start)}|{int(end)}|{question}"
    return f"{prefix}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:12]}"


def parse_time(value: object) -> float:
    """Seconds from a number, a numeric string, or a clock string ``MM:SS``, ``H:MM:SS`` (optional ``.fff``).

    Raises:
        ValueError: the value is none of those, negative or not finite.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _CLOCK.match(text)
        if match:
            hours, minutes, secs, frac = match.groups()
            if (hours is not None and int(minutes) >= 60) or int(secs) >= 60:
                raise ValueError(f"{text!r} is not a valid time (minutes and seconds must be below 60)")
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + float(f"0.{frac or 0}")
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a time (expected seconds, MM:SS or H:MM:SS)") from None
    else:
        raise ValueError(f"{value!r} is not a time (expected seconds, MM:SS or H:MM:SS)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a time (must be a finite number of seconds >= 0)")
    return seconds


def span_problem(start: float, end: float, start_text: str, end_text: str) -> str | None:
    """Why ``[start, end)`` is not a clip's time range (``end`` not after ``start``), in the input's own words."""
    if end > start:
        return None
    return f"{end_text} {'is before' if end < start else 'equals'} start {start_text}"


def format_time(seconds: float) -> str:
    """``MM:SS`` below an hour, ``H:MM:SS`` from an hour on; fractions are dropped."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def jump_link(url: str | None, start: float, end: float) -> str | None:
    """A URL that opens the video at the clip.

    YouTube watch URLs get ``&t=<start>s``; any other URL a media fragment ``#t=start,end``.
    """
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.netloc.lower().removeprefix("www.").removeprefix("m.")
    if host in {"youtube.com", "youtu.be"}:
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "t"]
        query.append(("t", f"{int(start)}s"))
        return urlunsplit(parts._replace(query=urlencode(query), fragment=""))
    return urlunsplit(parts._replace(fragment=f"t={_num(start)},{_num(end)}"))


def _num(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}".rstrip("0").rstrip(".")
