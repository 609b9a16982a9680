"""Timed transcripts: SRT, WebVTT, YouTube transcript JSON and video lists, read into clean, monotonic cues.

Formats (chosen by extension, then by content):

- ``.srt`` (parsed by ``srt``) and ``.vtt`` (parsed by ``webvtt-py``);
- YouTube transcript JSON: a list of ``{"text", "start", "duration"}`` (seconds), or yt-dlp's ``json3``
  (``{"events": [{"tStartMs", "dDurationMs", "segs": [{"utf8"}]}]}``), as ``.json`` or ``.json3``;
- a video list: ``.jsonl`` records with a ``transcript`` path (relative to the list) and the video's ``video_id``,
  ``title``, ``url``, optional ``source`` and ``chapters`` (``[{"title", "start"}]``).

Cues are normalised: markup (``<v Speaker>``, ``<i>``, ``{\\an8}``, entities) stripped, whitespace collapsed, empty
cues dropped, the lines rolling auto-captions repeat from the previous cue dropped, and overlapping cues clamped (or
merged, when one lies inside the other) so that times never go back. Every error is a :class:`CorpusError`
``PATH:LINE: FIELD: what is wrong``.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import srt
import webvtt
from webvtt.errors import MalformedFileError

from clipsearch.errors import CorpusError
from clipsearch.ingest.clip_record import parse_time
from clipsearch.ingest.textfiles import json_array_items, json_records, read_text, split_lines

#: Extensions that always mean a transcript (``.json`` is one when its content is).
TRANSCRIPT_SUFFIXES = (".srt", ".vtt", ".json3")

_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SPACE = re.compile(r"\s+")
_EVENTS = re.compile(r'"events"\s*:\s*\[')


@dataclass(frozen=True)
class Cue:
    """One caption: ``text`` said from ``start`` to ``end`` seconds; ``line`` is where it starts in its file."""

    start: float
    end: float
    text: str
    line: int


@dataclass(frozen=True)
class Chapter:
    """A titled part of a video, from ``start`` seconds to the next chapter (or the end)."""

    title: str
    start: float


@dataclass(frozen=True)
class Transcript:
    """The normalised cues of one video and what is known about the video."""

    video_id: str
    cues: tuple[Cue, ...]
    path: str
    title: str | None = None
    url: str | None = None
    source: str = ""
    chapters: tuple[Chapter, ...] = ()


def is_transcript_json(records: list[tuple[object, int]]) -> bool:
    """True for the records of a YouTube transcript JSON: a list of ``{"text", "start", ...}`` or ``{"events"}``."""
    if not records:
        return False
    first = records[0][0]
    if len(records) == 1 and isinstance(first, dict) and "events" in first:
        return True
    return isinstance(first, dict) and "text" in first and "start" in first and "answer" not in first


def is_video_list(records: list[tuple[object, int]]) -> bool:
    """True for the records of a video list (the first names a ``transcript``)."""
    return bool(records) and isinstance(records[0][0], dict) and "transcript" in records[0][0]


def read_transcript(path: str | Path, records: list[tuple[object, int]] | None = None) -> Transcript:
    """One transcript file; its video id is the file name without extension.

    Args:
        records: the file's JSON records when the caller has already read them.
    """
    path = Path(path)
    return Transcript(video_id=path.stem, cues=tuple(read_cues(path, records)), path=str(path))


def read_cues(path: str | Path, records: list[tuple[object, int]] | None = None) -> list[Cue]:
    """The normalised cues of a transcript file (SRT, WebVTT or YouTube JSON)."""
    name = str(path)
    suffix = Path(path).suffix.lower()
    if records is not None:
        raw = _json_cues(records, read_text(Path(path), name), name)
    else:
        text = read_text(Path(path), name)
        if suffix == ".vtt" or (suffix != ".srt" and text.lstrip().startswith("WEBVTT")):
            raw = _vtt_cues(text, name)
        elif suffix in (".json", ".json3") or text.lstrip().startswith(("{", "[")):
            raw = _json_cues(json_records(text, name), text, name)
        else:
            raw = _srt_cues(text, name)
    cues = normalise(raw)
    if not cues and any(_clean(cue.text) for cue in raw):
        first = min(raw, key=lambda c: c.line)
        raise CorpusError(name, first.line, "end", "every cue with text ends where it starts: no clip can be cut "
                          "from a transcript that lasts no time")
    return cues


def read_video_list(path: str | Path, records: list[tuple[object, int]]) -> list[Transcript]:
    """The transcripts a video list names, in order; errors in a record name the list's line."""
    name = str(path)
    folder = Path(path).parent
    transcripts = []
    for record, line in records:
        if not isinstance(record, dict):
            raise CorpusError(name, line, None, f"expected a JSON object, got {type(record).__name__}")

        def text(field: str, record: dict = record, line: int = line) -> str | None:
            value = record.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise CorpusError(name, line, field, f"must be a string, got {type(value).__name__}")
            return str(value).strip()

        relative = text("transcript")
        if relative is None:
            raise CorpusError(name, line, "transcript", "missing or empty; expected the transcript file's path")
        file = folder / relative
        if not file.is_file():
            raise CorpusError(name, line, "transcript", f"no such file: {file}")
        transcripts.append(Transcript(
            video_id=text("video_id") or file.stem,
            cues=tuple(read_cues(file)),
            path=str(file),
            title=text("title"),
            url=text("url"),
            source=text("source") or "",
            chapters=_chapters(record.get("chapters"), name, line),
        ))
    return transcripts


def normalise(cues: list[Cue]) -> list[Cue]:
    """Clean text, drop empty cues and repeated rolling lines, and clamp or merge overlaps (times monotonic)."""
    out: list[Cue] = []
    last_line = ""  # the previous cue's last line of text, which rolling auto-captions repeat
    for cue in sorted(cues, key=lambda c: (c.start, c.line)):
        lines = [_clean(part) for part in cue.text.splitlines()]
        lines = [part for part in lines if part]
        while lines and out and lines[0] == last_line:
            lines.pop(0)
        if not lines:
            continue
        last_line = lines[-1]
        text = " ".join(lines)
        if out and cue.start < out[-1].end:
            previous = out[-1]
            if cue.start <= previous.start or cue.end <= previous.end:
                # One inside the other: one cue of both texts over both times.
                out[-1] = replace(previous, end=max(previous.end, cue.end), text=f"{previous.text} {text}")
                continue
            out[-1] = replace(previous, end=cue.start)
        out.append(replace(cue, text=text))
    for k in range(len(out) - 1):
        if out[k].end <= out[k].start:  # no duration given (YouTube JSON may omit it): until the next cue
            out[k] = replace(out[k], end=out[k + 1].start)
    return _join_instants(out)


def _join_instants(cues: list[Cue]) -> list[Cue]:
    """Cues that still last no time (the last one without a duration, a zero-length cue) join the cue before them,
    or the next one when none is before: a clip always lasts (issue 19: fuzzing found zero-length clips)."""
    timed: list[Cue] = []
    waiting: list[Cue] = []
    for cue in cues:
        if cue.end <= cue.start and timed:
            timed[-1] = replace(timed[-1], end=max(timed[-1].end, cue.end), text=f"{timed[-1].text} {cue.text}")
        elif cue.end <= cue.start:
            waiting.append(cue)
        else:
            if waiting:
                cue = replace(cue, start=waiting[0].start, line=waiting[0].line,
                              text=" ".join([*(w.text for w in waiting), cue.text]))
                waiting = []
            timed.append(cue)
    return timed


def _clean(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(_MARKUP.sub("", text))).strip()


def _srt_cues(text: str, name: str) -> list[Cue]:
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as exc:
        skipped = len(exc.unmatched_content) - len(exc.unmatched_content.lstrip())
        line = text.count("\n", 0, exc.expected_start + skipped) + 1
        first = exc.unmatched_content.strip().splitlines()[0] if exc.unmatched_content.strip() else ""
        raise CorpusError(name, line, "timing", f"unreadable SRT cue starting {first!r} (expected a number, then "
                          "'HH:MM:SS,mmm --> HH:MM:SS,mmm', then the text)") from None
    lines = _arrow_lines(text)
    cues = []
    for i, sub in enumerate(subtitles):
        line = _line_of(i, lines)
        start, end = sub.start.total_seconds(), sub.end.total_seconds()
        _check_span(start, end, srt.timedelta_to_srt_timestamp(sub.start), srt.timedelta_to_srt_timestamp(sub.end),
                    name, line)
        cues.append(Cue(start, end, sub.content, line))
    return cues


def _vtt_cues(text: str, name: str) -> list[Cue]:
    try:
        captions = list(webvtt.from_string(text))
    except MalformedFileError:
        raise CorpusError(name, 1, None, "not WebVTT: the first line must start with 'WEBVTT'") from None
    lines = _arrow_lines(text)
    if len(lines) != len(captions):
        # webvtt-py skips cues it cannot read; find the first one and say so.
        all_lines = split_lines(text)
        for number in lines:
            if not list(webvtt.from_string(f"WEBVTT\n\n{all_lines[number - 1]}\n-\n")):
                raise CorpusError(name, number, "timing", f"unreadable cue timing {all_lines[number - 1].strip()!r} "
                                  "(expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm')")
    cues = []
    for i, caption in enumerate(captions):
        line = _line_of(i, lines)
        start, end = caption.start_time.in_milliseconds() / 1000, caption.end_time.in_milliseconds() / 1000
        _check_span(start, end, caption.start, caption.end, name, line)
        cues.append(Cue(start, end, caption.text, line))
    return cues


def _json_cues(records: list[tuple[object, int]], text: str, name: str) -> list[Cue]:
    if len(records) == 1 and isinstance(records[0][0], dict) and "events" in records[0][0]:
        return _json3_cues(records[0][0], text, name)
    if not is_transcript_json(records):
        raise CorpusError(name, records[0][1] if records else None, None,
                          'not a transcript: expected a list of {"text", "start", "duration"} or yt-dlp json3 '
                          '{"events": [...]}')
    cues = []
    for record, line in records:
        if not isinstance(record, dict):
            raise CorpusError(name, line, None, f"expected a JSON object, got {type(record).__name__}")
        start = _seconds(record, "start", name, line)
        duration = _seconds(record, "duration", name, line) if record.get("duration") is not None else 0.0
        if duration < 0:
            raise CorpusError(name, line, "duration",
                              f"{record['duration']} is negative: the cue would end before it starts")
        words = record.get("text")
        if not isinstance(words, str):
            raise CorpusError(name, line, "text", f"must be a string, got {type(words).__name__}")
        cues.append(Cue(start, start + duration, words, line))
    return cues


def _json3_cues(document: dict, text: str, name: str) -> list[Cue]:
    found = _EVENTS.search(text)
    if found is None or not isinstance(document["events"], list):
        raise CorpusError(name, 1, "events", "expected a list of caption events")
    cues = []
    for event, line in json_array_items(text, found.end() - 1, name):
        if not isinstance(event, dict) or not event.get("segs"):
            continue  # window and style events carry no text
        segs = event["segs"]
        if not isinstance(segs, list) or not all(isinstance(s, dict) for s in segs):
            raise CorpusError(name, line, "segs", "expected a list of {\"utf8\": text} objects")
        start = _seconds(event, "tStartMs", name, line) / 1000
        duration = _seconds(event, "dDurationMs", name, line) / 1000 if "dDurationMs" in event else 0.0
        if duration < 0:
            raise CorpusError(name, line, "dDurationMs",
                              f"{event['dDurationMs']} is negative: the cue would end before it starts")
        cues.append(Cue(start, start + duration, "".join(str(s.get("utf8", "")) for s in segs), line))
    return cues


def _seconds(record: dict, field: str, name: str, line: int) -> float:
    value = record.get(field)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CorpusError(name, line, field, "missing" if value is None else f"expected a number, got {value!r}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise CorpusError(name, line, field, f"{value!r} is not a number") from None
    if not math.isfinite(number) or (number < 0 and field in ("start", "tStartMs")):
        raise CorpusError(name, line, field, f"{value!r} is not a time (must be a finite number >= 0)")
    return number


def _check_span(start: float, end: float, start_text: str, end_text: str, name: str, line: int | None) -> None:
    if end < start:
        raise CorpusError(name, line, "end", f"{end_text} is before start {start_text}")


def _line_of(index: int, lines: list[int]) -> int:
    """The timing line of cue ``index`` (a cue whose text held ``-->`` can shift the count: then the last one)."""
    return lines[min(index, len(lines) - 1)] if lines else 1


def _arrow_lines(text: str) -> list[int]:
    """Line numbers of the cue timing lines (the lines with ``-->``), in order."""
    return [number for number, line in enumerate(split_lines(text), start=1) if "-->" in line]


def _chapters(value: object, name: str, line: int) -> tuple[Chapter, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CorpusError(name, line, "chapters",
                          f'expected a list of {{"title", "start"}}, got {type(value).__name__}')
    chapters = []
    for n, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("title"), str) or not item["title"].strip():
            raise CorpusError(name, line, f"chapters[{n}]", 'expected {"title": non-empty text, "start": time}')
        try:
            start = parse_time(item.get("start"))
        except ValueError as exc:
            raise CorpusError(name, line, f"chapters[{n}].start", str(exc)) from None
        chapters.append(Chapter(item["title"].strip(), start))
    return tuple(sorted(chapters, key=lambda c: c.start))
