"""Build a new index version from clip files and switch ``current`` to it once it is complete and verified.

Nothing is written before every input has parsed; a failed build leaves the index as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np

from clipsearch._version import __version__
from clipsearch.encode.factory import corpus_encoder_for
from clipsearch.encode.models import resolve_model
from clipsearch.encode.torch_encoder import Encoder
from clipsearch.errors import IndexBusy
from clipsearch.index import ann
from clipsearch.index.bm25 import BM25Index
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.embedding_cache import EmbeddingCache
from clipsearch.index.faiss_store import float16_vectors_file
from clipsearch.index.integrity import MANIFEST_SHA256, sha256_file
from clipsearch.index.layout import (
    BM25_DIR,
    CLIPS,
    FORMAT_VERSION,
    MANIFEST,
    METRIC,
    SPAN_FILES,
    VECTOR_FILES,
    VERSIONS,
    build_lock,
    check_writable_index_dir,
    current_version_id,
    fsync_dir,
    link_or_copy,
    new_version_id,
    prune_versions,
    publish_version,
    remove_temporaries,
    switch_current,
    write_manifest,
)
from clipsearch.index.milvus_store import connect, resolve_uri
from clipsearch.index.milvus_writer import (
    drop_quietly,
    drop_unreferenced,
    milvus_settings,
    switch_alias,
    write_collection,
)
from clipsearch.index.passages import passages, sentences
from clipsearch.index.vector_store import BACKENDS
from clipsearch.ingest.clip_record import Clip
from clipsearch.ingest.corpus import read_clips
from clipsearch.ingest.segmentation import Segmentation
from clipsearch.scoring.calibration import Calibration, default_calibration
from clipsearch.scoring.fusion import Fusion

#: Files a model directory may carry with the ranking weights and calibration fitted for it (``clipsearch tune``).
RANKING_FILE = "clipsearch_ranking.json"
CALIBRATION_FILE = "clipsearch_calibration.json"

log = logging.getLogger("clipsearch.build")
#: What embeds the clips: ``onnx`` (the model's verified fp32 ONNX export, 1.25x torch's batched throughput on
#: TutorialVQA, issue 7) or ``torch``.
CORPUS_ENCODERS = ("onnx", "torch")
#: Texts per batch, by corpus encoder, when the caller names none: ONNX Runtime measured best at 4-8 (145 texts/s
#: against 122 at 32), sentence-transformers at its default 32.
BATCH_SIZES = {"onnx": 8, "torch": 32}

#: progress(done, total) while encoding.
Progress = Callable[[int, int], None]


@dataclass
class BuildResult:
    """What a build produced."""

    index: ClipIndex
    clips: int
    vectors: int
    encoded: int
    cached: int
    seconds: float
    #: where the seconds went: ``read`` (the sources), ``encoder`` (model load and ONNX exports, when the cache
    #: lacks them), ``embed`` (texts not in the embedding cache), ``index`` (vector indexes, files, the switch)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.seconds if self.seconds else float("inf")


def build_index(
    sources: Iterable[str | Path],
    out: str | Path,
    *,
    model: str | Path | None = None,
    cache_dir: str | Path | None = None,
    keep_versions: int = 3,
    batch_size: int | None = None,
    fusion: Fusion | None = None,
    calibration: Calibration | None = None,
    segmentation: Segmentation | None = None,
    progress: Progress | None = None,
    onnx_precision: str | None = "fp32",
    corpus_encoder: str = "onnx",
    flat_max_vectors: int = ann.FLAT_MAX_VECTORS,
    float_max_vectors: int = ann.FLOAT_MAX_VECTORS,
    span_search_max_vectors: int = ann.SPAN_SEARCH_MAX_VECTORS,
    passage_search_max_vectors: int = ann.PASSAGE_SEARCH_MAX_VECTORS,
    backend: str = "faiss",
    milvus_uri: str | None = None,
    milvus_token_env: str | None = None,
) -> BuildResult:
    """Build an index of the clips in ``sources`` as a new version of ``out`` and make it current.

    Args:
        sources: clip files (.jsonl, .json, .csv, .txt pages) and transcripts (.srt, .vtt, YouTube .json/.json3,
            .jsonl video lists).
        out: the index directory (a stable name; versions live under it).
        model: a sentence-transformers model name or path; default the packaged all-MiniLM-L6-v2.
        cache_dir: where embeddings are cached across builds; default ``out/cache``.
        keep_versions: versions kept after the switch (the new one included), for rollback.
        fusion: ranking weights recorded in the manifest; default the model directory's own (see
            :func:`ranking_for`), else the shipped ones.
        calibration: abstention calibration recorded in the manifest; default the one shipped for the packaged
            model (another model's directory may carry its own ``clipsearch_calibration.json``), else none.
        segmentation: how transcripts are cut into clips (recorded in the manifest); default :class:`Segmentation`.
        progress: called with (done, total) while encoding.
        flat_max_vectors, float_max_vectors, span_search_max_vectors: where a field switches from exact flat
            search to HNSW, to IVF over 8-bit codes with float16 vectors on disk, and (sentence and passage fields
            only) to no index at all (see :mod:`clipsearch.index.ann`).
        passage_search_max_vectors: where the passage field gets no index (its vectors only rank).
        onnx_precision: the ONNX query encoder to export (verified) into the cache directory unless it is there
            already, so serving never exports; None: none (beyond the fp32 one an ``onnx`` corpus encoder needs).
        corpus_encoder: what embeds the clips (see :func:`corpus_encoder_for`): ``onnx`` or ``torch``.
        batch_size: texts per encoding batch; default the corpus encoder's best (``BATCH_SIZES``).
        backend: where the vectors go: ``faiss`` (files in the version directory) or ``milvus`` (a collection per
            version, see :mod:`clipsearch.index.milvus_store`).
        milvus_uri: the Milvus server (``http://host:19530``) or Milvus Lite file (``.db``, relative to ``out``);
            default ``milvus.db`` in ``out``. milvus_token_env: the env var that holds the server's token, if any.

    Raises:
        CorpusError: an input is malformed (nothing is written).
        IndexBusy: another build of ``out`` is running.
        IndexUnavailable: the Milvus server cannot be reached (nothing is switched).
    """
    began = time.perf_counter()
    phases: dict[str, float] = {}
    sources = [Path(s) for s in sources]
    segmentation = segmentation or Segmentation()
    clips = read_clips(sources, segmentation)
    phases["read"] = time.perf_counter() - began
    out = Path(out)
    check_writable_index_dir(out)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if corpus_encoder not in CORPUS_ENCODERS:
        raise ValueError(f"corpus_encoder must be one of {CORPUS_ENCODERS}, not {corpus_encoder!r}")
    ref = resolve_model(model)
    out.mkdir(parents=True, exist_ok=True)
    with build_lock(out):
        remove_temporaries(out)
        milvus = milvus_settings(out, milvus_uri, milvus_token_env) if backend == "milvus" else None
        if milvus is not None:
            drop_unreferenced(out, milvus)  # left by a build that died
        cache_dir = Path(cache_dir or out / "cache")
        mark = time.perf_counter()
        encoder = corpus_encoder_for(ref, cache_dir, corpus_encoder, onnx_precision)
        phases["encoder"], mark = time.perf_counter() - mark, time.perf_counter()
        cache = EmbeddingCache(cache_dir / "embeddings.sqlite")
        try:
            vectors, encoded, cached = _embed(
                encoder, clips, cache, batch_size or BATCH_SIZES[encoder.backend], progress
            )
        finally:
            cache.close()
        phases["embed"], mark = time.perf_counter() - mark, time.perf_counter()
        model_name, model_source = _portable_model(encoder, out)
        version = _write_version(
            out, clips, vectors, sources, encoder, model_name, model_source, fusion or ranking_for(encoder),
            calibration if calibration is not None else calibration_for(encoder),
            ann.Limits(flat_max_vectors, float_max_vectors, span_search_max_vectors, passage_search_max_vectors),
            segmentation, milvus=milvus,
        )
        index = ClipIndex.load_version(out, version)
        make_current(out, index, keep_versions)
        phases["index"] = time.perf_counter() - mark
    total = sum(len(rows) for _, rows in vectors.values())
    return BuildResult(index, len(clips), total, encoded, cached, time.perf_counter() - began, phases)


def make_current(out: Path, index: ClipIndex, keep_versions: int) -> None:
    """Switch ``current`` (and a Milvus index's alias) to the verified ``index``, then prune old versions (and
    the collections no kept version names)."""
    milvus = index.manifest.get("milvus")
    if milvus is not None:
        switch_alias(index.store, milvus["alias"])
    switch_current(out, index.version)
    prune_versions(out, keep_versions)
    if milvus is not None:
        drop_unreferenced(out, milvus)


def ranking_for(encoder: Encoder) -> Fusion:
    """The default ranking weights for a model: a model directory's own ``clipsearch_ranking.json`` (written by
    ``clipsearch tune``), else the shipped ones (fitted for the packaged model)."""
    own = encoder.ref.path / RANKING_FILE if encoder.ref.path is not None else None
    if own is not None and own.is_file():
        return Fusion.from_dict(json.loads(own.read_text(encoding="utf-8")))
    return Fusion()


def calibration_for(encoder: Encoder) -> Calibration | None:
    """The default calibration for a model: the shipped one for the packaged model, or the model directory's own."""
    if encoder.ref.kind == "package":
        return default_calibration()
    own = encoder.ref.path / CALIBRATION_FILE
    return Calibration.from_dict(json.loads(own.read_text(encoding="utf-8"))) if own.is_file() else None


def _pieces(clips: list[Clip]) -> dict[str, list[tuple[int, int, int, str]]]:
    """Every text to embed, by kind: (clip row, char_start, char_end, text)."""
    pieces: dict[str, list] = {"question": [], "answer": [], "sentence": [], "passage": []}
    for row, clip in enumerate(clips):
        if clip.question.strip():
            pieces["question"].append((row, 0, len(clip.question), clip.question))
        pieces["answer"].append((row, 0, len(clip.answer), clip.answer))
        for kind, cut in (("sentence", sentences), ("passage", passages)):
            pieces[kind].extend((row, span.char_start, span.char_end, span.text) for span in cut(clip.answer))
    return pieces


def _embed(
    encoder: Encoder, clips: list[Clip], cache: EmbeddingCache, batch_size: int, progress: Progress | None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int, int]:
    """Vectors of every piece as {kind: (matrix, table of (clip row, char_start, char_end))}, plus counts of texts
    encoded and taken from the cache. Each distinct text is encoded once, and only when the cache lacks it."""
    pieces = _pieces(clips)
    unique = sorted({text for items in pieces.values() for *_, text in items})
    known = cache.get_many(encoder.fingerprint, unique, encoder.dim)
    by_text = {unique[i]: v for i, v in known.items()}
    # Longest first: batches of similar length waste less padding.
    missing = sorted((text for i, text in enumerate(unique) if i not in known), key=len, reverse=True)
    done, chunk = 0, max(batch_size * 8, 1)
    if progress:
        progress(0, len(missing))
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        fresh = encoder.encode(part, batch_size=batch_size)
        cache.put_many(encoder.fingerprint, part, fresh)
        by_text.update(zip(part, fresh))
        done += len(part)
        if progress:
            progress(done, len(missing))
    vectors = {}
    for kind, items in pieces.items():
        matrix = np.zeros((len(items), encoder.dim), dtype=np.float32)
        for i, (*_, text) in enumerate(items):
            matrix[i] = by_text[text]
        table = np.array([item[:3] for item in items], dtype=np.int64).reshape(len(items), 3)
        vectors[kind] = (matrix, table)
    return vectors, len(missing), len(known)


def _portable_model(encoder: Encoder, out: Path) -> tuple[str, str]:
    """How the manifest names the model: the packaged default and hub names by name, a local directory copied into
    ``out/models/`` and named relative to ``out`` so the index stays valid when moved."""
    ref = encoder.ref
    if ref.kind != "path":
        return ref.name, ref.kind
    relative = f"models/{encoder.fingerprint[:16]}"
    target = out / relative
    if not target.exists():
        temp = out / f"models/.tmp-{secrets.token_hex(4)}"
        shutil.copytree(ref.path, temp)
        os.replace(temp, target)
    return relative, "index"


#: Query-like vectors an IVF field's nprobe is calibrated on (see :func:`clipsearch.index.ann.build`).
PROBES = 256
#: Where a field's probes come from, first non-empty field first: what users ask is like the questions, but the
#: question field's own vectors would each find themselves (on the 1M-clip bench corpus nprobe chosen on them
#: reached recall@10 1.0 on them and 0.973 on real dev questions; on the 100k one, answers as probes gave 0.985 at
#: nprobe 16 where real questions gave 0.995: on the safe side, issue 7).
PROBE_SOURCES = {
    "question": ("answer", "sentence"),
    "answer": ("question", "sentence"),
    "sentence": ("question", "answer"),
    "passage": ("question", "answer"),
}


def _probe_queries(vectors: dict[str, tuple[np.ndarray, np.ndarray]], kind: str) -> np.ndarray:
    """Up to PROBES evenly spaced vectors of the first non-empty field of ``PROBE_SOURCES[kind]``: the queries an
    IVF field's nprobe is chosen on."""
    matrix = next((vectors[s][0] for s in PROBE_SOURCES[kind] if len(vectors[s][0])), vectors[kind][0])
    return np.asarray(matrix[:: max(1, len(matrix) // PROBES)][:PROBES], dtype=np.float32)


def _write_version(
    out, clips, vectors, sources, encoder, model_name, model_source, fusion: Fusion, calibration: Calibration | None,
    limits: ann.Limits,
    segmentation: Segmentation,
    *,
    milvus: dict | None = None,
) -> Path:
    versions = out / VERSIONS
    versions.mkdir(exist_ok=True)
    version = new_version_id()
    temp = versions / f".tmp-{version}"
    temp.mkdir()
    try:
        with open(temp / CLIPS, "w", encoding="utf-8") as handle:
            for clip in clips:
                handle.write(json.dumps(clip.to_dict(), ensure_ascii=False) + "\n")
        counts, types = {}, {}
        if milvus is not None:
            milvus, counts, types = write_collection(
                out, temp, version, milvus, clips, vectors, encoder.dim, encoder.fingerprint, limits.flat_max_vectors
            )
        for kind, (matrix, table) in vectors.items() if milvus is None else ():
            span = kind in SPAN_FILES
            index_name = SPAN_FILES[kind][0] if span else VECTOR_FILES[kind]
            kind_type = limits.type_for(len(matrix), span=span, passage=kind == "passage")
            probes = _probe_queries(vectors, kind) if kind_type == ann.IVF_SQ8 else None
            index, types[kind] = ann.build(matrix, None if span else table[:, 0], kind_type, probes)
            if index is not None:
                faiss.write_index(index, str(temp / index_name))
            if types[kind]["type"] in (ann.IVF_SQ8, ann.RANK_ONLY):
                ann.save_float16(temp / float16_vectors_file(index_name), matrix)
            if span:
                np.save(temp / SPAN_FILES[kind][1], table)
            counts[kind] = len(matrix)
        BM25Index.build(clips).save(temp / BM25_DIR)
        files = {
            file.relative_to(temp).as_posix(): {"bytes": file.stat().st_size, "sha256": sha256_file(file)}
            for file in sorted(temp.rglob("*"))
            if file.is_file()
        }
        backend_name = "faiss" if milvus is None else "milvus"
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "clipsearch_version": __version__,
            "model": model_name,
            "model_source": model_source,
            "model_fingerprint": encoder.fingerprint,
            "dim": encoder.dim,
            "metric": METRIC,
            "backend": backend_name,
            **({"milvus": milvus} if milvus is not None else {}),
            "index_type": max((t["type"] for t in types.values()), key=ann.TYPES.index, default=ann.FLAT),
            "index_types": types,
            **limits.to_dict(),
            "clips": len(clips),
            "vectors": sum(counts.values()),
            "vectors_by_field": counts,
            "ranking": fusion.to_dict(),
            "calibration": calibration.to_dict() if calibration else None,
            "segmentation": segmentation.to_dict(),
            "inputs": [{"name": s.name, "sha256": sha256_file(s)} for s in sources],
            "inputs_sha256": _inputs_digest(sources),
            "files": files,
        }
        write_manifest(temp, manifest)
        fsync_dir(temp)
        final = versions / version
        publish_version(temp, final)
        return final
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if milvus is not None and "collection" in milvus:
            drop_quietly(connect(resolve_uri(milvus["uri"], out), milvus["token_env"]), milvus["collection"])
        raise


def derive_version(
    out: str | Path,
    *,
    fusion: Fusion | None = None,
    calibration: Calibration | None = None,
    note: dict | None = None,
    keep_versions: int = 3,
) -> ClipIndex:
    """A new version of ``out`` that is its current one with other ranking weights and/or calibration, made current
    once verified. Nothing is re-embedded: the data files are hard links to the current version's (versions are
    never modified), or copies where links cannot be made.

    Args:
        note: recorded in the manifest as ``derived`` (e.g. what the weights were fitted on).

    Raises:
        IndexNotFound, IndexCorrupt: ``out`` has no valid current version.
        IndexBusy: a build of ``out`` is running.
    """
    out = Path(out)
    source = ClipIndex.open(out)  # verifies the files that will be linked
    with build_lock(out):
        remove_temporaries(out)
        if current_version_id(out) != source.version:
            raise IndexBusy(f"{out} changed while it was being read; run the command again")
        version = new_version_id()
        temp = out / VERSIONS / f".tmp-{version}"
        try:
            shutil.copytree(source.path, temp, copy_function=link_or_copy, ignore=shutil.ignore_patterns(MANIFEST))
            manifest = {
                **{key: value for key, value in source.manifest.items() if key != MANIFEST_SHA256},
                "version": version,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "clipsearch_version": __version__,
                "ranking": (fusion or source.fusion).to_dict(),
                "calibration": calibration.to_dict() if calibration else source.manifest.get("calibration"),
                "derived": {"from": source.version, **(note or {})},
            }
            write_manifest(temp, manifest)
            fsync_dir(temp)
            final = out / VERSIONS / version
            publish_version(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        index = ClipIndex.load_version(out, final)
        make_current(out, index, keep_versions)
    return index


def _inputs_digest(sources: list[Path]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(bytes.fromhex(sha256_file(source)))
    return digest.hexdigest()
