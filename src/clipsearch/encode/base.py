"""The one interface of an encoder: text in, L2-normalised float32 vectors out (inner product = cosine).

:class:`~clipsearch.encode.torch_encoder.Encoder` (sentence-transformers on torch) and
:class:`~clipsearch.encode.onnx_encoder.OnnxEncoder` (its verified ONNX export) both implement it; the index
records the model's ``fingerprint``, and a search refuses an encoder whose fingerprint differs.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from clipsearch.encode.models import ModelRef


class TextEncoder(Protocol):
    """An encoder of one model. ``backend`` is ``torch`` or ``onnx``; ``dim`` the vectors' dimension."""

    ref: ModelRef
    fingerprint: str
    dim: int
    backend: str

    @property
    def name(self) -> str:
        """The model's name as the index records it."""

    def encode(self, texts: list[str], *, batch_size: int = 32, progress: bool = False,
               threads: int | None = None) -> np.ndarray:
        """One unit-length float32 row per text; ``threads`` caps the threads of this call where the backend can."""
