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
- with the Milvus backend (a ``milvus-lite server`` on loopback, issue 17), at each ``--milvus-sizes`` clip count:
  the scale corpus written as a Milvus collection (build and alias-switch time) and ``clipsearch serve`` on it and
  on the FAISS index of the same corpus under the same load; and a 1 % upsert of the 408 clips against a full
  rebuild (see scripts/perf/milvus.py);
- at each ``--sizes`` clip count, what checking the version against its manifest costs at load: the fast checks
  of every load against the full verification (every byte hashed), cold and warm (``perf/verify.py``);
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

The stages are the modules of scripts/perf/ (its ``__init__`` lists them); this script parses the options and runs
them in turn, saving the report after each. The TutorialVQA data is read through scripts/tutorialvqa.py.

Example usage:

    python scripts/bench_perf.py --sizes 10000 --out reports/perf
    python scripts/bench_perf.py --sizes 10000,100000,1000000 --txtai-python TXTAI_VENV/bin/python
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from perf.builds import tutorialvqa_builds
from perf.corpus import question_pool
from perf.encoders import agreement, encoder_latency
from perf.http_load import http_floor, http_load
from perf.milvus import milvus_run
from perf.report import machine, save
from perf.scale import scale_run
from perf.txtai import txtai_run
from perf.verify import verify_costs

from clipsearch.encode.torch_encoder import Encoder

REPO = Path(__file__).resolve().parents[1]


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
    parser.add_argument("--milvus-sizes", default="10000,100000",
                        help="clip counts served from Milvus beside FAISS (the milvus stage; each needs its scale "
                        "index from the scale stage)")
    parser.add_argument("--stages", default="encoders,builds,agreement,floor,scale,milvus,verify,txtai",
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
    milvus_sizes = [int(s) for s in args.milvus_sizes.split(",") if s.strip()]
    stage("milvus", "milvus beside faiss", lambda: milvus_run(milvus_sizes, encoder, tvqa, pool, args))
    stage("verify", "verify costs: checking a version at load",
          lambda: {"rows": verify_costs(sizes, encoder, tvqa, args.work)})
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


if __name__ == "__main__":
    sys.exit(main())
