"""Writing the Milvus backend: a version's collection, the alias switch, upserts and deletes, orphan clean-up.

The layout of a collection is in :mod:`clipsearch.index.milvus_store`. A build writes a new collection, verifies
its counts, and only then does the version become current (see :func:`clipsearch.index.build.build_index`); the
alias follows in the same step. Collections no kept version names are dropped after each build and before the next,
so a build that died midway leaves nothing behind for long.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from clipsearch.errors import IndexCorrupt
from clipsearch.index.layout import MANIFEST, VERSIONS
from clipsearch.index.milvus_store import (
    FIELDS,
    HNSW,
    INSERT_BATCH,
    KEYS_FILE,
    MAX_VARCHAR,
    MilvusStore,
    collection_name,
    collection_prefix,
    connect,
    pk,
)
from clipsearch.ingest.clip_record import Clip

log = logging.getLogger("clipsearch.milvus")
#: Seconds one write call (an insert batch, building the vector index) may take.
WRITE_TIMEOUT = 3600.0


def milvus_settings(out: Path, uri: str | None, token_env: str | None) -> dict:
    """The manifest's ``milvus`` section before the collection exists: where, and under which names."""
    prefix = collection_prefix(out)
    return {"uri": uri or "milvus.db", "token_env": token_env or None, "alias": prefix}


def _schema(dim: int):
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("clip_key", DataType.INT64)
    for name in ("clip_id", "source", "video_id"):
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("char_start", DataType.INT32)
    schema.add_field("char_end", DataType.INT32)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def _rows(kind: str, ns: np.ndarray, clip_keys: np.ndarray, table: np.ndarray, matrix: np.ndarray,
          clips: list[Clip]):
    """The Milvus rows of one field: ``ns`` their keys, ``table`` (clip row, char_start, char_end) each."""
    for start in range(0, len(ns), INSERT_BATCH):
        batch = []
        for i in range(start, min(start + INSERT_BATCH, len(ns))):
            row, char_start, char_end = (int(x) for x in table[i])
            clip = clips[row]
            batch.append({
                "id": int(pk(kind, int(ns[i]))), "clip_key": int(clip_keys[row]), "clip_id": clip.id[:MAX_VARCHAR],
                "source": (clip.source or "")[:MAX_VARCHAR], "video_id": (clip.video_id or "")[:MAX_VARCHAR],
                "char_start": char_start, "char_end": char_end, "vector": matrix[i].tolist(),
            })
        yield batch


def write_collection(
    out: Path, temp: Path, version: str, settings: dict, clips: list[Clip],
    vectors: dict[str, tuple[np.ndarray, np.ndarray]], dim: int, fingerprint: str, flat_max_vectors: int,
) -> tuple[dict, dict, dict]:
    """Write a version's vectors as a new collection, and its keys and span tables into ``temp``.

    Returns:
        (the manifest's ``milvus`` section, vectors by field, index types by field).

    Raises:
        IndexUnavailable: Milvus cannot be reached. IndexCorrupt: the collection's counts came out wrong.
    """
    store_uri = _uri(settings, out)
    client = connect(store_uri, settings["token_env"])
    name = collection_name(settings["alias"], version)
    counts = {kind: len(vectors[kind][0]) for kind in FIELDS}
    index_type = "FLAT" if max(counts.values(), default=0) <= flat_max_vectors else "HNSW"
    info = {**settings, "collection": name, "written_by": version, "index_type": index_type}
    clip_keys = np.arange(len(clips), dtype=np.int64)
    keys = {}
    for kind in FIELDS:
        matrix, table = vectors[kind]
        if kind in ("question", "answer"):
            keys[kind] = np.full(len(clips), -1, dtype=np.int64)
            keys[kind][table[:, 0]] = table[:, 0]
        else:
            keys[kind] = np.arange(len(matrix), dtype=np.int64)
            np.save(temp / f"{kind}s.npy", table)
    np.savez(temp / KEYS_FILE, **keys)
    client.create_collection(name, schema=_schema(dim), properties=_properties(fingerprint, dim, counts, version))
    try:
        for kind in FIELDS:
            client.create_partition(name, kind)
            matrix, table = vectors[kind]
            ns = table[:, 0] if kind in ("question", "answer") else keys[kind]
            for batch in _rows(kind, ns, clip_keys, table, matrix, clips):
                client.insert(name, batch, partition_name=kind, timeout=WRITE_TIMEOUT)
        client.flush(name, timeout=WRITE_TIMEOUT)
        spec = HNSW if index_type == "HNSW" else {"index_type": "FLAT", "params": {}}
        _create_index(client, name, "vector", metric_type="IP", **spec)
        for scalar in ("clip_key", "source", "video_id"):
            _create_index(client, name, scalar, index_type="INVERTED")
        client.load_collection(name, timeout=WRITE_TIMEOUT)
        verify_counts(client, name, counts)
    except BaseException:
        drop_quietly(client, name)
        raise
    return info, counts, {kind: {"type": index_type.lower(), "backend": "milvus"} for kind in FIELDS}


def _create_index(client, name: str, field: str, **spec) -> None:
    """Index ``field`` of collection ``name``. A long index build can outlast the gRPC connection (a server that
    refuses the client's keep-alive pings, as ``milvus-lite server`` does, closes it) and pymilvus then sends the
    call again, which finds the index the first call made: that index is the one asked for, so it is kept."""
    params = client.prepare_index_params()
    params.add_index(field_name=field, **spec)
    try:
        client.create_index(name, params, timeout=WRITE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException; checked by what it says
        if "already exists" not in str(exc) or field not in client.list_indexes(name, field_name=field):
            raise
        log.info("Milvus collection %s: the index on %s was made by an earlier try of the same call", name, field)


def _properties(fingerprint: str, dim: int, counts: dict, written_by: str) -> dict:
    return {
        "clipsearch.fingerprint": fingerprint, "clipsearch.dim": str(dim),
        "clipsearch.counts": json.dumps(counts, sort_keys=True), "clipsearch.written_by": written_by,
    }


def verify_counts(client, name: str, counts: dict) -> None:
    for kind, expected in counts.items():
        stored = int(client.get_partition_stats(name, kind)["row_count"])
        if stored != expected:
            raise IndexCorrupt(f"Milvus collection {name}: {stored} {kind} vectors stored, {expected} written")


def drop_quietly(client, name: str) -> None:
    try:
        client.drop_collection(name)
    except Exception:  # noqa: BLE001 - clean-up after a failure must not hide the failure
        log.warning("could not drop Milvus collection %s", name, exc_info=True)


def _uri(settings: dict, out: Path) -> str:
    from clipsearch.index.milvus_store import resolve_uri

    return resolve_uri(settings["uri"], out)


def switch_alias(store: MilvusStore, alias: str) -> None:
    """Point ``alias`` at the store's collection (created the first time)."""
    client = store.client
    if alias in client.list_aliases().get("aliases", []):
        client.alter_alias(store.collection, alias)
    else:
        client.create_alias(store.collection, alias)


def drop_unreferenced(out: Path, settings: dict) -> list[str]:
    """Drop this index's collections that no version under ``out`` names (left by builds that died, or of pruned
    versions). Returns their names."""
    versions = out / VERSIONS
    referenced = set()
    for manifest in versions.glob(f"*/{MANIFEST}"):
        if manifest.parent.name.startswith("."):
            continue
        try:
            referenced.add(json.loads(manifest.read_text(encoding="utf-8"))["milvus"]["collection"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    client = connect(_uri(settings, out), settings["token_env"])
    ours = f"{settings['alias']}_v"
    doomed = [n for n in client.list_collections() if n.startswith(ours) and n not in referenced]
    for name in doomed:
        log.info("dropping Milvus collection %s: no version of %s names it", name, out)
        drop_quietly(client, name)
    return doomed


def apply_changes(
    store: MilvusStore, clips: list[Clip], clip_keys: np.ndarray, changed_rows: np.ndarray, removed_keys: np.ndarray,
    vectors: dict[str, tuple[np.ndarray, np.ndarray]], version: str, fingerprint: str, dim: int, temp: Path,
) -> dict:
    """Upsert the vectors of ``changed_rows`` (new or changed clips of the new version ``clips``) and delete the
    clips of ``removed_keys``, in place in the store's collection; write the new version's keys and span tables.

    ``vectors`` holds the pieces of the changed clips only, with rows of the new version. Returns the new counts.
    """
    client, name = store.client, store.collection
    changed_keys = clip_keys[changed_rows]
    gone = np.concatenate([removed_keys, changed_keys]).astype(np.int64)
    stale_spans = {kind: np.isin(store.clip_keys[store.spans[kind][:, 0]], gone) if len(store.spans[kind]) else
                   np.zeros(0, bool) for kind in ("sentence", "passage")}
    if len(gone):
        expr = f"clip_key in {gone.tolist()}"
        for kind in FIELDS:
            client.delete(name, filter=expr, partition_name=kind, timeout=WRITE_TIMEOUT)
    old_row_of = {int(k): r for r, k in enumerate(store.clip_keys)}
    changed = set(changed_rows.tolist())
    keys, counts = {}, {}
    for kind in FIELDS:
        matrix, table = vectors[kind]
        if kind in ("question", "answer"):
            keep = np.full(len(clips), -1, dtype=np.int64)
            for row, key in enumerate(clip_keys):
                old = old_row_of.get(int(key))
                if old is not None and store.keys[kind][old] >= 0 and row not in changed:
                    keep[row] = key
            keep[table[:, 0]] = clip_keys[table[:, 0]]
            ns = clip_keys[table[:, 0]]
            keys[kind] = keep
        else:
            old_table, old_keys = store.spans[kind], store.keys[kind]
            kept = ~stale_spans[kind]
            new_row = {int(k): r for r, k in enumerate(clip_keys)}
            kept_rows = np.array([new_row[int(store.clip_keys[r])] for r in old_table[kept, 0]], dtype=np.int64)
            start = int(old_keys.max(initial=-1)) + 1
            ns = np.arange(start, start + len(matrix), dtype=np.int64)
            merged = np.concatenate([np.column_stack([kept_rows, old_table[kept, 1:]]).reshape(-1, 3), table])
            merged_keys = np.concatenate([old_keys[kept], ns])
            order = np.lexsort((merged[:, 1], merged[:, 0]))
            np.save(temp / f"{kind}s.npy", merged[order].astype(np.int64))
            keys[kind] = merged_keys[order]
        for batch in _rows(kind, ns, clip_keys, table, matrix, clips):
            client.upsert(name, batch, partition_name=kind, timeout=WRITE_TIMEOUT)
        counts[kind] = int((keys[kind] >= 0).sum())
    client.flush(name, timeout=WRITE_TIMEOUT)
    np.savez(temp / KEYS_FILE, **keys)
    verify_counts(client, name, counts)
    client.alter_collection_properties(name, properties=_properties(fingerprint, dim, counts, version))
    return counts
