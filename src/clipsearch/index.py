"""ClipIndex: one verified version of a self-describing index directory.

Layout of an index directory ``DIR`` (documented in ``index/README.md``)::

    DIR/current                 symlink -> versions/<id>; switched atomically (os.replace) after a build verifies
    DIR/versions/<id>/          manifest.json, clips.jsonl, questions.faiss, answers.faiss,
                                sentences.faiss + sentences.npy, passages.faiss + passages.npy, bm25/,
                                and <field>.f16.npy for ivf_sq8 and rank_only fields (no .faiss for rank_only)
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

from clipsearch import ann
from clipsearch.calibration import Calibration
from clipsearch.clip_store import ClipStore
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
class ClipVectors:
    """One vector per clip (or none): ``matrix[position[row]]`` is clip ``row``'s vector, ``position[row] == -1``
    where the clip has none. ``matrix`` is float32 in the index, or float16 memory-mapped (``ivf_sq8``)."""

    index: faiss.Index
    matrix: np.ndarray
    position: np.ndarray

    @classmethod
    def of(cls, index: faiss.Index, clips: int, matrix: np.ndarray | None = None) -> ClipVectors:
        position = np.full(clips, -1, dtype=np.int64)
        if index.ntotal:
            position[faiss.vector_to_array(index.id_map)] = np.arange(index.ntotal)
        return cls(index, ann.stored_vectors(index) if matrix is None else matrix, position)

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of clip ``rows`` (each must have one)."""
        return self.matrix[self.position[rows]]

    def cosines(self, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Cosine of ``query`` with each clip row's vector; NaN where a clip has none."""
        sims = np.full(len(rows), np.nan, dtype=np.float32)
        pos = self.position[rows]
        present = pos >= 0
        sims[present] = ann.as_float32(self.matrix[pos[present]]) @ query
        return sims


@dataclass
class SpanVectors:
    """Vectors of answer pieces: ``index`` (FAISS, ids = positions) and ``spans[i] = (clip row, char_start, char_end)``."""

    index: faiss.Index | None  # None for a rank_only field
    matrix: np.ndarray
    spans: np.ndarray
    offsets: np.ndarray  # spans of clip row r are positions offsets[r]:offsets[r + 1]

    @classmethod
    def of(cls, index: faiss.Index | None, spans: np.ndarray, clips: int, matrix: np.ndarray | None = None
           ) -> SpanVectors:
        offsets = np.searchsorted(spans[:, 0], np.arange(clips + 1)) if len(spans) else np.zeros(clips + 1, int)
        return cls(index, ann.stored_vectors(index) if matrix is None else matrix, spans, offsets)

    def vectors_of(self, positions: np.ndarray) -> np.ndarray:
        return self.matrix[positions]

    def best(self, rows: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each clip row, the best cosine of ``query`` with one of its spans and that span's position
        (NaN and -1 for a clip without spans)."""
        first, last = self.offsets[rows], self.offsets[rows + 1]
        counts = last - first
        best = np.full(len(rows), np.nan, dtype=np.float32)
        at = np.full(len(rows), -1, dtype=np.int64)
        has = counts > 0
        if not has.any():
            return best, at
        first, counts = first[has], counts[has]
        # every span position of the rows, then the max of each row's segment
        starts = np.repeat(first - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        positions = starts + np.arange(counts.sum())
        sims = ann.as_float32(self.matrix[positions]) @ query
        bounds = np.concatenate(([0], np.cumsum(counts)[:-1]))
        best[has] = np.maximum.reduceat(sims, bounds)
        # position of each segment's max: the first index in the segment where sims equals the max
        segment = np.repeat(np.arange(len(counts)), counts)
        is_max = sims == best[has][segment]
        first_max = np.full(len(counts), -1, dtype=np.int64)
        hits = np.flatnonzero(is_max)
        first_max[segment[hits[::-1]]] = positions[hits[::-1]]
        at[has] = first_max
        return best, at


@dataclass
class ClipIndex:
    """A loaded index version: its clips, FAISS vectors of their questions, answers and answer pieces, and BM25."""

    root: Path
    path: Path
    manifest: dict
    clips: ClipStore
    vectors: dict[str, ClipVectors]
    spans: dict[str, SpanVectors]
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
        vectors = {}
        for field, name in VECTOR_FILES.items():
            info = index_type(manifest, field)
            index = faiss.read_index(str(path / name))
            matrix = _float16_vectors(path, name, info)
            expected = manifest["vectors_by_field"][field]
            if index.d != manifest["dim"] or index.ntotal != expected:
                raise IndexCorrupt(
                    f"{path / name}: {index.ntotal} vectors of dim {index.d}, "
                    f"{MANIFEST} says {expected} of dim {manifest['dim']}"
                )
            vectors[field] = ClipVectors.of(index, len(clips), matrix)
        spans = {}
        for kind, (index_name, spans_name) in SPAN_FILES.items():
            info = index_type(manifest, kind)
            matrix = _float16_vectors(path, index_name, info)
            index = None if info["type"] == ann.RANK_ONLY else faiss.read_index(str(path / index_name))
            count, dim = (index.ntotal, index.d) if index is not None else matrix.shape
            table = ann.mapped(path / spans_name)
            expected = manifest["vectors_by_field"][kind]
            if dim != manifest["dim"] or count != expected or len(table) != expected:
                raise IndexCorrupt(
                    f"{path / index_name}: {count} vectors of dim {dim} and {len(table)} spans, "
                    f"{MANIFEST} says {expected} of dim {manifest['dim']}"
                )
            spans[kind] = SpanVectors.of(index, table, len(clips), matrix)
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
        holder = self.vectors[field] if field in self.vectors else self.spans[field]
        k = min(k, len(holder.matrix))
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        info = index_type(self.manifest, field)
        kind = info["type"]
        if kind == ann.RANK_ONLY:
            if rows is not None:
                raise ValueError(f"the {field} field is rank-only: it cannot be searched among rows")
            return ann.exact_scan(queries, k, holder.matrix)
        exact = None
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            if isinstance(holder, ClipVectors):
                positions = holder.position[rows]
                ids, positions = rows[positions >= 0], positions[positions >= 0]
            else:
                ids = positions = rows
            if len(ids) <= ann.EXACT_FILTERED_MAX:
                exact = (ids, ann.as_float32(holder.matrix[positions]))
        if kind != ann.IVF_SQ8:
            return ann.search(holder.index, info, queries, k, rows, exact)
        fetch = min(max(k * int(info.get("rerank", 4)), k), holder.index.ntotal)
        _, found = ann.search(holder.index, info, queries, fetch, rows, exact)
        return ann.rerank(queries, found, holder.vectors_of, k)

    def searchable(self, field: str) -> bool:
        """Whether a field has an index to find candidates with (a rank_only field only ranks them)."""
        return index_type(self.manifest, field)["type"] != ann.RANK_ONLY


def index_type(manifest: dict, field: str) -> dict:
    """A field's index type and parameters as the manifest records them (flat when it records none)."""
    return manifest.get("index_types", {}).get(field, {"type": ann.FLAT})


def float16_vectors_file(index_file: str) -> str:
    """The float16 vectors file beside a field's index file: ``questions.faiss`` -> ``questions.f16.npy``."""
    return index_file.removesuffix(".faiss") + ann.FLOAT16_SUFFIX


def _float16_vectors(path: Path, index_file: str, info: dict) -> np.ndarray | None:
    if info["type"] not in (ann.IVF_SQ8, ann.RANK_ONLY):
        return None
    return ann.load_float16(path / float16_vectors_file(index_file))


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
