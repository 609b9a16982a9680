"""Read clip files into Clips: JSON lines / JSON, CSV, clip-answer pages and timed transcripts (cut into clips),
with errors that name file and line.

The format is chosen by extension, then by content (the first record's keys): clip records have an ``answer``,
video lists a ``transcript``, YouTube transcript JSON ``text`` and ``start`` (or ``events``). Every error is a
:class:`CorpusError` rendering as ``PATH:LINE: FIELD: what is wrong``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clipsearch.errors import CorpusError
from clipsearch.ingest.clip_page import looks_like_page, parse_page
from clipsearch.ingest.clip_record import (
    CLIP_FIELDS,
    OPTIONAL_FIELDS,
    Clip,
    clip_id,
    parse_time,
    span_problem,
)
from clipsearch.ingest.segmentation import Segmentation, segment
from clipsearch.ingest.textfiles import is_json_document, json_records, jsonl_records, read_text
from clipsearch.ingest.transcripts import (
    TRANSCRIPT_SUFFIXES,
    Transcript,
    is_transcript_json,
    is_video_list,
    read_transcript,
    read_video_list,
)

ACCEPTED_SHAPES = (
    "accepted inputs: .jsonl/.json clip records with 'answer' (and usually 'question', 'start', 'end'), "
    ".csv with a header row naming clip fields (answer, start, end, ...), "
    ".txt clip-answer pages (blocks closed by 'MM:SS - MM:SS'), "
    ".srt and .vtt transcripts, YouTube transcript .json (a list of 'text', 'start', 'duration') or yt-dlp .json3 "
    "('events'), .jsonl video lists with a 'transcript' path per video"
)


@dataclass(frozen=True)
class SourcedClip:
    """A clip and the place it was read from, for error messages."""

    clip: Clip
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def read_clips(paths: Iterable[str | Path], segmentation: Segmentation | None = None) -> list[Clip]:
    """All clips of the given files, in order; transcripts are cut into clips by ``segmentation``.

    Raises:
        CorpusError: a file is missing or malformed, or two records share an id (naming both places).
    """
    seen: dict[str, SourcedClip] = {}
    for sourced in iter_sourced_clips(paths, segmentation):
        first = seen.get(sourced.clip.id)
        if first is not None:
            raise CorpusError(sourced.path, sourced.line, "id",
                              f"duplicate id {sourced.clip.id!r} (first at {first.where})")
        seen[sourced.clip.id] = sourced
    if not seen:
        raise CorpusError(", ".join(str(p) for p in paths) or "<no input>", None, None, "no clips found")
    return [s.clip for s in seen.values()]


def iter_sourced_clips(paths: Iterable[str | Path], segmentation: Segmentation | None = None) -> Iterator[SourcedClip]:
    for path in paths:
        yield from read_file(path, segmentation)


def read_file(path: str | Path, segmentation: Segmentation | None = None) -> list[SourcedClip]:
    """The clips of one file, format chosen by extension and then by content; transcripts are cut by
    ``segmentation`` (default :class:`Segmentation`), each clip placed at its first cue."""
    name = str(path)
    suffix = Path(path).suffix.lower()
    if suffix in TRANSCRIPT_SUFFIXES:
        return _transcript_clips([read_transcript(path)], segmentation)
    text = read_text(Path(path), name)
    if suffix == ".csv":
        records = _csv_records(text, name)
    elif suffix == ".txt":
        return [SourcedClip(clip, name, line) for clip, line in parse_page(text, name)]
    elif suffix in {".jsonl", ".ndjson"}:
        records = jsonl_records(text, name)
    elif suffix == ".json":
        records = json_records(text, name)
    else:
        stripped = text.lstrip()
        if stripped.startswith(("{", "[")):
            records = json_records(text, name) if is_json_document(stripped) else jsonl_records(text, name)
        elif stripped.startswith("WEBVTT") or _looks_like_srt(stripped):
            return _transcript_clips([read_transcript(path)], segmentation)
        elif looks_like_page(text):
            return [SourcedClip(clip, name, line) for clip, line in parse_page(text, name)]
        else:
            raise CorpusError(name, None, None, f"unrecognised input format ({suffix or 'no extension'}); {ACCEPTED_SHAPES}")
    if not records:
        raise CorpusError(name, None, None, "no records found")
    if is_video_list(records):
        return _transcript_clips(read_video_list(path, records), segmentation)
    if suffix not in {".jsonl", ".ndjson"} and is_transcript_json(records):
        return _transcript_clips([read_transcript(path, records)], segmentation)
    _check_shape(records[0][0], name)
    return [SourcedClip(clip_from_record(record, name, line), name, line) for record, line in records]


def _transcript_clips(transcripts: list[Transcript], segmentation: Segmentation | None) -> list[SourcedClip]:
    return [
        SourcedClip(clip, transcript.path, line)
        for transcript in transcripts
        for clip, line in segment(transcript, segmentation)
    ]


def _looks_like_srt(text: str) -> bool:
    """An SRT file starts with a cue number, then a timing line."""
    lines = text.splitlines()
    return len(lines) >= 2 and lines[0].strip().isdigit() and "-->" in lines[1]


def clip_from_record(record: dict, path: str, line: int) -> Clip:
    """Validate one clip record (from JSON or CSV) into a Clip.

    Empty optional values become ``None``; an id missing from the record is derived from its content.
    """
    if not isinstance(record, dict):
        raise CorpusError(path, line, None, f"expected a JSON object, got {type(record).__name__}")

    def text(field: str, required: bool = False) -> str | None:
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise CorpusError(path, line, field, "missing or empty")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise CorpusError(path, line, field, f"must be a string, got {type(value).__name__}")
        return str(value).strip()

    def seconds(field: str) -> float:
        if record.get(field) is None or record.get(field) == "":
            raise CorpusError(path, line, field, "missing")
        try:
            return parse_time(record[field])
        except ValueError as exc:
            raise CorpusError(path, line, field, str(exc)) from None

    answer = text("answer", required=True)
    question = text("question") or ""
    source = text("source") or ""
    start, end = seconds("start"), seconds("end")
    problem = span_problem(start, end, _raw(record["start"]), _raw(record["end"]))
    if problem:
        raise CorpusError(path, line, "end", problem)
    optional = {field: text(field) for field in OPTIONAL_FIELDS}
    return Clip(
        id=text("id") or clip_id(source, start, end, question, "clip"),
        question=question,
        answer=answer,
        start=start,
        end=end,
        source=source,
        **optional,
    )


def _raw(value: object) -> str:
    return value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def _check_shape(record: object, path: str) -> None:
    if isinstance(record, dict) and "answer" in record:
        return
    keys = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
    raise CorpusError(path, None, None, f"unrecognised record shape (keys: {keys}); {ACCEPTED_SHAPES}")


def _csv_records(text: str, path: str) -> list[tuple[dict, int]]:
    # csv.reader, not DictReader: DictReader skips blank rows unseen, shifting every later line number.
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise CorpusError(path, 1, "header", "empty file, expected a header row naming clip fields")
    missing = [f for f in ("answer", "start", "end") if f not in header]
    if missing:
        raise CorpusError(path, 1, "header",
                          f"missing column(s) {', '.join(missing)}; clip CSV columns are: {', '.join(CLIP_FIELDS)}")
    records, previous = [], reader.line_num
    try:
        for cells in reader:
            start_line, previous = previous + 1, reader.line_num
            if len(cells) > len(header):
                raise CorpusError(path, start_line, None, f"{len(cells)} cells, header has {len(header)}")
            if not any(cell.strip() for cell in cells):
                continue
            records.append((dict(zip(header, cells)), start_line))
    except csv.Error as exc:
        raise CorpusError(path, reader.line_num, None, f"invalid CSV: {exc}") from None
    return records
