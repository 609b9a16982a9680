"""The Milvus vector store: a version's vector fields as one Milvus collection, on Milvus Lite or a Milvus server.

One collection per version, named ``clipsearch_<index>_<version>``; the alias ``clipsearch_<index>`` names the
current one (for outside readers: clipsearch's own readers open the collection their version's manifest names,
so a reader never mixes two versions). Each vector field is a partition (``question``, ``answer``, ``sentence``,
``passage``) of rows::

    id (INT64, primary)  kind << 40 | n: n is the clip's key (clip fields) or the span's (span fields)
    clip_key (INT64)     the clip's key: stable across upserts, the n of its answer row
    clip_id, source, video_id (VARCHAR)   so filters run inside Milvus, before the top k
    char_start, char_end (INT32)          the span in the answer (0, len for clip fields)
    vector (FLOAT_VECTOR, inner product)

The version directory keeps what maps Milvus ids to this version's rows: ``milvus_keys.npz`` (per field, the n of
each clip row or span position, -1 for none) beside the clips, BM25 and span tables it always has. The
collection's properties record the model fingerprint, dimension, per-field counts and the version that last wrote
it; a reader checks them against its manifest.

The connection is the manifest's ``milvus.uri``: ``http://host:19530`` (a Milvus server, or ``milvus-lite server``)
or a ``.db`` file (Milvus Lite inside this process; relative to the index directory). A token is never stored: the
manifest may name an env var (``milvus.token_env``) that holds it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np

from clipsearch.errors import ClipsearchError, IndexCorrupt, IndexUnavailable
from clipsearch.index.layout import MANIFEST, span_tables

FIELDS = ("question", "answer", "sentence", "passage")
SPAN_KINDS = ("sentence", "passage")
KIND_SHIFT = 40
KEYS_FILE = "milvus_keys.npz"
#: Longest VARCHAR Milvus stores.
MAX_VARCHAR = 65535
#: Rows per insert call.
INSERT_BATCH = 2000
#: Seconds a connection attempt waits for the server.
CONNECT_TIMEOUT = 10.0
#: Seconds one search call may take before the request fails with 503 (the server is down or overloaded).
SEARCH_TIMEOUT = 5.0
#: A field with more vectors than this gets HNSW in Milvus instead of an exact FLAT index.
HNSW = {"index_type": "HNSW", "params": {"M": 32, "efConstruction": 200}}
HNSW_EF = 256

log = logging.getLogger("clipsearch.milvus")
_clients: dict[tuple[str, str | None], object] = {}
_clients_lock = threading.Lock()


def collection_prefix(index_dir: Path) -> str:
    """``clipsearch_<index>``: the alias of an index directory's current collection (its name, made a Milvus name)."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", index_dir.resolve().name) or "index"
    return f"clipsearch_{name}"[:200]


def collection_name(prefix: str, version: str) -> str:
    return f"{prefix}_v{re.sub(r'[^0-9A-Za-z_]', '_', version)}"


def resolve_uri(uri: str, root: Path) -> str:
    """A ``.db`` file relative to the index directory; a server URI as it is."""
    if "://" in uri:
        return uri
    return str((root / uri).resolve()) if not Path(uri).is_absolute() else uri


def token_from_env(token_env: str | None) -> str | None:
    if not token_env:
        return None
    token = os.environ.get(token_env)
    if token is None:
        raise IndexUnavailable(f"the Milvus token env var {token_env} (named in the index manifest) is not set")
    return token


def connect(uri: str, token_env: str | None = None):
    """A client of the Milvus at ``uri`` (a server URI, or a resolved ``.db`` path), shared in this process.

    Raises:
        IndexUnavailable: the server cannot be reached, or the token's env var is not set.
    """
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ClipsearchError(
            "the Milvus backend needs pymilvus and milvus-lite: pip install 'clipsearch[milvus]'"
        ) from None
    # pymilvus logs every failed call with its traceback; clipsearch reports the failure once, by name
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    token = token_from_env(token_env)
    key = (uri, token_env)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = MilvusClient(uri=uri, token=token or "", timeout=CONNECT_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - pymilvus raises several kinds for one cause
                raise IndexUnavailable(f"Milvus at {uri} cannot be reached: {_reason(exc)}") from None
            _clients[key] = client
    return client


def forget(uri: str, token_env: str | None = None) -> None:
    """Drop a shared client (after the server went away, so the next :func:`connect` makes a new one)."""
    with _clients_lock:
        _clients.pop((uri, token_env), None)


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.splitlines()[0][:300]


def pk(kind: str, n: np.ndarray | int):
    return (FIELDS.index(kind) << KIND_SHIFT) | n


def n_of(ids: np.ndarray) -> np.ndarray:
    return ids & ((1 << KIND_SHIFT) - 1)


def filter_expression(where: dict | None) -> str:
    """A Milvus filter expression of ``{"source": [...], "video_id": [...]}`` (empty lists ignored)."""
    parts = [f"{name} in {json.dumps(list(values))}" for name, values in (where or {}).items() if values]
    return " and ".join(parts)


class MilvusStore:
    """The vector fields of one version, in its Milvus collection (the :class:`VectorStore` of the Milvus backend).

    Example usage::

        store = MilvusStore.load(version_dir, manifest, clips=len(clip_store))
        scores, rows = store.search("question", query_vectors, k=10)
    """

    backend = "milvus"

    def __init__(self, root: Path, manifest: dict, keys: dict[str, np.ndarray], spans: dict[str, np.ndarray]):
        info = manifest["milvus"]
        self.manifest = manifest
        self.uri = resolve_uri(info["uri"], root)
        self.token_env = info.get("token_env")
        self.collection = info["collection"]
        self.keys = keys
        self.spans = spans
        self.clip_keys = keys["answer"]
        # n -> row or position, by binary search over the sorted n of each field
        self._order = {f: np.argsort(k, kind="stable") for f, k in keys.items()}
        self._sorted = {f: k[self._order[f]] for f, k in keys.items()}
        self._ef = {"ef": HNSW_EF} if info.get("index_type") == "HNSW" else {}

    @classmethod
    def load(cls, path: Path, manifest: dict, clips: int) -> MilvusStore:
        """Open the version's collection and check it against the manifest.

        Raises:
            IndexCorrupt: the collection's model, dimension or counts differ from the manifest (both named).
            IndexUnavailable: the Milvus server cannot be reached.
        """
        root = path.parent.parent
        with np.load(path / KEYS_FILE) as data:
            keys = {field: np.asarray(data[field], dtype=np.int64) for field in FIELDS}
        spans = span_tables(path)
        for field in FIELDS:
            expected = clips if field in ("question", "answer") else manifest["vectors_by_field"][field]
            if len(keys[field]) != expected:
                raise IndexCorrupt(f"{path / KEYS_FILE}: {len(keys[field])} {field} keys, {MANIFEST} says {expected}")
        store = cls(root, manifest, keys, spans)
        store.check()
        return store

    @property
    def client(self):
        return connect(self.uri, self.token_env)

    def check(self) -> None:
        """The collection exists, is loaded, and its properties agree with the manifest."""
        name, manifest = self.collection, self.manifest
        described = self._call("describe", lambda c: c.describe_collection(name) if c.has_collection(name) else None)
        if described is None:
            raise IndexCorrupt(f"{MANIFEST} of version {manifest['version']}: Milvus collection {name} is missing at "
                               f"{self.uri}")
        props = described.get("properties", {})
        theirs = {
            "written by version": props.get("clipsearch.written_by"),
            "model fingerprint": props.get("clipsearch.fingerprint"),
            "dim": props.get("clipsearch.dim"),
            "vectors by field": props.get("clipsearch.counts"),
        }
        ours = {
            "written by version": manifest["milvus"]["written_by"],
            "model fingerprint": manifest["model_fingerprint"],
            "dim": str(manifest["dim"]),
            "vectors by field": json.dumps(manifest["vectors_by_field"], sort_keys=True),
        }
        for what, value in ours.items():
            if theirs[what] != value:
                raise IndexCorrupt(
                    f"Milvus collection {name} at {self.uri}: {what} {theirs[what]!r}, the {MANIFEST} of version "
                    f"{manifest['version']} says {value!r}"
                    + (" (an upsert or delete changed the collection after this version; roll back to a version with a "
                       "collection of its own)" if what == "written by version" else "")
                )
        self._call("load", lambda c: c.load_collection(name))

    def _call(self, what: str, call):
        """Run ``call(client)``. A failure is tried once more on a new client, with the collection loaded again (a
        restarted server has it released); a second failure becomes :class:`IndexUnavailable`."""
        try:
            return call(self.client)
        except ClipsearchError:
            raise
        except Exception:  # noqa: BLE001 - pymilvus and grpc raise many kinds for one cause
            forget(self.uri, self.token_env)
        try:
            client = self.client
            client.load_collection(self.collection, timeout=SEARCH_TIMEOUT)
            return call(client)
        except ClipsearchError:
            raise
        except Exception as exc:  # noqa: BLE001
            forget(self.uri, self.token_env)
            raise IndexUnavailable(f"Milvus at {self.uri}: {what} on {self.collection} failed: {_reason(exc)}") from None

    # -- the VectorStore protocol ----------------------------------------------------------------------------------
    @property
    def span_fields(self) -> tuple[str, ...]:
        return SPAN_KINDS

    def _positions(self, field: str, ids: np.ndarray) -> np.ndarray:
        """Rows (clip fields) or positions (span fields) of Milvus ids; -1 for ids this version does not know."""
        n = n_of(ids)
        sorted_n = self._sorted[field]
        at = np.clip(np.searchsorted(sorted_n, n), 0, max(len(sorted_n) - 1, 0))
        if not len(sorted_n):
            return np.full(len(ids), -1, dtype=np.int64)
        return np.where(sorted_n[at] == n, self._order[field][at], -1)

    def _search(self, field: str, queries: np.ndarray, limit: int, expr: str, group_by: str | None = None):
        params = {"metric_type": "IP", "params": self._ef}
        options = {"group_by_field": group_by, "group_size": 1} if group_by else {}
        return self._call("search", lambda c: c.search(
            self.collection, data=np.asarray(queries, dtype=np.float32).tolist(), anns_field="vector",
            limit=limit, filter=expr, partition_names=[field], search_params=params,
            output_fields=["clip_key"] if group_by else [], timeout=SEARCH_TIMEOUT, **options,
        ))

    def search(self, field: str, queries: np.ndarray, k: int, rows: np.ndarray | None = None,
               where: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) by inner product; filtered inside Milvus by ``where`` (field values) when given,
        else by ``rows`` (ids); -1 pads."""
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        expr = filter_expression(where)
        if not expr and rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            keys = self.keys[field][rows]
            keys = keys[keys >= 0]
            if not len(keys):
                return scores, found
            expr = f"id in {pk(field, keys).tolist()}"
        if k <= 0 or self.manifest["vectors_by_field"].get(field, 0) == 0:
            return scores[:, :0], found[:, :0]
        for i, hits in enumerate(self._search(field, queries, k, expr)):
            ids = np.array([hit["id"] for hit in hits], dtype=np.int64)
            at = self._positions(field, ids)
            known = at >= 0
            count = int(known.sum())
            found[i, :count] = at[known]
            scores[i, :count] = np.array([hit["distance"] for hit in hits], dtype=np.float32)[known]
        return scores, found

    def searchable(self, field: str) -> bool:
        return True

    def cosines(self, field: str, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Cosine of ``query`` with clip field ``field``'s vector of each row (NaN where a clip has none)."""
        sims = np.full(len(rows), np.nan, dtype=np.float32)
        keys = self.keys[field][rows]
        present = np.flatnonzero(keys >= 0)
        if not len(present):
            return sims
        hits = self._search(field, query[None, :], len(present), f"id in {pk(field, keys[present]).tolist()}")[0]
        by_n = {int(hit["id"]) & ((1 << KIND_SHIFT) - 1): hit["distance"] for hit in hits}
        sims[present] = [by_n.get(int(n), np.nan) for n in keys[present]]
        return sims

    def best_spans(self, field: str, rows: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per clip row, the best cosine of one of its ``field`` spans and that span's position (NaN, -1)."""
        best = np.full(len(rows), np.nan, dtype=np.float32)
        at = np.full(len(rows), -1, dtype=np.int64)
        clip_keys = self.clip_keys[rows]
        if not len(rows) or self.manifest["vectors_by_field"].get(field, 0) == 0:
            return best, at
        hits = self._search(field, query[None, :], len(rows), f"clip_key in {clip_keys.tolist()}", "clip_key")[0]
        index_of = {int(key): i for i, key in enumerate(clip_keys)}
        positions = self._positions(field, np.array([hit["id"] for hit in hits], dtype=np.int64))
        for hit, position in zip(hits, positions):
            i = index_of.get(int(hit["entity"]["clip_key"]))
            if i is not None and position >= 0:
                best[i], at[i] = hit["distance"], position
        return best, at

    def span_table(self, field: str) -> np.ndarray:
        return self.spans[field]

    def search_cost(self, field: str) -> float:
        return float(self.manifest["vectors_by_field"].get(field, 0))
