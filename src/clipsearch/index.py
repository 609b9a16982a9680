"""ClipIndex: one verified version of a self-describing index directory.

Layout of an index directory ``DIR`` (documented in ``index/README.md``)::

    DIR/current                 symlink -> versions/<id>; switched atomically (os.replace) after a build verifies
    DIR/versions/<id>/          manifest.json, clips.jsonl, questions.faiss, answers.faiss,
                                sentences.faiss + sentences.npy, passages.faiss + passages.npy, bm25/
    DIR/models/<fingerprint>/   a local model copied in, so the index stays valid when moved
    DIR/cache/                  embedding cache shared by the versions (overridable)

Readers always open ``current``; a version is never modified once written, so a reader holding one is never
disturbed by a later build.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from clipsearch.clips import Clip
from clipsearch.encoder import ModelRef, resolve_model
from clipsearch.errors import IndexCorrupt, IndexNotFound
from clipsearch.lexical import BM25Index
from clipsearch.ranking import Fusion

FORMAT_VERSION = 1
METRIC = "inner_product"
MANIFEST = "manifest.json"
CLIPS = "clips.jsonl"
#: Clip-level vectors, FAISS ids = clip rows.
VECTOR_FILES = {"question": "questions.faiss", "answer": "answers.faiss"}
#: Vectors of pieces of answers, FAISS ids = positions; the .npy holds (clip row, char_start, char_end) per position,
#: sorted by clip row.
SPAN_FILES = {"sentence": ("sentences.faiss", "sentences.npy"), "passage": ("passages.faiss", "passages.npy")}
BM25_DIR = "bm25"
CURRENT = "current"
VERSIONS = "versions"
REQUIRED_KEYS = (
    "format_version", "version", "model", "model_source", "model_fingerprint", "dim", "metric",
    "clips", "vectors", "vectors_by_field", "inputs_sha256", "built_at", "files", "ranking",
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def current_version_path(root: str | Path) -> Path:
    """The version directory ``DIR/current`` points to.

    Raises:
        IndexNotFound: no index at ``root``, or ``current`` points nowhere.
    """
    root = Path(root)
    pointer = root / CURRENT
    if os.path.islink(pointer):
        target = root / os.readlink(pointer)
    elif pointer.is_file():
        target = root / VERSIONS / pointer.read_text().strip()
    elif not root.exists():
        raise IndexNotFound(f"no index at {root}: the directory does not exist (build one with `clipsearch index build`)")
    else:
        raise IndexNotFound(f"no index at {root}: {CURRENT} is missing (build one with `clipsearch index build`)")
    if not target.is_dir():
        raise IndexNotFound(f"{pointer} points to {target.name}, which does not exist")
    return target


def current_version_id(root: str | Path) -> str | None:
    """The id of the version ``current`` names, cheaply (no loading); None when there is none."""
    try:
        return current_version_path(root).name
    except IndexNotFound:
        return None


@dataclass
class SpanVectors:
    """Vectors of answer pieces: ``index`` (FAISS, ids = positions) and ``spans[i] = (clip row, char_start, char_end)``."""

    index: faiss.Index
    spans: np.ndarray
    offsets: np.ndarray  # spans of clip row r are positions offsets[r]:offsets[r + 1]

    @classmethod
    def of(cls, index: faiss.Index, spans: np.ndarray, clips: int) -> SpanVectors:
        offsets = np.searchsorted(spans[:, 0], np.arange(clips + 1)) if len(spans) else np.zeros(clips + 1, int)
        return cls(index, spans, offsets)

    def best(self, row: int, query: np.ndarray) -> tuple[float, int] | None:
        """The best cosine of ``query`` with a span of clip ``row``, and that span's position."""
        first, last = int(self.offsets[row]), int(self.offsets[row + 1])
        if last <= first:
            return None
        sims = self.index.reconstruct_n(first, last - first) @ query
        best = int(np.argmax(sims))
        return float(sims[best]), first + best


@dataclass
class ClipIndex:
    """A loaded index version: its clips, FAISS vectors of their questions, answers and answer pieces, and BM25."""

    root: Path
    path: Path
    manifest: dict
    clips: list[Clip]
    vectors: dict[str, faiss.Index]
    spans: dict[str, SpanVectors]
    bm25: BM25Index

    @property
    def fusion(self) -> Fusion:
        return Fusion.from_dict(self.manifest["ranking"])

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
        clips = _read_clips(path / CLIPS)
        if len(clips) != manifest["clips"]:
            raise IndexCorrupt(f"{path / CLIPS}: {len(clips)} clips, {MANIFEST} says {manifest['clips']}")
        vectors = {}
        for field, name in VECTOR_FILES.items():
            index = faiss.read_index(str(path / name))
            expected = manifest["vectors_by_field"][field]
            if index.d != manifest["dim"] or index.ntotal != expected:
                raise IndexCorrupt(
                    f"{path / name}: {index.ntotal} vectors of dim {index.d}, "
                    f"{MANIFEST} says {expected} of dim {manifest['dim']}"
                )
            vectors[field] = index
        spans = {}
        for kind, (index_name, spans_name) in SPAN_FILES.items():
            index = faiss.read_index(str(path / index_name))
            table = np.load(path / spans_name)
            expected = manifest["vectors_by_field"][kind]
            if index.d != manifest["dim"] or index.ntotal != expected or len(table) != expected:
                raise IndexCorrupt(
                    f"{path / index_name}: {index.ntotal} vectors of dim {index.d} and {len(table)} spans, "
                    f"{MANIFEST} says {expected} of dim {manifest['dim']}"
                )
            spans[kind] = SpanVectors.of(index, table, len(clips))
        bm25 = BM25Index.load(path / BM25_DIR, len(clips))
        return cls(root=root, path=path, manifest=manifest, clips=clips, vectors=vectors, spans=spans, bm25=bm25)

    def model_ref(self) -> ModelRef:
        """The model this index was built with, resolved on this machine."""
        return model_ref_from_manifest(self.root, self.manifest)

    def search(self, field: str, queries: np.ndarray, k: int, rows: np.ndarray | None = None):
        """Top ``k`` ids by inner product of ``field`` vectors, optionally only among ``rows`` (ids).

        Returns:
            (scores, ids) arrays of shape (len(queries), k'); ids are -1 where fewer than k exist. Ids are clip rows
            for question and answer vectors, span positions for sentences and passages.
        """
        index = self.vectors[field] if field in self.vectors else self.spans[field].index
        k = min(k, index.ntotal)
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        params = None
        if rows is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(rows, dtype=np.int64)))
        return index.search(queries, k, params=params)


def model_ref_from_manifest(root: Path, manifest: dict) -> ModelRef:
    source, name = manifest["model_source"], manifest["model"]
    if source == "index":
        return ModelRef(name, "path", (root / name).resolve())
    return resolve_model(name)


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"{file}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise IndexCorrupt(f"{file}: expected a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise IndexCorrupt(f"{file}: missing key(s) {', '.join(missing)}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise IndexCorrupt(
            f"{file}: format_version {manifest['format_version']!r}, this clipsearch reads {FORMAT_VERSION}"
        )
    return manifest


def _read_clips(file: Path) -> list[Clip]:
    clips = []
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                clips.append(Clip(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise IndexCorrupt(f"{file}:{number}: not a clip record ({exc})") from None
    return clips
