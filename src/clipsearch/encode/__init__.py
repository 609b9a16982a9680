"""Encode: text to L2-normalised vectors, behind one interface (:class:`~clipsearch.encode.base.TextEncoder`).

Owns model references and fingerprints (``models``), the sentence-transformers encoder on torch
(``torch_encoder``), the verified ONNX export and its encoder (``onnx_encoder``), and the choice between them for
queries and builds (``factory``).

May import: :mod:`clipsearch.errors` only (no other stage).
"""
