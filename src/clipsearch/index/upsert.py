"""Incremental changes to a Milvus-backed index: upsert new or changed clips, delete clips, without a rebuild.

Only the new and changed clips are embedded (the embedding cache still applies); their vectors are upserted into
the current version's collection and the deleted clips' removed, in place. A new version directory then records
the clips, BM25 (rebuilt over all clips: it costs no embedding) and the Milvus ids, and becomes current once it
verifies. The version upserted from shares the collection and no longer verifies after the change: roll back to a
version with a collection of its own (a full build). An upsert that dies midway leaves the collection partly
changed while the current version keeps answering (ids it does not know are skipped): run it again, it converges.
FAISS indexes are rebuilt instead (``clipsearch index build``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from clipsearch._version import __version__
from clipsearch.encode.factory import corpus_encoder_for
from clipsearch.errors import ClipsearchError, IndexBusy
from clipsearch.index.bm25 import BM25Index
from clipsearch.index.build import BATCH_SIZES, _embed, _inputs_digest, make_current
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.embedding_cache import EmbeddingCache
from clipsearch.index.layout import (
    BM25_DIR,
    CLIPS,
    VERSIONS,
    build_lock,
    current_version_id,
    fsync_dir,
    new_version_id,
    publish_version,
    write_manifest,
)
from clipsearch.index.integrity import MANIFEST_SHA256, sha256_file
from clipsearch.index.milvus_writer import apply_changes
from clipsearch.ingest.corpus import read_clips
from clipsearch.ingest.segmentation import Segmentation


@dataclass
class UpsertResult:
    """What an upsert or delete changed."""

    index: ClipIndex | None  # None when nothing changed (no new version)
    added: int
    changed: int
    deleted: int
    unchanged: int
    encoded: int
    seconds: float


def upsert_clips(
    out: str | Path,
    sources: Iterable[str | Path] = (),
    delete_ids: Iterable[str] = (),
    *,
    cache_dir: str | Path | None = None,
    corpus_encoder: str = "onnx",
    batch_size: int | None = None,
    keep_versions: int = 3,
) -> UpsertResult:
    """Add or replace the clips of ``sources`` (by clip id) and delete ``delete_ids`` in the Milvus index ``out``.

    Raises:
        CorpusError: an input is malformed (nothing is changed).
        ClipsearchError: ``out`` is a FAISS index, or a deleted id is not in it (nothing is changed).
        IndexBusy: a build of ``out`` is running. IndexUnavailable: Milvus cannot be reached.
    """
    began = time.perf_counter()
    out = Path(out)
    sources = [Path(s) for s in sources]
    index = ClipIndex.open(out)
    if index.manifest.get("backend", "faiss") != "milvus":
        raise ClipsearchError(
            f"{out} is a FAISS index: FAISS versions are rebuilt, not changed in place; run "
            f"`clipsearch index build ... --out {out}` (unchanged clips come from the embedding cache)"
        )
    fresh = read_clips(sources, Segmentation(**index.manifest["segmentation"])) if sources else []
    by_id = {clip.id: clip for clip in fresh}
    deleting = list(dict.fromkeys(delete_ids))
    old = list(index.clips)
    old_row = {clip.id: row for row, clip in enumerate(old)}
    unknown = [i for i in deleting if i not in old_row]
    if unknown:
        raise ClipsearchError(f"{out}: no clip with id {', '.join(map(repr, unknown[:5]))}; nothing was changed")
    both = [i for i in deleting if i in by_id]
    if both:
        raise ClipsearchError(f"clip {both[0]!r} is both upserted and deleted; nothing was changed")
    store = index.store
    gone = set(deleting)
    merged, keys, changed_rows = [], [], []
    unchanged = changed = 0
    for row, clip in enumerate(old):
        if clip.id in gone:
            continue
        new = by_id.pop(clip.id, None)
        if new is not None and new.to_dict() != clip.to_dict():
            changed_rows.append(len(merged))
            merged.append(new)
            changed += 1
        else:
            merged.append(clip)
            unchanged += 1
        keys.append(int(store.clip_keys[row]))
    next_key = int(store.clip_keys.max(initial=-1)) + 1
    for clip in by_id.values():  # new ids, in input order
        changed_rows.append(len(merged))
        merged.append(clip)
        keys.append(next_key)
        next_key += 1
    added = len(by_id)
    if not changed_rows and not gone:
        return UpsertResult(None, 0, 0, 0, unchanged, 0, time.perf_counter() - began)
    removed_keys = np.array([int(store.clip_keys[old_row[i]]) for i in deleting], dtype=np.int64)
    with build_lock(out):
        if current_version_id(out) != index.version:
            raise IndexBusy(f"{out} changed while it was being read; run the command again")
        cache_dir = Path(cache_dir or out / "cache")
        encoder = corpus_encoder_for(index.model_ref(), cache_dir, corpus_encoder, None)
        if encoder.fingerprint != index.manifest["model_fingerprint"]:
            raise ClipsearchError(f"{out}: the model resolved here is not the one the index was built with")
        cache = EmbeddingCache(cache_dir / "embeddings.sqlite")
        try:
            sub = [merged[r] for r in changed_rows]
            vectors, encoded, _ = _embed(encoder, sub, cache, batch_size or BATCH_SIZES[encoder.backend], None)
        finally:
            cache.close()
        rows = np.array(changed_rows, dtype=np.int64)
        vectors = {kind: (matrix, np.column_stack([rows[table[:, 0]], table[:, 1:]]).reshape(-1, 3) if len(table)
                          else table) for kind, (matrix, table) in vectors.items()}
        version = new_version_id()
        temp = out / VERSIONS / f".tmp-{version}"
        temp.mkdir()
        try:
            with open(temp / CLIPS, "w", encoding="utf-8") as handle:
                for clip in merged:
                    handle.write(json.dumps(clip.to_dict(), ensure_ascii=False) + "\n")
            BM25Index.build(merged).save(temp / BM25_DIR)
            counts = apply_changes(store, merged, np.array(keys, dtype=np.int64), rows, removed_keys, vectors,
                                   version, index.manifest["model_fingerprint"], index.dim, temp)
            _write_manifest(temp, index, version, merged, counts, sources, added, changed, len(gone))
            final = out / VERSIONS / version
            publish_version(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        new_index = ClipIndex.load_version(out, final)
        make_current(out, new_index, keep_versions)
    return UpsertResult(new_index, added, changed, len(gone), unchanged, encoded, time.perf_counter() - began)


def _write_manifest(temp: Path, index: ClipIndex, version: str, clips, counts: dict, sources: list[Path],
                    added: int, changed: int, deleted: int) -> None:
    files = {
        file.relative_to(temp).as_posix(): {"bytes": file.stat().st_size, "sha256": sha256_file(file)}
        for file in sorted(temp.rglob("*")) if file.is_file()
    }
    manifest = {
        **{key: value for key, value in index.manifest.items() if key != MANIFEST_SHA256},
        "version": version,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "clipsearch_version": __version__,
        "clips": len(clips),
        "vectors": sum(counts.values()),
        "vectors_by_field": counts,
        "milvus": {**index.manifest["milvus"], "written_by": version},
        "inputs": index.manifest["inputs"] + [{"name": s.name, "sha256": sha256_file(s)} for s in sources],
        "inputs_sha256": _inputs_digest(sources) if sources else index.manifest["inputs_sha256"],
        "derived": {"from": index.version, "upsert": {"added": added, "changed": changed, "deleted": deleted}},
        "files": files,
    }
    write_manifest(temp, manifest)
    fsync_dir(temp)
