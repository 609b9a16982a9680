#!/usr/bin/env python
"""Latency of the HTTP service: GET /search over distinct sequential questions, and GET /healthz (the floor).

Starts `clipsearch serve` on a free port against --index, waits until it is ready, warms it up, then asks each
question once, one after the other over one keep-alive connection, each followed by one /healthz, so both are
measured in the same run under the same conditions. Times are client-side: request sent to body read.

Example usage:

    python scripts/bench_http.py --index index/example
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from perf.http_load import free_port

from clipsearch.evaluate.benchmark import read_queries
from clipsearch.evaluate.metrics import percentiles

REPO = Path(__file__).resolve().parents[1]
QUESTION_FILES = [
    REPO / "examples" / "questions.jsonl",
    REPO / "examples" / "offtopic.jsonl",
    *sorted((REPO / "tests" / "data").glob("*.jsonl")),
]
# Rephrasings that make more distinct strings out of the labelled questions (each string is asked once).
VARIANTS = ("{q}", "{q} please", "quick question: {q}", "{q}?", "I wonder, {q}", "can you tell me {q}")


def distinct_questions(count: int) -> list[str]:
    """``count`` distinct questions: the labelled ones first, then rephrasings of them."""
    base = [q.query.strip() for q in read_queries(QUESTION_FILES)]
    seen: dict[str, None] = {}
    for variant in VARIANTS:
        for question in base:
            seen.setdefault(variant.format(q=question), None)
            if len(seen) == count:
                return list(seen)
    raise SystemExit(f"only {len(seen)} distinct questions can be made; asked for {count}")


def start_server(index: Path, port: int, log) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "clipsearch",
        "serve",
        "--index",
        str(index),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"clipsearch serve exited with status {process.returncode}")
        try:
            response = httpx.get(url + "/readyz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"clipsearch serve was not ready within {timeout:.0f}s")


def timed_get(client: httpx.Client, path: str, **params) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    response = client.get(path, params=params or None)
    response.read()
    return (time.perf_counter() - began) * 1000, response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--index", type=Path, default=REPO / "index" / "example", help="index directory to serve"
    )
    parser.add_argument("--questions", type=int, default=200, help="distinct questions to ask (default 200)")
    parser.add_argument("-k", type=int, default=10, help="results per search (default 10)")
    parser.add_argument(
        "--warmup", type=int, default=10, help="untimed requests of each kind first (default 10)"
    )
    args = parser.parse_args(argv)

    questions = distinct_questions(args.questions)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        process = start_server(args.index, port, log)
        try:
            ready = wait_ready(url, process)
            search_ms, health_ms, answered = [], [], 0
            with httpx.Client(base_url=url, timeout=60) as client:
                for i in range(args.warmup):
                    client.get("/search", params={"q": f"warm-up question number {i}", "k": args.k})
                    client.get("/healthz")
                for question in questions:
                    ms, response = timed_get(client, "/search", q=question, k=args.k)
                    if response.status_code != 200:
                        raise SystemExit(f"GET /search answered {response.status_code}: {response.text}")
                    answered += response.json()["answered"]
                    search_ms.append(ms)
                    ms, response = timed_get(client, "/healthz")
                    if response.status_code != 200:
                        raise SystemExit(f"GET /healthz answered {response.status_code}")
                    health_ms.append(ms)
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read()[-5000:])
            raise
        finally:
            process.terminate()
            process.wait(30)

    print(f"index {args.index} version {ready['version']}: {ready['clips']} clips, model {ready['model']}")
    print(
        f"{len(questions)} distinct questions, k={args.k}, sequential, one keep-alive connection; "
        f"{answered} answered. {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print()
    print(f"| {'endpoint':<12} | {'requests':>8} | {'p50 ms':>7} | {'p95 ms':>7} | {'max ms':>7} |")
    print(f"|{'-' * 14}|{'-' * 9}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|")
    for name, values in (("GET /search", search_ms), ("GET /healthz", health_ms)):
        found = percentiles(values, (50, 95))
        p50, p95, top = found["p50"], found["p95"], max(values)
        print(f"| {name:<12} | {len(values):>8} | {p50:>7.1f} | {p95:>7.1f} | {top:>7.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
