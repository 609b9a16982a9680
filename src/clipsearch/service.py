"""The served index: the Searcher a long-running server answers from, swapped for new versions as it serves.

A ``Service`` watches ``DIR/current``. When it names a new version, the service loads and verifies that
version (and the model its manifest names, when that differs) beside the one in use, then switches one
reference. Callers take ``service.searcher`` once per request, so requests in flight finish on the version
they started with.
A version that fails to load is refused: the previous one keeps serving and ``status()`` says what went wrong.

``Metrics`` holds the Prometheus metrics of one served app. Nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from clipsearch.encoder import resolve_model
from clipsearch.errors import ClipsearchError, IndexNotFound
from clipsearch.index import ClipIndex, current_version_path
from clipsearch.onnx_encoder import load_query_encoder
from clipsearch.search import Searcher

log = logging.getLogger("clipsearch.service")


def one_thread_per_search() -> None:
    """Encode and rank each query on the thread that asks it, without torch's intra-op thread pool or the BLAS
    library's (numpy's) threads; the ONNX encoder takes its own setting, ``encoder_threads``.

    A server answers many short queries at once from a thread pool; intra-op threads only contend with each
    other there. Measured on a busy 2-core machine (issue 4): a search took ~700 ms through the HTTP thread
    pool with torch's default threads and ~50 ms with one. The BLAS threads (OpenBLAS, for the ranking's small
    matrix products) spin between products: on an idle 2-core machine, 10k clips, one BLAS thread took the
    server's CPU per request from 44 to 26-28 ms and 4-client throughput from 53 to 61-66 req/s, at the same
    1-client latency (issue 7).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")  # process-wide, kept after this call returns


_omp = threading.local()


def one_omp_thread_here() -> None:
    """Let FAISS use one OpenMP thread on the calling thread.

    ``faiss.omp_set_num_threads`` sets a per-thread value: called once at startup it leaves the HTTP thread
    pool's workers at one OpenMP thread per core each (issue 7), so each worker sets its own, once.
    """
    if not getattr(_omp, "pinned", False):
        import faiss

        faiss.omp_set_num_threads(1)
        _omp.pinned = True


class IndexNotLoaded(ClipsearchError):
    """The service has no index to answer from; the message says why."""


class ReloadRefused(ClipsearchError):
    """The version ``current`` names failed to load or verify; the version loaded before keeps serving."""


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload: the version now serving, and whether it was swapped in by this reload."""

    version: str | None
    reloaded: bool


class Service:
    """The index a server answers from, kept current with ``DIR/current``.

    Example usage::

        service = Service("index/example")
        service.reload()                       # load the current version
        service.watch(2.0)                     # and check for a new one every 2 s
        service.searcher.search("how do I fix a flat tyre?", k=3)

    Args:
        root: the index directory.
        model: optional model name or path; every version must be built with it (checked by fingerprint).
        query_encoder, onnx_precision, encoder_threads, cache_dir: how questions are encoded, as for
            :meth:`Searcher.open`.
        search_threads: as for :meth:`Searcher.open`.
    """

    def __init__(
        self,
        root: str | Path,
        model: str | None = None,
        *,
        query_encoder: str = "onnx",
        onnx_precision: str = "fp32",
        encoder_threads: int = 2,
        search_threads: int = 2,
        cache_dir: str | Path | None = None,
    ):
        self.root = Path(root)
        self.model = model
        self.encoding = {"backend": query_encoder, "precision": onnx_precision, "threads": encoder_threads}
        self.search_threads = search_threads
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / "cache"
        self.reloads = 0
        self.failed_reloads = 0
        self._searcher: Searcher | None = None
        self._error: str | None = "not loaded yet"
        self._refused: str | None = None  # the version id last refused, not retried until it changes
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def searcher(self) -> Searcher:
        """The searcher of the version in use. Take it once per request.

        Raises:
            IndexNotLoaded: nothing is loaded (the message says why).
        """
        searcher = self._searcher
        if searcher is None:
            raise IndexNotLoaded(self._error or f"no index loaded from {self.root}")
        return searcher

    @property
    def error(self) -> str | None:
        """Why nothing is loaded, or why the version ``current`` names was refused; None when all is well."""
        return self._error

    def status(self) -> dict:
        """What is served: ``index``, ``version``, ``built_at``, ``model``, ``clips``, ``query_encoder``,
        ``last_reload_error``.

        Raises:
            IndexNotLoaded: nothing is loaded.
        """
        searcher = self.searcher
        index = searcher.index
        encoder = searcher.encoder
        return {
            "index": str(self.root),
            "version": index.version,
            "built_at": index.manifest["built_at"],
            "model": index.manifest["model"],
            "clips": len(index),
            "query_encoder": f"onnx {encoder.precision}" if getattr(encoder, "backend", "torch") == "onnx" else "torch",
            "last_reload_error": self._error,
        }

    def reload(self, *, retry_refused: bool = False) -> Reload:
        """Swap in the version ``DIR/current`` names if it is not the one in use.

        Args:
            retry_refused: try again a version refused before (a background check does not, an operator may).

        Raises:
            IndexNotLoaded: there is no index and nothing is loaded.
            ReloadRefused: the new version failed to load or verify; the one in use keeps serving.
        """
        with self._lock:
            serving = self._searcher
            loaded = serving.index.path.name if serving else None
            try:
                path = current_version_path(self.root)
            except IndexNotFound as exc:
                if serving is None:
                    self._set_error(str(exc))
                    raise IndexNotLoaded(str(exc)) from None
                self._refuse("-", f"{exc}; still serving version {loaded}", count=self._refused != "-")
            if path.name == loaded:
                self._refused = None
                self._set_error(None)
                return Reload(loaded, False)
            if path.name == self._refused and not retry_refused:
                raise ReloadRefused(self._error)
            try:
                searcher = self._open(path)
            except Exception as exc:  # noqa: BLE001 - whatever breaks the loader, the version is refused
                keeping = f"; still serving version {loaded}" if loaded else ""
                self._refuse(path.name, f"version {path.name} of {self.root} refused: {exc}{keeping}")
            # The one switch: requests that took the old searcher finish on it.
            self._searcher = searcher
            self._refused = None
            self._set_error(None)
            if serving is not None:
                self.reloads += 1
            log.info(
                "serving %s version %s (%d clips, model %s)",
                self.root,
                path.name,
                len(searcher.index),
                searcher.index.manifest["model"],
            )
            return Reload(path.name, True)

    def _open(self, path: Path) -> Searcher:
        index = ClipIndex.load_version(self.root, path)
        serving = self._searcher
        if serving is not None and serving.encoder.fingerprint == index.manifest["model_fingerprint"]:
            return Searcher(index, serving.encoder, search_threads=self.search_threads)
        ref = resolve_model(self.model) if self.model is not None else index.model_ref()
        encoder = load_query_encoder(ref, self.cache_dir, **self.encoding)
        return Searcher(index, encoder, search_threads=self.search_threads)

    def _refuse(self, version: str, message: str, count: bool = True) -> NoReturn:
        if count:
            self.failed_reloads += 1
        self._refused = version
        self._set_error(message)
        raise ReloadRefused(message)

    def _set_error(self, message: str | None) -> None:
        if message and message != self._error:
            log.error("%s", message)
        self._error = message

    def watch(self, interval: float) -> None:
        """Check ``DIR/current`` every ``interval`` seconds in a background thread (0: never)."""
        if interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(interval,), name="clipsearch-reload", daemon=True
        )
        self._thread.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reload()
            except (IndexNotLoaded, ReloadRefused):
                pass  # recorded in self.error, logged once
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failed check
                log.exception("index check failed")

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class Metrics:
    """The Prometheus metrics of one served app, in its own registry (apps in one process never share counts).

    Requests and answers are counted as they happen; the index gauges and reload counters are read from the
    service when scraped.
    """

    LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service: Service):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clipsearch_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clipsearch_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=self.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "clipsearch_answers",
            "Questions asked, by whether they were answered (false: no result, or none confident enough).",
            ["answered"],
            registry=self.registry,
        )
        for answered in ("true", "false"):
            self.answers.labels(answered=answered)
        self.registry.register(_ServiceCollector(service))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_answer(self, answered: bool) -> None:
        self.answers.labels(answered="true" if answered else "false").inc()

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class _ServiceCollector:
    """The state of a Service as metrics, read at scrape time."""

    def __init__(self, service: Service):
        self.service = service

    def collect(self):
        service = self.service
        searcher = service._searcher
        loaded = GaugeMetricFamily("clipsearch_index_loaded", "1 while an index is loaded and answering.")
        loaded.add_metric([], 1 if searcher else 0)
        yield loaded
        error = GaugeMetricFamily(
            "clipsearch_index_reload_error",
            "1 while the version DIR/current names is refused or missing (the loaded one keeps serving).",
        )
        error.add_metric([], 1 if service.error else 0)
        yield error
        yield CounterMetricFamily(
            "clipsearch_index_reloads", "New index versions swapped in while serving.", value=service.reloads
        )
        yield CounterMetricFamily(
            "clipsearch_index_reload_failures",
            "Index versions refused (failed to load or verify).",
            value=service.failed_reloads,
        )
        if searcher is None:
            return
        manifest = searcher.index.manifest
        info = GaugeMetricFamily(
            "clipsearch_index_info", "The index version being served.", labels=["version", "model"]
        )
        info.add_metric([searcher.index.version, str(manifest["model"])], 1)
        yield info
        yield GaugeMetricFamily(
            "clipsearch_index_clips", "Clips in the index being served.", value=len(searcher.index)
        )
        age = time.time() - datetime.fromisoformat(manifest["built_at"]).timestamp()
        yield GaugeMetricFamily(
            "clipsearch_index_age_seconds", "Seconds since the served version was built.", value=age
        )
