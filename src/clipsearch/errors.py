"""Domain errors. The core raises these; the CLI and HTTP layers translate them at the edge."""

from __future__ import annotations

from pathlib import Path


class ClipsearchError(Exception):
    """Base class of every error clipsearch raises on purpose."""


class CorpusError(ClipsearchError):
    """A corpus file is malformed. Renders as ``PATH:LINE: FIELD: what is wrong``."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class IndexNotFound(ClipsearchError):
    """No built index at the given directory."""


class IndexCorrupt(ClipsearchError):
    """An index version does not match its manifest (missing file, wrong size or hash, bad JSON)."""


class IndexUnavailable(ClipsearchError):
    """What holds the index's vectors cannot be reached now (a Milvus server down); trying again may succeed."""


class ModelMismatch(ClipsearchError):
    """The model given for a query does not match the one the index was built with."""


class ModelNotFound(ClipsearchError):
    """A model name or path cannot be resolved offline."""


class IndexBusy(ClipsearchError):
    """Another build holds the index directory's build lock."""
