"""At each size: build the scale index from the synthetic corpus (``perf.corpus``), then measure recall@10/@100 of
each approximate field against exact search (``ann_recall``), where a search's time goes (``search_stages``), the
index's RAM in a fresh process (``index_ram``) and ``clipsearch serve`` on it under load (``perf.http_load``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tutorialvqa import TutorialVQA

from clipsearch.encode.torch_encoder import Encoder
from clipsearch.index import ann
from clipsearch.index.build import _pieces, _write_version, calibration_for
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.embedding_cache import EmbeddingCache
from clipsearch.index.layout import switch_current
from clipsearch.ingest.segmentation import Segmentation
from clipsearch.scoring.fusion import Fusion
from clipsearch.search.searcher import Searcher
from perf.corpus import estimated_index_gb, scale_corpus
from perf.http_load import http_load


def scale_run(size: int, encoder: Encoder, tvqa: Path, pool: list[str], args) -> dict:
    real = TutorialVQA.open().clips()
    per_kind = {kind: len(items) / len(real) for kind, items in _pieces(real).items()}
    estimate_gb = estimated_index_gb(size, per_kind)
    row: dict = {"clips": size, "vectors_per_clip": per_kind, "estimated_index_ram_gb": estimate_gb}
    if estimate_gb > args.max_index_gb:
        row["skipped"] = (f"estimated {estimate_gb:.1f} GB of vectors and links in RAM exceeds --max-index-gb "
                          f"{args.max_index_gb}")
        return row
    out = scale_index(size, encoder, tvqa, args.work)
    row.update(json.loads((out / "timings.json").read_text()))
    row["recall"] = ann_recall(out, pool[:200], encoder)
    row["search_stages_ms"] = search_stages(out, tvqa / "cache", pool[:200])
    row.update(index_ram(out))
    row["http"] = http_load(out, tvqa / "cache", pool, args)
    if size == min(int(s) for s in args.sizes.split(",")) or size == 100_000:
        # The thread defaults (2 encoder and 2 search threads for a search alone) against one thread per search:
        # 1-client latency, N-client throughput.
        row["http_1_thread"] = http_load(out, tvqa / "cache", pool, args,
                                         ["--encoder-threads", "1", "--search-threads", "1"])
    return row


def scale_index(size: int, encoder: Encoder, tvqa: Path, work: Path) -> Path:
    """The scale index of ``size`` clips in ``work/scale-SIZE``, built from the synthetic corpus unless an earlier
    run left it there (its build times in ``timings.json``)."""
    out = work / f"scale-{size}"
    if (out / "current").exists():
        return out
    real = TutorialVQA.open().clips()
    texts = sorted({t for items in _pieces(real).values() for *_, t in items})
    cache = EmbeddingCache(tvqa / "cache" / "embeddings.sqlite")
    found = cache.get_many(encoder.fingerprint, texts, encoder.dim)
    cache.close()
    if len(found) < len(texts):
        raise RuntimeError(f"{len(texts) - len(found)} of the 408 clips' texts are not in {tvqa / 'cache'}: run the "
                           "builds stage first (--stages builds) with the same --work")
    vectors_of = {texts[i]: v for i, v in found.items()}
    began = time.perf_counter()
    clips, vectors = scale_corpus(size, real, vectors_of, work)
    corpus = work / f"scale-{size}.jsonl"
    with open(corpus, "w", encoding="utf-8") as handle:
        for clip in clips:
            handle.write(json.dumps(clip.to_dict(), ensure_ascii=False) + "\n")
    made = time.perf_counter() - began
    began = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    version = _write_version(out, clips, vectors, [corpus], encoder, "all-MiniLM-L6-v2", "package", Fusion(),
                             calibration_for(encoder), ann.Limits(), Segmentation())
    switch_current(out, version.name)
    (out / "timings.json").write_text(json.dumps({"corpus_s": made, "index_s": time.perf_counter() - began}))
    return out


def ann_recall(index_dir: Path, questions: list[str], encoder: Encoder) -> dict:
    """recall@10 and @100 of each approximate field (HNSW, and IVF over 8-bit codes with its exact re-ranking)
    against an exact scan of the same vectors, over real questions."""
    index = ClipIndex.open(index_dir)
    queries = encoder.encode(questions)
    recall = {}
    for field, info in index.manifest["index_types"].items():
        holder = index.store.vectors.get(field) or index.store.spans[field]
        if info["type"] not in (ann.HNSW, ann.IVF_SQ8):
            recall[field] = {"type": info["type"]}
            continue
        entry = {"type": info["type"], "vectors": len(holder.matrix)}
        for k in (10, 100):
            _, exact = ann.exact_scan(queries, k, holder.matrix)
            if field in index.store.vectors:  # positions -> clip rows (the ids of the clip-level fields)
                rows = np.full(len(holder.matrix), -1, dtype=np.int64)
                present = np.flatnonzero(holder.position >= 0)
                rows[holder.position[present]] = present
                exact = rows[exact]
            began = time.perf_counter()
            _, approx = index.search(field, queries, k)
            entry[f"ms_per_query@{k}"] = (time.perf_counter() - began) * 1000 / len(queries)
            entry[f"recall@{k}"] = float(np.mean([len(set(a) & set(e)) / k for a, e in zip(approx, exact)]))
        recall[field] = entry
    return recall


def search_stages(index_dir: Path, cache_dir: Path, questions: list[str]) -> dict:
    """Where a search's time goes (p50 ms over ``questions``), in this process as a server's search thread runs:
    the encoding (alone: the encoder's threads), BM25, each field's vector search, the ranking components of the
    candidates, the fusion and the rest of the answer, and its JSON; then whole searches with the vector searches
    on one thread and, alone, on two (``search_threads``), taken in turns so that both see the same machine."""
    from clipsearch.search.threads import one_omp_thread_here, one_thread_per_search

    one_thread_per_search()  # as the server: torch and BLAS on one thread, FAISS on one OpenMP thread here
    one_omp_thread_here()
    searcher = Searcher.open(index_dir, cache_dir=cache_dir, search_threads=1)
    helped = Searcher(searcher.index, searcher.encoder, search_threads=2)
    fetch, times = 50, {}

    def timed(name, function, *args):
        began = time.perf_counter()
        value = function(*args)
        times.setdefault(name, []).append((time.perf_counter() - began) * 1000)
        return value

    for question in questions[:10]:
        searcher.search(question)
    for question in questions:
        vector = timed("encode", searcher.encoder.encode, [question])
        lexical = timed("bm25", searcher.index.bm25.match, question, fetch, None)
        found = [timed(f"search {name}", searcher._found_by, name, vector, fetch, None)
                 for name in searcher._searched_fields]
        rows = np.unique(np.concatenate([*found, lexical.top]).astype(np.int64))
        times.setdefault("candidates", []).append(len(rows))
        components = timed("components", searcher._components, rows, vector[0], lexical)
        timed("fusion", searcher.fusion.score_many, components)
        answer = timed("search after encoding", searcher.search_encoded, question, vector, 10)
        timed("answer JSON", lambda: json.dumps(answer.to_dict()))
        timed("whole search, 1 search thread", searcher.search, question)
        timed("whole search, 2 search threads", helped.search, question)
    return {name: round(float(np.median(values)), 3) for name, values in times.items()}


def index_ram(index_dir: Path) -> dict:
    """RSS of a fresh process after ClipIndex.open minus before, in MB: in all (``index_ram_mb``, the figure of the
    target), anonymous memory, and pages of memory-mapped files (clean, shared with the page cache, reclaimable)."""
    code = (
        "import json, sys\n"
        "from clipsearch.index.clip_index import ClipIndex\n"
        "def rss():\n"
        "    fields = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "    return {k: int(fields[k].split()[0]) / 1024 for k in ('VmRSS', 'RssAnon', 'RssFile')}\n"
        "before = rss(); index = ClipIndex.open(sys.argv[1]); after = rss()\n"
        "print(json.dumps({k: after[k] - before[k] for k in after}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(index_dir)], check=True, capture_output=True, text=True)
    delta = json.loads(done.stdout.strip().splitlines()[-1])
    return {"index_ram_mb": delta["VmRSS"], "index_ram_anon_mb": delta["RssAnon"],
            "index_ram_file_mb": delta["RssFile"]}
