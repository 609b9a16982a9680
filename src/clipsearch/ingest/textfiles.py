"""Input files as text and JSON records, each record with the line it starts on, for errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

from clipsearch.errors import CorpusError


def read_text(path: Path, name: str) -> str:
    """The file's text (UTF-8, a BOM dropped)."""
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


def jsonl_records(text: str, path: str) -> list[tuple[object, int]]:
    """The value of every non-blank line, with its line number."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((json.loads(line), number))
        except json.JSONDecodeError as exc:
            raise CorpusError(path, number, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    return records


def json_records(text: str, path: str) -> list[tuple[object, int]]:
    """Records of a JSON document (one object, or an array of them), each with the line it starts on."""
    pos = _skip_ws(text, 0)
    if pos == len(text):
        return []
    if text[pos] == "[":
        return json_array_items(text, pos, path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(path, exc) from None
    return [(value, text.count("\n", 0, pos) + 1)]


def json_array_items(text: str, pos: int, path: str) -> list[tuple[object, int]]:
    """The items of the JSON array that starts at ``text[pos]`` (a ``[``), each with the line it starts on."""
    decoder = json.JSONDecoder()
    items, pos = [], _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != "]":
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _invalid(path, exc) from None
        items.append((value, text.count("\n", 0, pos) + 1))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            line = text.count("\n", 0, pos) + 1
            raise CorpusError(path, line, None, "invalid JSON: expected ',' or ']' between records")
    if pos >= len(text):
        raise CorpusError(path, text.count("\n") + 1, None, "invalid JSON: unterminated array")
    return items


def _invalid(path: str, exc: json.JSONDecodeError) -> CorpusError:
    return CorpusError(path, exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})")


def is_json_document(text: str) -> bool:
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
