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
from clipsearch.errors import IndexCorrupt, ModelMismatch
from clipsearch.index.bm25 import BM25Index
from clipsearch.index.clip_store import ClipStore
from clipsearch.index.integrity import FAST, check_files
from clipsearch.index.layout import (
    BM25_DIR,
    CLIPS,
    MANIFEST,
    current_version_path,
    read_manifest,
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
    def open(cls, root: str | Path, verify: str = FAST) -> ClipIndex:
        """Open the version ``root/current`` names, checked against its manifest (``verify``: ``fast`` or
        ``full``, see :mod:`clipsearch.index.integrity`)."""
        root = Path(root)
        return cls.load_version(root, current_version_path(root), verify)

    @classmethod
    def load_version(cls, root: Path, path: Path, verify: str = FAST) -> ClipIndex:
        """Load and check one version directory.

        Args:
            verify: ``fast`` (sizes of every file, hashes of the files read whole, shapes of the memory-mapped
                ones) or ``full`` (and the hash of every byte); see :mod:`clipsearch.index.integrity`.

        Raises:
            IndexCorrupt: a file is missing or differs from the manifest, or the manifest's counts or dimension
                disagree with the files (the message names the file and what differs).
        """
        manifest = read_manifest(path)
        check_files(path, manifest, verify)
        clips = ClipStore.open(path / CLIPS)
        if len(clips) != manifest["clips"]:
            raise IndexCorrupt(f"{path / CLIPS}: {len(clips)} clips, {MANIFEST} says {manifest['clips']}")
        store = open_vector_store(path, manifest, len(clips))
        bm25 = BM25Index.load(path / BM25_DIR, len(clips))
        return cls(root=root, path=path, manifest=manifest, clips=clips, store=store, bm25=bm25)

    def check_encoder(self, encoder) -> None:
        """Refuse an encoder of another model or dimension than the manifest records (naming the manifest).

        Raises:
            ModelMismatch: another model (fingerprint); IndexCorrupt: the manifest's ``dim`` is not the model's.
        """
        manifest_file = self.path / MANIFEST
        if encoder.fingerprint != self.manifest["model_fingerprint"]:
            raise ModelMismatch(
                f"{manifest_file}: model {encoder.name!r} (fingerprint {encoder.fingerprint[:12]}) is not the model "
                f"the index was built with: {self.manifest['model']!r} (fingerprint "
                f"{self.manifest['model_fingerprint'][:12]})"
            )
        if encoder.dim != self.dim:
            raise IndexCorrupt(f"{manifest_file}: dim {self.dim}, the model {encoder.name!r} makes {encoder.dim}")

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
