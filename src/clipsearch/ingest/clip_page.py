"""Parse clip-answer pages: the text a clip site renders, one clip per block closed by its ``MM:SS - MM:SS`` line.

The grammar, block by block (paragraphs are runs of non-blank lines):

- a block ends at its time-range line, which is authoritative for the clip's times;
- the block's first paragraph ending in ``?`` is the question; a short paragraph before it is a topic, which
  carries forward to later clips until another topic appears;
- the paragraphs after the question, up to ``Watch clip answer (…)``, are the answer;
- the paragraph just before the time range is the source;
- ``Logo``, ``Thumbnail``, the ``Watch clip answer`` duration label and page counters (``of44``) are ignored.

Clips get the id ``page-`` + 12 hex digits of sha1(``source|start|end|question``), times in whole seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from clipsearch.errors import CorpusError
from clipsearch.ingest.clip_record import Clip, clip_id, parse_time, span_problem
from clipsearch.ingest.textfiles import split_lines

_TIME = r"\d+:\d{2}(?::\d{2})?"
TIME_RANGE = re.compile(rf"^({_TIME})\s*[-–—]\s*({_TIME})$")
WATCH_LABEL = re.compile(r"^watch clip answer\b", re.IGNORECASE)
PAGE_COUNTER = re.compile(r"^(?:page\s*)?\d*\s*of\s*\d+$", re.IGNORECASE)
NOISE = {"logo", "thumbnail"}
#: A paragraph before a question longer than this is not a topic but stray text.
TOPIC_MAX_WORDS = 12


@dataclass(frozen=True)
class Paragraph:
    line: int
    text: str


def looks_like_page(text: str) -> bool:
    """True when the text has at least one time-range line, the mark of a clip-answer page."""
    return any(TIME_RANGE.match(line.strip()) for line in split_lines(text))


def parse_page(text: str, path: str | Path = "<page>") -> list[tuple[Clip, int]]:
    """Clips of a clip-answer page, each with the line its question is on.

    Raises:
        CorpusError: a block without a question, answer or valid time range, or text after the last clip.
    """
    clips: list[tuple[Clip, int]] = []
    block: list[Paragraph] = []
    topic: str | None = None
    for para in _paragraphs(text):
        match = TIME_RANGE.match(para.text)
        if match:
            clip, line, topic = _clip(block, para, match, topic, path)
            clips.append((clip, line))
            block = []
        else:
            block.append(para)
    if block:
        raise CorpusError(
            path, block[0].line, None,
            f"text after the last clip is not closed by a 'MM:SS - MM:SS' time range: {_short(block[0].text)!r}",
        )
    if not clips:
        raise CorpusError(path, None, None, "no clips found: a clip-answer page closes each clip with a 'MM:SS - MM:SS' line")
    return clips


def _paragraphs(text: str) -> list[Paragraph]:
    """Runs of non-blank lines, joined; a time-range line always stands alone (pages copied without blank lines
    around it still close their clips there)."""
    paragraphs: list[Paragraph] = []
    lines: list[str] = []
    first = 0

    def flush() -> None:
        joined = " ".join(lines)
        if joined and joined.lower() not in NOISE and not PAGE_COUNTER.match(joined):
            paragraphs.append(Paragraph(first, joined))
        lines.clear()

    for number, raw in enumerate(split_lines(text), start=1):
        line = raw.strip()
        if TIME_RANGE.match(line):
            flush()
            paragraphs.append(Paragraph(number, line))
        elif line:
            if not lines:
                first = number
            lines.append(line)
        else:
            flush()
    flush()
    return paragraphs


def _clip(
    block: list[Paragraph], time_line: Paragraph, match: re.Match, topic: str | None, path: str | Path
) -> tuple[Clip, int, str | None]:
    asks = [i for i, p in enumerate(block) if p.text.endswith("?")]
    if not asks:
        raise CorpusError(path, (block[0] if block else time_line).line, "question",
                          "no question (a paragraph ending in '?') before this clip's time range")
    q = asks[0]
    question = block[q]
    for para in block[:q]:
        if len(para.text.split()) > TOPIC_MAX_WORDS:
            raise CorpusError(path, para.line, "topic",
                              f"a paragraph before the question is not a short topic line: {_short(para.text)!r}")
    if q:
        topic = block[q - 1].text
    rest = block[q + 1:]
    watch = next((i for i, p in enumerate(rest) if WATCH_LABEL.match(p.text)), None)
    if watch is None:
        answer_paras, tail = (rest[:-1], rest[-1:]) if len(rest) > 1 else (rest, [])
    else:
        answer_paras, tail = rest[:watch], rest[watch + 1:]
    if len(tail) > 1:
        raise CorpusError(path, tail[0].line, "source",
                          f"expected one source line before the time range, found {len(tail)} paragraphs")
    if not answer_paras:
        raise CorpusError(path, question.line, "answer", "no answer paragraph after the question")
    source = tail[0].text if tail else ""
    start_text, end_text = match.groups()
    times = {}
    for field, value in (("start", start_text), ("end", end_text)):
        try:
            times[field] = parse_time(value)
        except ValueError as exc:
            raise CorpusError(path, time_line.line, field, str(exc)) from None
    start, end = times["start"], times["end"]
    problem = span_problem(start, end, start_text, end_text)
    if problem:
        raise CorpusError(path, time_line.line, "end", problem)
    clip = Clip(
        id=clip_id(source, start, end, question.text, "page"),
        question=question.text,
        answer="\n\n".join(p.text for p in answer_paras),
        start=start,
        end=end,
        source=source,
        topic=topic,
    )
    return clip, question.line, topic


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
