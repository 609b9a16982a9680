"""ClipIndex: one verified version of a self-describing index directory (layout: :mod:`clipsearch.index.layout`).

A version is its clips (:class:`ClipStore`), the vectors of their questions, answers and answer pieces (a
:class:`VectorStore`: FAISS files by default), BM25 over their text, and the ranking weights and abstention
calibration its manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsearch.encode.models import ModelRef, resolve_model
from clipsearch.errors import IndexCorrupt
from clipsearch.index.bm25 import BM25Index
from clipsearch.index.clip_store import ClipStore
from clipsearch.index.layout import (
    BM25_DIR,
    CLIPS,
    MANIFEST,
    current_version_path,
    read_manifest,
    sha256_file,
)
from clipsearch.index.vector_store import VectorStore, open_vector_store
from clipsearch.scoring.calibration import Calibration
from clipsearch.scoring.fusion import Fusion


@dataclass
class ClipIndex:
    """A loaded index version: its clips, the vectors of their questions, answers and answer pieces, and BM25."""

    root: Path
    path: Path
    manifest: dict
    clips: ClipStore
    store: VectorStore
    bm25: BM25Index

    @property
    def fusion(self) -> Fusion:
        return Fusion.from_dict(self.manifest["ranking"])

    @property
    def calibration(self) -> Calibration | None:
        """The abstention calibration in force; None when the index is uncalibrated (then every non-empty answer
        is ``answered``)."""
        data = self.manifest.get("calibration")
        return Calibration.from_dict(data) if data else None

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return len(self.clips)

    @classmethod
    def open(cls, root: str | Path) -> ClipIndex:
        """Open the version ``root/current`` names, verified against its manifest."""
        root = Path(root)
        return cls.load_version(root, current_version_path(root))

    @classmethod
    def load_version(cls, root: Path, path: Path) -> ClipIndex:
        """Load and verify one version directory.

        Raises:
            IndexCorrupt: a file is missing or differs from the manifest (the message names the file and what differs).
        """
        manifest = read_manifest(path)
        for name, expected in manifest["files"].items():
            file = path / name
            if not file.is_file():
                raise IndexCorrupt(f"{file}: missing (listed in {MANIFEST})")
            size = file.stat().st_size
            if size != expected["bytes"]:
                raise IndexCorrupt(f"{file}: {size} bytes, {MANIFEST} says {expected['bytes']}")
            if sha256_file(file) != expected["sha256"]:
                raise IndexCorrupt(f"{file}: sha256 differs from {MANIFEST}")
        clips = ClipStore.open(path / CLIPS)
        if len(clips) != manifest["clips"]:
            raise IndexCorrupt(f"{path / CLIPS}: {len(clips)} clips, {MANIFEST} says {manifest['clips']}")
        store = open_vector_store(path, manifest, len(clips))
        bm25 = BM25Index.load(path / BM25_DIR, len(clips))
        return cls(root=root, path=path, manifest=manifest, clips=clips, store=store, bm25=bm25)

    def model_ref(self) -> ModelRef:
        """The model this index was built with, resolved on this machine."""
        return model_ref_from_manifest(self.root, self.manifest)

    def search(self, field: str, queries: np.ndarray, k: int, rows: np.ndarray | None = None,
               where: dict | None = None):
        """Top ``k`` ids by inner product of ``field`` vectors, optionally only among ``rows`` (ids).

        Returns:
            (scores, ids) arrays of shape (len(queries), k'); ids are -1 where fewer than k exist. Ids are clip rows
            for question and answer vectors, span positions for sentences and passages. ``where`` is the filter
            ``rows`` came from, by field values, for a backend that filters inside its engine.
        """
        return self.store.search(field, queries, k, rows, where)

    def searchable(self, field: str) -> bool:
        """Whether a field has an index to find candidates with (a rank_only field only ranks them)."""
        return self.store.searchable(field)


def model_ref_from_manifest(root: Path, manifest: dict) -> ModelRef:
    source, name = manifest["model_source"], manifest["model"]
    if source == "index":
        return ModelRef(name, "path", (root / name).resolve())
    return resolve_model(name)
