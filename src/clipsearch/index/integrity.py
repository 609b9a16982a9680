"""Integrity of an index version: its manifest, and its files against the manifest, at two depths (issue 19).

- ``fast``, at every load: the manifest parses and matches its own checksum (``manifest_sha256``); every file
  it lists is there with its size; every file read whole at load (the FAISS indexes, ``clips.jsonl``, BM25's
  parameters and vocabulary, Milvus keys) matches its sha256 before it is parsed. The memory-mapped arrays
  (``*.npy``: float16 vectors, span tables, BM25 postings), which a search reads only where it touches them and
  which hold most of the bytes of a large index, are checked by size here, and by shape against the manifest's
  counts and dimension when they are opened.
- ``full``: the same, and the sha256 of every byte of every file (``clipsearch index verify``, ``index
  rollback``, and a server before it swaps in a new version).

Every refusal is an :class:`IndexCorrupt` whose message starts with the path of the file that is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from clipsearch.errors import IndexCorrupt

FAST = "fast"
FULL = "full"
LEVELS = (FAST, FULL)
MANIFEST = "manifest.json"
#: The manifest's checksum of itself: sha256 of its canonical JSON without this key (absent before issue 19).
MANIFEST_SHA256 = "manifest_sha256"
#: Files that are memory-mapped, not read, at load: hashed only by a full verification.
MAPPED_SUFFIX = ".npy"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(manifest: dict) -> str:
    """The ``manifest_sha256`` of a manifest: sha256 of its canonical JSON (sorted keys, no spaces), itself left out."""
    body = {key: value for key, value in manifest.items() if key != MANIFEST_SHA256}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sealed(manifest: dict) -> dict:
    """The manifest with its ``manifest_sha256`` (what a build writes)."""
    return {**manifest, MANIFEST_SHA256: manifest_digest(manifest)}


def check_manifest(file: Path, manifest: dict) -> None:
    """Refuse a manifest that differs from its own checksum, or whose counts disagree with each other.

    Raises:
        IndexCorrupt: naming ``file``.
    """
    recorded = manifest.get(MANIFEST_SHA256)
    if recorded is not None and recorded != manifest_digest(manifest):
        raise IndexCorrupt(f"{file}: {MANIFEST_SHA256} differs from its content (the manifest is damaged or was "
                           "edited by hand)")
    by_field = manifest["vectors_by_field"]
    if not isinstance(by_field, dict) or not all(isinstance(n, int) and n >= 0 for n in by_field.values()):
        raise IndexCorrupt(f"{file}: vectors_by_field must map each field to a count, not {by_field!r}")
    if manifest["vectors"] != sum(by_field.values()):
        raise IndexCorrupt(f"{file}: vectors is {manifest['vectors']!r}, the sum of vectors_by_field is "
                           f"{sum(by_field.values())}")
    for key in ("clips", "dim"):
        if not isinstance(manifest[key], int) or isinstance(manifest[key], bool) or manifest[key] < (key == "dim"):
            raise IndexCorrupt(f"{file}: {key} must be a whole number, not {manifest[key]!r}")
    if not isinstance(manifest["files"], dict):
        raise IndexCorrupt(f"{file}: files must map each file to its bytes and sha256")


def check_files(path: Path, manifest: dict, level: str = FAST) -> int:
    """Check the files of the version at ``path`` against its manifest; returns the bytes hashed.

    ``fast`` hashes every file but the memory-mapped ``*.npy`` arrays; ``full`` hashes every file.

    Raises:
        IndexCorrupt: a file is missing, has another size, or differs from its sha256 (the message names it).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    listed = []
    for name, expected in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise IndexCorrupt(f"{file}: missing (listed in {MANIFEST})")
        if not isinstance(expected, dict) or not {"bytes", "sha256"} <= set(expected):
            raise IndexCorrupt(f"{path / MANIFEST}: files[{name!r}] must have bytes and sha256")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise IndexCorrupt(f"{file}: {size} bytes, {MANIFEST} says {expected['bytes']} (truncated or damaged)")
        listed.append((file, name, expected))
    hashed = 0
    for file, name, expected in listed:
        if level == FAST and name.endswith(MAPPED_SUFFIX):
            continue
        if sha256_file(file) != expected["sha256"]:
            raise IndexCorrupt(f"{file}: sha256 differs from {MANIFEST} (the file is damaged)")
        hashed += expected["bytes"]
    return hashed


def mapped_bytes(manifest: dict) -> int:
    """Bytes of the version's memory-mapped files: what a fast check leaves to a full one."""
    return sum(entry["bytes"] for name, entry in manifest["files"].items() if name.endswith(MAPPED_SUFFIX))
