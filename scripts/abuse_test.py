#!/usr/bin/env python
"""Abuse test of the HTTP service: many slow connections (slowloris), then many requests at once, while a
well-behaved client keeps asking; prints whether it was answered, and the server's memory.

Bounded and local: it builds an index of the example corpus in --work, starts `clipsearch serve` on a free
127.0.0.1 port with the given serve options, and only ever talks to it. Two phases, each --seconds long:

1. slowloris: --slow connections each send the start of a request head, then one more byte every --trickle
   seconds (never finishing it); counts how many the server closed, and how long they lived;
2. burst: --burst requests sent at once on as many connections, again and again; counts 200s, 503 `overloaded`
   and anything else.

Meanwhile one client asks GET /search every 0.2 s, each with a 10 s timeout: every request must be answered (a 503
`overloaded` counts as answered, as the service means it; a timeout or a refused connection does not). The
server's RSS is read from /proc before, at its peak, and after. Exits 1 if the well-behaved client was not
answered, 2 if the setup fails.

Example usage:

    python scripts/abuse_test.py --slow 2000 --burst 300 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from load_test import scratch, start_server, write_corpus
from perf.http_load import proc_rss_mb

MAX_CONNECTIONS = 5000
HEAD = b"GET /search?q=how+do+I+fix+a+flat+tyre HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Watch:
    """The well-behaved client and the server's memory, sampled every 0.2 s."""

    def __init__(self, url: str, pid: int):
        self.url, self.pid = url, pid
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.peak_mb = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.wait(0.2):
                self.peak_mb = max(self.peak_mb, proc_rss_mb(self.pid)["VmRSS"])
                began = time.perf_counter()
                try:
                    response = client.get("/search", params={"q": "my chain squeaks", "k": 3})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.latencies.append((time.perf_counter() - began) * 1000)
                answered = response.status_code == 200 or (
                    response.status_code == 503 and response.json()["detail"][0]["type"] == "overloaded")
                self.statuses[response.status_code] += 1
                if not answered:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")


async def slowloris(port: int, count: int, seconds: float, trickle: float) -> dict:
    """``count`` connections sending a request head a byte every ``trickle`` seconds for ``seconds``."""
    closed_after: list[float] = []
    opened = 0

    async def one() -> None:
        nonlocal opened
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        opened += 1
        began = time.monotonic()
        try:
            writer.write(HEAD)
            while time.monotonic() - began < seconds:
                await asyncio.sleep(trickle)
                writer.write(b"X")
                await writer.drain()
                if reader.at_eof():
                    raise ConnectionResetError
            await asyncio.wait_for(reader.read(1), 0.001)
        except asyncio.TimeoutError:  # still open at the end (TimeoutError is an OSError: caught first)
            pass
        except (ConnectionError, OSError):
            closed_after.append(time.monotonic() - began)
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return {"opened": opened, "closed_by_server": len(closed_after),
            "longest_lived_s": max(closed_after, default=None)}


async def burst(port: int, count: int, seconds: float) -> Counter:
    """``count`` requests at once on as many connections, again and again for ``seconds``."""
    outcomes: Counter = Counter()
    request = b"GET /search?q=how+do+I+fix+a+flat+tyre&k=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            data = await asyncio.wait_for(reader.read(), 30)
            writer.close()
        except (OSError, asyncio.TimeoutError) as exc:
            outcomes[type(exc).__name__] += 1
            return
        status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "no response"
        outcomes["503 overloaded" if status == "503" and b'"overloaded"' in data else status] += 1

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.gather(*(one() for _ in range(count)))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=1000, help=f"slow connections (at most {MAX_CONNECTIONS})")
    parser.add_argument("--trickle", type=float, default=1.0, help="seconds between a slow connection's bytes")
    parser.add_argument("--burst", type=int, default=200, help=f"requests at once (at most {MAX_CONNECTIONS})")
    parser.add_argument("--seconds", type=float, default=15, help="length of each phase (at most 300)")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument("--cache-dir", type=Path, help="embedding and ONNX cache (e.g. index/example/cache)")
    parser.add_argument("serve_options", nargs="*", help="more `clipsearch serve` options, after --")
    args = parser.parse_args(argv)
    if not (0 <= args.slow <= MAX_CONNECTIONS and 0 <= args.burst <= MAX_CONNECTIONS and 0 < args.seconds <= 300):
        parser.error(f"--slow and --burst must be 0 to {MAX_CONNECTIONS}, --seconds 0 to 300")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clipsearch.index.build import build_index

    work, index, cache = scratch(args.work, args.cache_dir, "clipsearch-abuse-")
    with tempfile.TemporaryFile("w+") as log:
        try:
            build_index([write_corpus(work, 0)], index, cache_dir=cache)
            process, url = start_server(index, cache, "unused-token", log, args.serve_options)
        except Exception as exc:  # noqa: BLE001 - the setup, not the run, failed
            log.seek(0)
            print(f"setup failed: {exc!r}\n{log.read()[-3000:]}", file=sys.stderr)
            return 2
        port = int(url.rsplit(":", 1)[1])
        try:
            httpx.get(url + "/search", params={"q": "warm up"}, timeout=30)
            before = proc_rss_mb(process.pid)
            watch = Watch(url, process.pid)
            watch.thread.start()
            slow = asyncio.run(slowloris(port, args.slow, args.seconds, args.trickle)) if args.slow else {}
            during_slow = dict(watch.statuses), len(watch.failures)
            bursts = asyncio.run(burst(port, args.burst, args.seconds)) if args.burst else Counter()
            time.sleep(1)
            watch.stop.set()
            watch.thread.join()
            after = proc_rss_mb(process.pid)
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(30)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    lat = sorted(watch.latencies)
    print(f"serve options: {' '.join(args.serve_options) or '(defaults)'}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"slowloris: {args.slow} connections, a byte every {args.trickle:g} s for {args.seconds:g} s: {slow}")
    print(f"burst: {args.burst} requests at once for {args.seconds:g} s: {dict(bursts)}")
    print(f"well-behaved client: {sum(watch.statuses.values())} answered {dict(watch.statuses)} (during slowloris "
          f"{during_slow[0]}), {len(watch.failures)} not answered; latency p50 "
          f"{lat[len(lat) // 2] if lat else float('nan'):.1f} ms, max {max(lat, default=float('nan')):.1f} ms")
    print(f"server RSS: {before['VmRSS']:.0f} MB before, {watch.peak_mb:.0f} MB at the peak seen, "
          f"{after['VmRSS']:.0f} MB after (high-water mark {after['VmHWM']:.0f} MB); server alive: {alive}")
    for failure in watch.failures[:5]:
        print(f"  {failure}")
    return 1 if watch.failures or not alive or not watch.statuses else 0


if __name__ == "__main__":
    sys.exit(main())
