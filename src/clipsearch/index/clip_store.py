"""ClipStore: the clips of an index version, read from its ``clips.jsonl`` on demand.

A search needs a few fields of every clip (to filter, to collapse overlapping clips and to group by video) and the
whole record of only the clips it returns. The store therefore keeps those few fields as arrays (:class:`Columns`)
and the byte offset of each clip's line; a :class:`~clipsearch.ingest.clip_record.Clip` is parsed from the memory-mapped file
only when asked for. At a million clips the records as Python objects took more RAM than all the vectors (issue 7).
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsearch.errors import IndexCorrupt
from clipsearch.ingest.clip_record import Clip

#: The clip fields kept as columns, for filters and grouping (codes into a table of their distinct values).
CODED_FIELDS = ("source", "video_id")


@dataclass(frozen=True)
class Coded:
    """A string field of every clip as ``codes`` into ``values`` (``""`` stands for an absent value)."""

    codes: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, strings: list[str]) -> Coded:
        values, codes = np.unique(np.array(strings, dtype=object), return_inverse=True)
        return cls(codes.astype(np.int32), values)

    def rows_equal_to_any(self, wanted: Sequence[str]) -> np.ndarray:
        """A mask of the clips whose value is one of ``wanted``."""
        known = np.flatnonzero(np.isin(self.values, list(wanted)))
        return np.isin(self.codes, known)

    def __getitem__(self, rows) -> np.ndarray:
        return self.codes[rows]


@dataclass(frozen=True)
class Columns:
    """The fields of every clip a search reads for candidates it has not yet parsed."""

    start: np.ndarray
    end: np.ndarray
    source: Coded
    video_id: Coded


class ClipStore(Sequence[Clip]):
    """The clips of ``clips.jsonl``, one JSON record per line, indexed by row.

    Example usage::

        store = ClipStore.open(Path("index/example/current/clips.jsonl"))
        store[0].question, len(store), store.columns.video_id[[0, 1]]
    """

    def __init__(self, file: Path, data: mmap.mmap | bytes, starts: np.ndarray, ends: np.ndarray, columns: Columns):
        self.file = file
        self._data = data
        self._starts = starts
        self._ends = ends
        self.columns = columns

    @classmethod
    def open(cls, file: Path) -> ClipStore:
        """Map ``file`` and read the columns of every line.

        Raises:
            IndexCorrupt: a line is not a clip record (the message names the file and line).
        """
        # One buffered pass for the offsets and columns; the mapping is only for the clips a search returns (a pass
        # through the mapping would leave every page of the file mapped: at a million clips, 1 GB more RSS).
        offsets = [0]
        start_at, end_at = [], []
        strings: dict[str, list[str]] = {name: [] for name in CODED_FIELDS}
        with open(file, "rb") as handle:
            for row, line in enumerate(handle):
                offsets.append(offsets[-1] + len(line))
                try:
                    record = json.loads(line)
                    start_at.append(float(record["start"]))
                    end_at.append(float(record["end"]))
                    for name in CODED_FIELDS:
                        strings[name].append(record.get(name) or "")
                except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, KeyError,
                        AttributeError) as exc:
                    raise IndexCorrupt(f"{file}:{row + 1}: not a clip record ({exc!r})") from None
            size = handle.tell()
            data: mmap.mmap | bytes = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        starts = np.array(offsets[:-1], dtype=np.int64)
        ends = np.array(offsets[1:], dtype=np.int64)  # each line's end, its newline included (json ignores it)
        start, end = np.array(start_at, dtype=np.float64), np.array(end_at, dtype=np.float64)
        columns = Columns(start, end, **{name: Coded.of(strings[name]) for name in CODED_FIELDS})
        return cls(file, data, starts, ends, columns)

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"clip row {row} out of range (the index has {len(self)} clips)")
        line = self._data[int(self._starts[row]) : int(self._ends[row])]
        try:
            return Clip(**json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
            raise IndexCorrupt(f"{self.file}:{row + 1}: not a clip record ({exc!r})") from None

    def __iter__(self) -> Iterator[Clip]:
        for row in range(len(self)):
            yield self[row]
