"""The Prometheus metrics of one served app: HTTP requests and latency (counted by the access-log middleware),
and the served index's version, clips and reloads, read from the :class:`Service` at each scrape."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from clipsearch.serve.service import Service


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
