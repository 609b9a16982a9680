#!/usr/bin/env python
"""Load test while rebuilding: N clients ask GET /search for T seconds while a rebuild + reload runs in a loop.

Bounded and local: it builds an index of the example corpus in --work, starts `clipsearch serve` on a free
127.0.0.1 port (and only ever talks to it), and stops it at the end. Every --rebuild-every seconds it rebuilds the
index (the library's build_index, as `clipsearch index build` does) with every clip's source tagged with the
build's generation, records which version holds which generation, then asks the server to swap it in (POST
/admin/reload). Each client checks every response: status 200, an X-Index-Version it knows, and results whose
sources all carry that version's generation (a response mixing two versions' clips, or naming a version its clips
are not from, is a failure too).

It prints the requests, failures, latency p50/p99, reloads done and the versions seen, and exits with status 1 on
any failed request or any response that mixes versions (2 if the setup itself fails).

Example usage:

    python scripts/load_test.py --clients 4 --seconds 60 --rebuild-every 10
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CORPUS = [REPO / "examples" / "clips.jsonl", REPO / "examples" / "page.txt"]
QUESTIONS = [json.loads(line)["query"] for line in (REPO / "examples" / "questions.jsonl").read_text().splitlines()
             if line.strip()]
MAX_CLIENTS, MAX_SECONDS = 64, 3600


def tag(generation: int) -> str:
    return f" [gen {generation}]"


def mixed(body: dict, version: str, generations: dict[str, int]) -> str | None:
    """Why a 200 answer does not come whole from the version its header names, or None when it does."""
    if version not in generations:
        return f"X-Index-Version {version!r} is no version this run built"
    want = tag(generations[version])
    wrong = [hit.get("source", "") for hit in body.get("results", []) if not hit.get("source", "").endswith(want)]
    if wrong:
        return f"version {version} (generation {generations[version]}) answered with clips of {wrong[0]!r}"
    return None


def write_corpus(work: Path, generation: int) -> Path:
    """The example corpus with every clip's source tagged with ``generation`` (its texts unchanged: a rebuild takes
    every vector from the embedding cache)."""
    from clipsearch.ingest.corpus import read_clips

    path = work / f"corpus-{generation}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for clip in read_clips(EXAMPLE_CORPUS):
            record = clip.to_dict()
            record["source"] = (record.get("source") or "") + tag(generation)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


class Run:
    """What the clients and the rebuilder saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.mixed: list[str] = []
        self.versions: Counter = Counter()
        self.generations: dict[str, int] = {}
        self.reloads = 0
        self.rebuild_errors: list[str] = []


def client(url: str, deadline: float, run: Run, offset: int) -> None:
    with httpx.Client(base_url=url, timeout=30) as session:
        i = offset
        while time.monotonic() < deadline:
            question = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            began = time.perf_counter()
            try:
                response = session.get("/search", params={"q": question, "k": 5})
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                with run.lock:
                    run.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            ms = (time.perf_counter() - began) * 1000
            version = response.headers.get("x-index-version", "")
            with run.lock:
                if response.status_code != 200:
                    run.failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                run.latencies.append(ms)
                run.versions[version] += 1
                problem = mixed(body, version, run.generations)
                if problem:
                    run.mixed.append(problem)


def rebuilder(url: str, token: str, work: Path, index: Path, cache: Path, every: float, deadline: float,
              run: Run, stop: threading.Event) -> None:
    from clipsearch.index.build import build_index

    generation = 0
    while not stop.wait(every) and time.monotonic() < deadline - 1:
        generation += 1
        try:
            version = build_index([write_corpus(work, generation)], index, cache_dir=cache, keep_versions=3).index.version
            with run.lock:
                run.generations[version] = generation
            reply = httpx.post(url + "/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=120)
            if reply.status_code != 200 or reply.json() != {"version": version, "reloaded": True}:
                run.rebuild_errors.append(f"reload of {version} answered {reply.status_code} {reply.text[:200]}")
            else:
                run.reloads += 1
        except Exception as exc:  # noqa: BLE001 - reported, and the run fails
            run.rebuild_errors.append(f"rebuild {generation}: {exc!r}")


def scratch(work: Path | None, cache_dir: Path | None, prefix: str) -> tuple[Path, Path, Path]:
    """The run's scratch directory (``work``, or a new temporary one named ``prefix``...), its index directory
    (emptied) and the embedding cache (``cache_dir``, or one in the scratch directory)."""
    work = work or Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    index = work / "index"
    shutil.rmtree(index, ignore_errors=True)
    return work, index, cache_dir or work / "cache"


def start_server(index: Path, cache: Path, token: str, log, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """`clipsearch serve` of ``index`` on a free 127.0.0.1 port with an admin token, reloading only when asked;
    returns the process and its URL once it is ready."""
    from perf.http_load import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CLIPSEARCH_ADMIN_TOKEN": token}
    process = subprocess.Popen(
        [sys.executable, "-m", "clipsearch", "serve", "--index", str(index), "--host", "127.0.0.1", "--port",
         str(port), "--cache-dir", str(cache), "--reload-interval", "0", "--log-level", "warning", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"clipsearch serve exited with status {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("clipsearch serve was not ready within 300 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help=f"concurrent clients (1 to {MAX_CLIENTS}; default 4)")
    parser.add_argument("--seconds", type=float, default=60, help=f"how long they ask (at most {MAX_SECONDS}; "
                        "default 60)")
    parser.add_argument("--rebuild-every", type=float, default=10, help="seconds between rebuilds (default 10)")
    parser.add_argument("--work", type=Path, help="scratch directory for the index (default: a temporary one)")
    parser.add_argument("--cache-dir", type=Path, help="embedding and ONNX cache to use (default WORK/cache; give "
                        "an index's cache, e.g. index/example/cache, to skip embedding the corpus)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS or args.rebuild_every <= 0:
        parser.error(f"--clients must be 1 to {MAX_CLIENTS}, --seconds 0 to {MAX_SECONDS}, --rebuild-every above 0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clipsearch.evaluate.metrics import percentiles
    from clipsearch.index.build import build_index

    work, index, cache = scratch(args.work, args.cache_dir, "clipsearch-load-")
    run = Run()
    token = secrets.token_hex(16)
    with tempfile.TemporaryFile("w+") as log:
        try:
            first = build_index([write_corpus(work, 0)], index, cache_dir=cache).index.version
            run.generations[first] = 0
            process, url = start_server(index, cache, token, log)
        except Exception as exc:  # noqa: BLE001 - the setup, not the run, failed
            log.seek(0)
            print(f"setup failed: {exc!r}\n{log.read()[-3000:]}", file=sys.stderr)
            return 2
        try:
            began = time.monotonic()
            deadline = began + args.seconds
            stop = threading.Event()
            threads = [threading.Thread(target=client, args=(url, deadline, run, i)) for i in range(args.clients)]
            builder = threading.Thread(target=rebuilder, args=(url, token, work, index, cache, args.rebuild_every,
                                                               deadline, run, stop))
            for thread in [*threads, builder]:
                thread.start()
            for thread in threads:
                thread.join()
            stop.set()
            builder.join()
            wall = time.monotonic() - began
        finally:
            process.terminate()
            process.wait(30)
        if run.failures or run.rebuild_errors:
            log.seek(0)
            server_log = log.read()[-3000:]
    found = percentiles(run.latencies, (50, 99))
    p50, p99 = (f"{found[p]:.1f}" if found[p] is not None else "-" for p in ("p50", "p99"))
    print(f"{args.clients} clients for {wall:.1f} s, a rebuild + reload every {args.rebuild_every:g} s "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")
    print(f"requests {len(run.latencies) + len(run.failures)}, failures {len(run.failures)}, "
          f"mixed versions {len(run.mixed)}, p50 {p50} ms, p99 {p99} ms")
    print(f"reloads {run.reloads}, versions seen {len(run.versions)}: "
          + ", ".join(f"{v} (gen {run.generations.get(v, '?')}) {n}" for v, n in sorted(run.versions.items())))
    for problem in [*run.failures[:5], *run.mixed[:5], *run.rebuild_errors[:5]]:
        print(f"  {problem}")
    if run.failures or run.rebuild_errors:
        print(f"server log (last lines):\n{server_log}", file=sys.stderr)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if run.failures or run.mixed or run.rebuild_errors else 0


if __name__ == "__main__":
    sys.exit(main())
