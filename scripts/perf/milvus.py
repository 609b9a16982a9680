"""The Milvus backend beside FAISS, in the same run (issue 17): a ``milvus-lite server`` on loopback (the server
code path: the same ``pymilvus`` client a Milvus standalone or cluster takes, with its URI), then

- at each size, the scale corpus of the ``scale`` stage written as a Milvus collection (``build_s``; the vectors
  are the scale corpus's own, so nothing is encoded), the alias switched to it (``alias_switch_ms``: the median of
  ``alter_alias`` between it and a second alias target), and ``clipsearch serve`` on it and on the FAISS index of
  the same corpus under the same load, in turns (``http``: p50/p95/p99 and req/s, 1 and N clients);
- on the 408 TutorialVQA clips (real encoding, the warm embedding cache of the ``builds`` stage): a full Milvus
  build against ``clipsearch index upsert`` of the same 1 % changed clips (``upsert_1pct``).

Run after the ``builds`` and ``scale`` stages with the same ``--work``: it reads their indexes and cache.
"""

from __future__ import annotations

import shutil
import statistics
import time
import traceback
from pathlib import Path

from tutorialvqa import TutorialVQA

from clipsearch.encode.torch_encoder import Encoder
from clipsearch.index import ann
from clipsearch.index.build import _pieces, _write_version, build_index, calibration_for, make_current
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.embedding_cache import EmbeddingCache
from clipsearch.index.milvus_store import connect
from clipsearch.index.milvus_writer import milvus_settings
from clipsearch.index.upsert import upsert_clips
from clipsearch.ingest.segmentation import Segmentation
from clipsearch.scoring.fusion import Fusion
from perf.builds import write_changed
from perf.corpus import scale_corpus
from perf.http_load import http_load, proc_rss_mb
from perf.milvus_server import LocalMilvus

def milvus_run(sizes: list[int], encoder: Encoder, tvqa: Path, pool: list[str], args) -> dict:
    data = args.work / "milvus-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    server = LocalMilvus(data)
    try:
        found: dict = {"uri": "milvus-lite server on 127.0.0.1", "sizes": []}
        found["upsert_1pct"] = upsert_against_rebuild(server.uri, tvqa, args.work)
        for size in sizes:
            before = proc_rss_mb(server.process.pid)["VmRSS"]
            try:
                row = scale_on_milvus(size, server.uri, encoder, tvqa, pool, args)
            except Exception as exc:  # noqa: BLE001 - one size's failure must not lose the other sizes' figures
                traceback.print_exc()
                row = {"clips": size, "error": f"{type(exc).__name__}: {exc}"[:500]}
            # what this size's collection added to the server's RSS (it holds the earlier sizes' too)
            row["milvus_server_rss_mb"] = {"before": before, "after": proc_rss_mb(server.process.pid)["VmRSS"]}
            found["sizes"].append(row)
        return found
    finally:
        server.stop()


def scale_on_milvus(size: int, uri: str, encoder: Encoder, tvqa: Path, pool: list[str], args) -> dict:
    faiss_dir = args.work / f"scale-{size}"
    if not (faiss_dir / "current").exists():
        return {"clips": size, "skipped": f"no FAISS scale index in {faiss_dir}: run the scale stage first"}
    real = TutorialVQA.open().clips()
    texts = sorted({t for items in _pieces(real).values() for *_, t in items})
    cache = EmbeddingCache(tvqa / "cache" / "embeddings.sqlite")
    vectors_of = {texts[i]: v for i, v in cache.get_many(encoder.fingerprint, texts, encoder.dim).items()}
    cache.close()
    clips, vectors = scale_corpus(size, real, vectors_of, args.work)
    out = args.work / f"milvus-{size}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    began = time.perf_counter()
    version = _write_version(out, clips, vectors, [args.work / f"scale-{size}.jsonl"], encoder, "all-MiniLM-L6-v2",
                             "package", Fusion(), calibration_for(encoder), ann.Limits(), Segmentation(),
                             milvus=milvus_settings(out, uri, None))
    make_current(out, ClipIndex.load_version(out, version), keep_versions=3)
    build_s = time.perf_counter() - began
    manifest = ClipIndex.open(out).manifest
    row = {"clips": size, "vectors": manifest["vectors"], "index_type": manifest["milvus"]["index_type"],
           "build_s": build_s, "alias_switch_ms": alias_switch_ms(uri, manifest["milvus"]["collection"])}
    # the same load on each backend, in turns, so that both see the same machine
    row["http"] = {"faiss": http_load(faiss_dir, tvqa / "cache", pool, args),
                   "milvus": http_load(out, tvqa / "cache", pool, args)}
    return row


def alias_switch_ms(uri: str, collection: str, turns: int = 21) -> float:
    """Median ms of one ``alter_alias``: a scratch alias moved between the collection and an empty one."""
    client = connect(uri)
    other, alias = f"{collection}_switch_probe", f"{collection}_probe_alias"
    client.create_collection(other, dimension=4)
    client.create_alias(collection, alias)
    try:
        times = []
        for turn in range(turns):
            began = time.perf_counter()
            client.alter_alias(other if turn % 2 == 0 else collection, alias)
            times.append((time.perf_counter() - began) * 1000)
        return statistics.median(times)
    finally:
        client.drop_alias(alias)
        client.drop_collection(other)


def upsert_against_rebuild(uri: str, tvqa: Path, work: Path) -> dict:
    """A full Milvus build of the 408 clips, then a 1 % change as a full rebuild and as an upsert, on two copies.
    The embedding cache of the ``builds`` stage is warm for the unchanged clips; each copy gets an edit of its own,
    so both encode their changed clips."""
    data = TutorialVQA.open()
    found: dict = {"clips": len(data.clips())}
    for name in ("rebuild", "upsert"):
        changed = work / f"tutorialvqa-1pct-{name}.jsonl"
        found["changed_clips"] = write_changed(data.clips(), changed, 0.01, edit=f"{name} {time.time_ns()}")
        out = work / f"milvus-tutorialvqa-{name}"
        shutil.rmtree(out, ignore_errors=True)
        first = build_index([data.clips_path()], out, backend="milvus", milvus_uri=uri, cache_dir=tvqa / "cache")
        found.setdefault("full_build_s", first.seconds)
        began = time.perf_counter()
        if name == "rebuild":
            done = build_index([changed], out, backend="milvus", milvus_uri=uri, cache_dir=tvqa / "cache")
        else:
            done = upsert_clips(out, [changed], cache_dir=tvqa / "cache")
            found["upsert_1pct_changed"] = done.changed
        found[f"{name}_1pct_s"] = time.perf_counter() - began
        found[f"{name}_1pct_encoded"] = done.encoded
    found["upsert_over_rebuild"] = found["upsert_1pct_s"] / found["rebuild_1pct_s"]
    return found
