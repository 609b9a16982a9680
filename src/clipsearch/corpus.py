"""Read clip files into Clips: JSON lines / JSON, CSV and clip-answer pages, with errors that name file and line.

The format is chosen by extension, then by content (the first record's keys), so that later record shapes can be
told apart from clips. Every error is a :class:`CorpusError` rendering as ``PATH:LINE: FIELD: what is wrong``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clipsearch.clips import CLIP_FIELDS, OPTIONAL_FIELDS, Clip, clip_id, parse_time, span_problem
from clipsearch.errors import CorpusError
from clipsearch.pages import looks_like_page, parse_page

ACCEPTED_SHAPES = (
    "accepted inputs: .jsonl/.json clip records with 'answer' (and usually 'question', 'start', 'end'), "
    ".csv with a header row naming clip fields (answer, start, end, ...), "
    ".txt clip-answer pages (blocks closed by 'MM:SS - MM:SS')"
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


def read_clips(paths: Iterable[str | Path]) -> list[Clip]:
    """All clips of the given files, in order.

    Raises:
        CorpusError: a file is missing or malformed, or two records share an id (naming both places).
    """
    seen: dict[str, SourcedClip] = {}
    for sourced in iter_sourced_clips(paths):
        first = seen.get(sourced.clip.id)
        if first is not None:
            raise CorpusError(sourced.path, sourced.line, "id",
                              f"duplicate id {sourced.clip.id!r} (first at {first.where})")
        seen[sourced.clip.id] = sourced
    if not seen:
        raise CorpusError(", ".join(str(p) for p in paths) or "<no input>", None, None, "no clips found")
    return [s.clip for s in seen.values()]


def iter_sourced_clips(paths: Iterable[str | Path]) -> Iterator[SourcedClip]:
    for path in paths:
        yield from read_file(path)


def read_file(path: str | Path) -> list[SourcedClip]:
    """The clips of one file, format chosen by extension and then by content."""
    name = str(path)
    text = _read_text(Path(path), name)
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        records = _csv_records(text, name)
    elif suffix == ".txt":
        return [SourcedClip(clip, name, line) for clip, line in parse_page(text, name)]
    elif suffix in {".jsonl", ".ndjson"}:
        records = _jsonl_records(text, name)
    elif suffix == ".json":
        records = _json_records(text, name)
    else:
        stripped = text.lstrip()
        if stripped.startswith(("{", "[")):
            records = _json_records(text, name) if _is_json_document(stripped) else _jsonl_records(text, name)
        elif looks_like_page(text):
            return [SourcedClip(clip, name, line) for clip, line in parse_page(text, name)]
        else:
            raise CorpusError(name, None, None, f"unrecognised input format ({suffix or 'no extension'}); {ACCEPTED_SHAPES}")
    if not records:
        raise CorpusError(name, None, None, "no records found")
    _check_shape(records[0][0], name)
    return [SourcedClip(clip_from_record(record, name, line), name, line) for record, line in records]


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


def _read_text(path: Path, name: str) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(name, None, None, "no such file") from None
    except IsADirectoryError:
        raise CorpusError(name, None, None, "is a directory, expected a clip file") from None
    except OSError as exc:
        raise CorpusError(name, None, None, f"cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(name, line, None, f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def _jsonl_records(text: str, path: str) -> list[tuple[dict, int]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((json.loads(line), number))
        except json.JSONDecodeError as exc:
            raise CorpusError(path, number, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    return records


def _json_records(text: str, path: str) -> list[tuple[dict, int]]:
    """Records of a JSON document (one object, or an array of them), each with the line it starts on."""
    decoder = json.JSONDecoder()

    def fail(exc: json.JSONDecodeError) -> CorpusError:
        return CorpusError(path, exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})")

    pos = _skip_ws(text, 0)
    if pos == len(text):
        return []
    if text[pos] == "[":
        records, pos = [], _skip_ws(text, pos + 1)
        while pos < len(text) and text[pos] != "]":
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise fail(exc) from None
            records.append((value, text.count("\n", 0, pos) + 1))
            pos = _skip_ws(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
            elif pos < len(text) and text[pos] != "]":
                line = text.count("\n", 0, pos) + 1
                raise CorpusError(path, line, None, "invalid JSON: expected ',' or ']' between records")
        if pos >= len(text):
            raise CorpusError(path, text.count("\n") + 1, None, "invalid JSON: unterminated array")
        return records
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(exc) from None
    return [(value, text.count("\n", 0, pos) + 1)]


def _is_json_document(text: str) -> bool:
    """True for an array, or one object filling the whole text (a pretty-printed object is not JSON lines)."""
    if text.startswith("["):
        return True
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


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
