"""Input files as text and JSON records, each record with the line it starts on, for errors that name file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clipsearch.errors import CorpusError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: A JSON escape of a UTF-16 surrogate: valid JSON, but alone it is no character (and cannot be written as UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` as an editor numbers them: broken at ``\\n``, ``\\r\\n`` and ``\\r`` only
    (``str.splitlines`` also breaks at form feeds, vertical tabs and Unicode separators, which shifted line numbers)."""
    return _LINE_BREAK.split(text)


def check_unicode(value: object, path: str, line: int) -> None:
    """Refuse a decoded JSON value holding an unpaired surrogate (``"\\ud800"``): it is not text, and could not
    be written to the index (issue 19, found by fuzzing)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CorpusError(path, line, None, f"invalid JSON string: unpaired surrogate "
                              f"\\u{ord(value[exc.start]):04x} is not a character") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_unicode(key, path, line)
            check_unicode(item, path, line)
    elif isinstance(value, list):
        for item in value:
            check_unicode(item, path, line)


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
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(path, number, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:
            raise CorpusError(path, number, None, f"invalid JSON: {_unreadable(exc)}") from None
        if _SURROGATE_ESCAPE.search(line):
            check_unicode(value, path, number)
        records.append((value, number))
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
    except (ValueError, RecursionError) as exc:
        raise CorpusError(path, text.count("\n", 0, pos) + 1, None, f"invalid JSON: {_unreadable(exc)}") from None
    line = text.count("\n", 0, pos) + 1
    if _SURROGATE_ESCAPE.search(text):
        check_unicode(value, path, line)
    return [(value, line)]


def json_array_items(text: str, pos: int, path: str) -> list[tuple[object, int]]:
    """The items of the JSON array that starts at ``text[pos]`` (a ``[``), each with the line it starts on."""
    decoder = json.JSONDecoder()
    items, pos = [], _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != "]":
        line = text.count("\n", 0, pos) + 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _invalid(path, exc) from None
        except (ValueError, RecursionError) as exc:
            raise CorpusError(path, line, None, f"invalid JSON: {_unreadable(exc)}") from None
        if _SURROGATE_ESCAPE.search(text, pos, end):
            check_unicode(value, path, line)
        items.append((value, line))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            line = text.count("\n", 0, pos) + 1
            raise CorpusError(path, line, None, "invalid JSON: expected ',' or ']' between records")
    if pos >= len(text):
        raise CorpusError(path, text.count("\n") + 1, None, "invalid JSON: unterminated array")
    return items


def _unreadable(exc: Exception) -> str:
    """What Python's JSON reader could not take beyond a syntax error: nesting too deep, a number too long."""
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]


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
