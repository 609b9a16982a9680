"""What a benchmark run measured: per question (``QueryOutcome``), per ranking method (``MethodResult``) and for
the run (``BenchResult``, the JSON ``clipsearch bench --json`` writes). :mod:`report` renders them."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipsearch.evaluate.metrics import Span


@dataclass
class QueryOutcome:
    """What one search returned: the ranking (per result, the ids it stands for), answered, time, and the top
    result's score and confidence (``None`` on an uncalibrated index) with the threshold they were held to."""

    qid: str
    answerable: bool
    answered: bool
    ranking: list[list[str]]
    top_score: float | None
    top_confidence: float | None
    threshold: float | None
    latency_ms: float
    top_span: Span | None = None


@dataclass
class MethodResult:
    """The metrics of one ranking method over all the questions."""

    name: str
    fusion: dict
    outcomes: list[QueryOutcome]
    metrics: dict[str, float | None]
    abstention: dict[str, float | None]
    latency_ms: dict[str, float | None]
    recall_curve: list[float | None]

    @property
    def threshold(self) -> float | None:
        return next((o.threshold for o in self.outcomes if o.threshold is not None), None)

    @property
    def signal(self) -> str:
        """What ``answered`` is decided on: ``confidence`` on a calibrated index, else ``score``."""
        return "confidence" if any(o.top_confidence is not None for o in self.outcomes) else "score"

    def top_values(self, answerable: bool) -> list[float]:
        """The top result's ``signal`` of each question of one kind that got results."""
        name = "top_confidence" if self.signal == "confidence" else "top_score"
        values = (getattr(o, name) for o in self.outcomes if o.answerable == answerable)
        return [v for v in values if v is not None]

    def to_dict(self) -> dict:
        return {
            "metrics": self.metrics, "abstention": self.abstention, "latency_ms": self.latency_ms,
            "recall_curve": self.recall_curve, "threshold": self.threshold, "signal": self.signal,
            "ranking": self.fusion,
        }


@dataclass
class BenchResult:
    """A benchmark run: the index's own ranking (``main``), and the baselines when compared.

    ``to_dict()`` is the JSON ``clipsearch bench --json`` writes; :func:`clipsearch.evaluate.report.render` the
    report it prints, :func:`clipsearch.evaluate.report.write` the Markdown report and PNG plots.
    """

    index: dict
    sources: list[str]
    k: int
    queries: int
    answerable: int
    main: MethodResult
    compared: dict[str, MethodResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mean_clip_seconds: float | None = None

    @property
    def methods(self) -> dict[str, MethodResult]:
        return {**self.compared, self.main.name: self.main}

    def to_dict(self) -> dict:
        data = {
            "queries": self.queries, "answerable": self.answerable, "unanswerable": self.queries - self.answerable,
            "k": self.k, "sources": self.sources, "index": self.index, "method": self.main.name,
            "mean_clip_seconds": self.mean_clip_seconds, **self.main.to_dict(), "notes": self.notes,
        }
        if self.compared:
            data["compare"] = {name: method.to_dict() for name, method in self.methods.items()}
        return data
