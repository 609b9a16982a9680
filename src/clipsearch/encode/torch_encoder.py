"""The sentence-transformers encoder on torch: a model loaded offline (see :mod:`clipsearch.encode.models`),
encoding text to L2-normalised float32 vectors."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from clipsearch.encode.models import ModelRef, fingerprint, resolve_model
from clipsearch.errors import ModelNotFound


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
        per process (a server sets one, :func:`clipsearch.search.threads.one_thread_per_search`)."""
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
