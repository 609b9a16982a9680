"""The versioned index directory: its layout, the manifest, and the atomic switch of ``current``.

Layout of an index directory ``DIR`` (documented in ``docs/index-format.md``)::

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

import fcntl
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from clipsearch.errors import ClipsearchError, IndexBusy, IndexCorrupt, IndexNotFound
from clipsearch.index.integrity import check_manifest, sealed

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


def span_tables(path: Path) -> dict:
    """{span field: (clip row, char_start, char_end) per position} of the version at ``path``, memory-mapped."""
    import numpy as np

    return {kind: np.asarray(np.load(path / spans, mmap_mode="r")) for kind, (_, spans) in SPAN_FILES.items()}


def current_version_id(root: str | Path) -> str | None:
    """The id of the version ``current`` names, cheaply (no loading); None when there is none."""
    try:
        return current_version_path(root).name
    except IndexNotFound:
        return None


def read_manifest(path: Path) -> dict:
    """The manifest of the version at ``path``, checked against its own checksum and for consistent counts.

    Raises:
        IndexCorrupt: missing, not JSON, a key missing, an unknown format, or damaged (naming the file).
    """
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorrupt(f"{file}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
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
    check_manifest(file, manifest)
    return manifest


def write_manifest(path: Path, manifest: dict) -> None:
    """Write the version's manifest with its own checksum (``manifest_sha256``)."""
    (path / MANIFEST).write_text(json.dumps(sealed(manifest), indent=2) + "\n", encoding="utf-8")


def switch_current(root: Path, version: str) -> None:
    """Point ``root/current`` at ``versions/<version>`` in one atomic rename (relative, so the directory can move),
    then fsync ``root`` so that the switch itself is on disk: after a power cut ``current`` names either the old
    version or the new one, and the new one's files and directory entry were synced before (``fsync_dir``)."""
    temp = root / f".{CURRENT}.{secrets.token_hex(4)}"
    os.symlink(f"{VERSIONS}/{version}", temp)
    os.replace(temp, root / CURRENT)
    sync_directory(root)


def sync_directory(path: Path) -> None:
    """fsync a directory: the renames and new entries in it reach the disk."""
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def prune_versions(root: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions, never the current one. Returns the removed ids."""
    current = os.path.basename(os.readlink(root / CURRENT))
    versions = sorted(p.name for p in (root / VERSIONS).iterdir() if p.is_dir() and not p.name.startswith("."))
    doomed = [v for v in versions[: max(0, len(versions) - max(keep, 1))] if v != current]
    for name in doomed:
        shutil.rmtree(root / VERSIONS / name, ignore_errors=True)
    return doomed


def remove_temporaries(root: Path) -> list[str]:
    """Remove what a build that died left (``versions/.tmp-*``, ``.current.*``, ``models/.tmp-*``); call under
    the build lock."""
    left = [*(root / VERSIONS).glob(".tmp-*"), *root.glob(f".{CURRENT}.*"), *(root / "models").glob(".tmp-*")]
    for path in left:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return [path.name for path in left]


def check_writable_index_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ClipsearchError(f"{out} is a file, expected an index directory")
    if out.is_dir() and any(out.iterdir()) and not (out / VERSIONS).is_dir():
        raise ClipsearchError(
            f"{out} is not empty and is not a clipsearch index (no {VERSIONS}/); refusing to write into it"
        )


@contextmanager
def build_lock(out: Path):
    with open(out / ".build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(f"another build of {out} is running") from None
        yield


def link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def new_version_id() -> str:
    """Version ids sort by creation time."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def fsync_dir(path: Path) -> None:
    """Flush the version's files, and its directories' entries, to disk before it can become current."""
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        elif file.is_dir():
            sync_directory(file)
    sync_directory(path)


def publish_version(temp: Path, final: Path) -> None:
    """Rename a complete, synced version directory into place and sync its parent (the rename reaches the disk)."""
    os.replace(temp, final)
    sync_directory(final.parent)
