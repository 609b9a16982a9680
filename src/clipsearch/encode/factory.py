"""Which encoder a query and a build use: the model's verified ONNX export where it is good, torch otherwise.

Both return an encoder of the :class:`~clipsearch.encode.base.TextEncoder` interface, so callers never ask which.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from clipsearch.encode.base import TextEncoder
from clipsearch.encode.models import ModelRef, fingerprint
from clipsearch.encode.onnx_encoder import (
    BACKENDS,
    PRECISIONS,
    OnnxEncoder,
    export_onnx,
    onnx_paths,
    read_record,
)
from clipsearch.encode.torch_encoder import Encoder

# The loggers keep the names they had before the encoders had a package of their own (issue 16).
log = logging.getLogger("clipsearch.onnx")
build_log = logging.getLogger("clipsearch.build")


def load_query_encoder(
    ref: ModelRef, cache_dir: Path, *, backend: str = "onnx", precision: str = "fp32", threads: int = 2
) -> TextEncoder:
    """The encoder queries use: the cached, verified ONNX export of ``ref`` at ``precision`` (exported now when
    the cache lacks it); an int8 export that is refused gives way to the fp32 one; else the torch
    :class:`Encoder` (``backend="torch"``, or the export was refused or could not be made: logged as a warning)."""
    if backend not in BACKENDS or precision not in PRECISIONS:
        raise ValueError(f"backend must be one of {BACKENDS} and precision one of {PRECISIONS}")
    if backend == "torch":
        return Encoder.load(ref)
    model_fingerprint = fingerprint(ref.path)
    graph, record_path = onnx_paths(cache_dir, model_fingerprint, precision)
    try:
        record = read_record(record_path) or export_onnx(Encoder.load(ref), cache_dir, precision)
    except Exception as exc:  # noqa: BLE001 - any export failure means: stay on torch, say why
        log.warning("cannot export model %s to ONNX (%s); queries use torch", ref.name, exc)
        return Encoder.load(ref)
    if not record["verified"]:
        fallback = "the fp32 export" if precision != "fp32" else "torch"
        log.warning(
            "ONNX %s export of model %s refused: cosine %.5f with torch, below %.3f; queries use %s",
            precision, ref.name, record["min_cosine"], record["threshold"], fallback,
        )
        if precision != "fp32":
            return load_query_encoder(ref, cache_dir, backend=backend, precision="fp32", threads=threads)
        return Encoder.load(ref)
    return OnnxEncoder(ref, model_fingerprint, graph, record, threads)


def corpus_encoder_for(
    ref: ModelRef, cache_dir: Path, backend: str = "onnx", query_precision: str | None = "fp32"
) -> TextEncoder:
    """The encoder a build embeds clips with, after making the ONNX exports the build owes the cache.

    The exports (fp32 for the corpus when ``backend`` is ``onnx``, ``query_precision`` for queries) are made and
    verified now unless the cache holds them. The corpus is then embedded by the verified fp32 export, or by torch
    (``backend="torch"``, or the export was refused). The torch model is loaded only when an export must be made
    or the corpus needs it: a rebuild of an index whose exports are cached starts in a fraction of a second.
    """
    model_fingerprint = fingerprint(ref.path)
    wanted = dict.fromkeys(p for p in ("fp32" if backend == "onnx" else None, query_precision) if p is not None)
    records = {p: read_record(onnx_paths(cache_dir, model_fingerprint, p)[1]) for p in wanted}
    missing = [p for p, record in records.items() if record is None]
    torch_encoder = Encoder.load(ref) if missing or backend == "torch" else None
    for precision in missing:
        records[precision] = _export(torch_encoder, cache_dir, precision)
    record = records.get("fp32") if backend == "onnx" else None
    if record is not None and record["verified"]:
        graph = onnx_paths(cache_dir, model_fingerprint, "fp32")[0]
        threads = len(os.sched_getaffinity(0))
        return OnnxEncoder(ref, model_fingerprint, graph, record, threads, single_thread_session=False,
                           parallel_batches=True)
    return torch_encoder or Encoder.load(ref)


def _export(encoder: Encoder, cache_dir: Path, precision: str) -> dict | None:
    """Export and verify the model to ONNX now (once per model and precision: it is kept in the cache); its record,
    or None when it could not be made."""
    try:
        record = export_onnx(encoder, cache_dir, precision)
    except Exception as exc:  # noqa: BLE001 - the index is good without it
        build_log.warning("cannot export model %s to ONNX (%s); it will not be used", encoder.name, exc)
        return None
    if not record["verified"]:
        build_log.warning(
            "ONNX %s export of %s refused: cosine %.5f with torch, below %.3f; it will not be used",
            precision, encoder.name, record["min_cosine"], record["threshold"],
        )
    return record
