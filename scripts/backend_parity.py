#!/usr/bin/env python
"""FAISS against Milvus Lite on TutorialVQA: the same clips built on both backends, the same questions asked of both.

Prints how many questions get the same top 10 (ids, in order), the largest score difference, and `clipsearch bench`'s
metrics and latency on each backend, side by side. With ``--milvus-bm25`` it also ranks the questions by Milvus' own
full-text BM25 (a BM25 Function into a sparse field) against the local ``bm25s`` index, BM25 alone, on the same clips.

Example usage:

    python scripts/backend_parity.py                               # dev questions
    python scripts/backend_parity.py --queries queries-train.jsonl --milvus-bm25
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from tutorialvqa import DATA_DIR, TutorialVQA

from clipsearch import Searcher, build_index
from clipsearch.evaluate.benchmark import run_benchmark


def mrr_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    return next((1.0 / rank for rank, i in enumerate(ranked[:k], 1) if i in relevant), 0.0)


def top10(searcher: Searcher, queries) -> list[list[tuple[str, float]]]:
    return [[(h.clip.id, h.score) for h in searcher.search(q.query, k=10).results] for q in queries]


def milvus_bm25_mrr(clips, queries, work: Path) -> tuple[float, float]:
    """MRR@10 of BM25 alone: Milvus Lite full-text search, then the local bm25s index, over the same clips."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    from clipsearch.index.bm25 import BM25Index

    client = MilvusClient(str(work / "bm25.db"))
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))
    client.create_collection("bm25", schema=schema)
    client.insert("bm25", [{"id": i, "text": f"{c.question}\n{c.answer}"} for i, c in enumerate(clips)])
    client.flush("bm25")
    params = client.prepare_index_params()
    params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_index("bm25", params)
    client.load_collection("bm25")
    local = BM25Index.build(clips)
    milvus_rr, local_rr = [], []
    for q in queries:
        hits = client.search("bm25", data=[q.query], anns_field="sparse", limit=10)[0]
        milvus_rr.append(mrr_at_k([clips[h["id"]].id for h in hits], set(q.relevant), 10))
        match = local.match(q.query, 10)
        local_rr.append(mrr_at_k([clips[int(r)].id for r in match.top[:10]], set(q.relevant), 10))
    return statistics.fmean(milvus_rr), statistics.fmean(local_rr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--queries", default="queries-dev.jsonl", help="query file inside --data")
    parser.add_argument("--work", type=Path, default=Path("index/backend-parity"), help="where both indexes go")
    parser.add_argument("--milvus-bm25", action="store_true", help="also BM25 alone: Milvus full text vs bm25s")
    parser.add_argument("--json", type=Path, help="file for the figures")
    args = parser.parse_args()
    data = TutorialVQA.open(args.data)
    queries = [q for q in data.queries(args.queries) if q.relevant]
    shutil.rmtree(args.work, ignore_errors=True)
    searchers, figures = {}, {"queries": len(queries)}
    for backend in ("faiss", "milvus"):
        built = build_index([data.clips_path()], args.work / backend, backend=backend, cache_dir=args.work / "cache")
        figures[f"{backend}_build_s"] = round(built.seconds, 2)
        searchers[backend] = Searcher.open(args.work / backend, cache_dir=args.work / "cache")
    tops = {backend: top10(searcher, queries) for backend, searcher in searchers.items()}
    ids = {b: [[i for i, _ in t] for t in tops[b]] for b in tops}
    same = sum(a == b for a, b in zip(ids["faiss"], ids["milvus"]))
    gaps = [abs(x[1] - y[1]) for a, b in zip(tops["faiss"], tops["milvus"]) for x, y in zip(a, b) if x[0] == y[0]]
    figures.update(same_top10=same, same_top10_share=round(same / len(queries), 4), max_score_gap=max(gaps, default=0))
    for backend, searcher in searchers.items():
        result = run_benchmark(searcher, queries, k=10).main
        figures[backend] = {"metrics": result.metrics, "latency_ms": result.latency_ms}
    if args.milvus_bm25:
        milvus, local = milvus_bm25_mrr(data.clips(), queries, args.work)
        figures["bm25_only_mrr@10"] = {"milvus_full_text": round(milvus, 4), "bm25s": round(local, 4)}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
