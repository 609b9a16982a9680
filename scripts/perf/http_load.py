"""HTTP load: a server started in a subprocess (``serve``), clients in threads of this process asking distinct
questions back to back (``load``), and the server's CPU and RSS read from /proc. ``http_load`` runs ``clipsearch
serve`` on an index with 1 and N clients; ``http_floor`` runs ``floor_app``, the least an HTTP search with this
encoder costs. ``free_port`` is shared with scripts/bench_http.py."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from clipsearch.encode.factory import load_query_encoder
from clipsearch.evaluate.metrics import percentiles

SCRIPTS = Path(__file__).resolve().parents[1]  # on sys.path of the floor app's server: it imports perf.http_load


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> dict:
    """A process's peak RSS and its RSS now, split into anonymous and file-backed pages, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


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
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "perf.http_load:floor_app", "--app-dir",
               str(SCRIPTS), "--port", str(port), "--log-level", "warning"]
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

    from clipsearch.encode.models import resolve_model

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
