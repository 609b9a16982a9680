"""The benchmark report: aligned text or Markdown tables, and PNG plots (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from clipsearch.evaluate import metrics
from clipsearch.evaluate.results import BenchResult

REPORT = "report.md"
RECALL_PLOT = "recall_at_k.png"
SCORES_PLOT = "scores.png"


def write(result: BenchResult, directory: str | Path) -> list[Path]:
    """Write ``report.md`` and the plots of a ``BenchResult`` into ``directory``; the paths written, report first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plots = _plot_recall(result, directory / RECALL_PLOT), _plot_scores(result, directory / SCORES_PLOT)
    written = [p for p in plots if p is not None]
    (directory / REPORT).write_text(render(result, markdown=True, plots=[p.name for p in written]), encoding="utf-8")
    return [directory / REPORT, *written]


def render(result: BenchResult, markdown: bool, plots: Sequence[str] = ()) -> str:
    """A ``BenchResult`` as text: one table each for ranking, abstention and latency, one row per method."""
    index = result.index
    lines = [
        "# clipsearch bench" if markdown else "clipsearch bench",
        "",
        (f"Index {_code(index['path'], markdown)} version {index['version']}, model {index['model']}, "
         f"{index['clips']} clips; ranking {json.dumps(index['ranking'], sort_keys=True)}."),
        (f"{result.queries} questions from {', '.join(_code(s, markdown) for s in result.sources)}: "
         f"{result.answerable} answerable, {result.queries - result.answerable} that should not be answered; "
         f"top {result.k} results per question."),
        "",
    ]
    methods = result.methods
    moments = []
    if metrics.MOMENT_METRICS[0] in result.main.metrics:
        seconds = "-" if result.mean_clip_seconds is None else f"{result.mean_clip_seconds:.1f}"
        title = ("Moments (top result in the right video and overlapping a relevant span by half of the longer of "
                 f"the two; mean clip {seconds} s)")
        moments = [(title,
                    ["method", "moment Hit@1", "video Hit@1"],
                    [[name, *(m.metrics[key] for key in metrics.MOMENT_METRICS)] for name, m in methods.items()])]
    sections = [*moments,
        ("Ranking, over answerable questions",
         ["method", "Recall@1", "Recall@5", "Recall@10", "MRR@10", "nDCG@10", "Hit@1"],
         [[name, *(m.metrics[key] for key in metrics.RANKING_METRICS)] for name, m in methods.items()]),
        ("Abstention (positive class: should not be answered)",
         ["method", "precision", "recall", "F1", "answered rate", "AUROC", "threshold", "on"],
         [[name, *(m.abstention[key] for key in ("precision", "recall", "f1", "answered_rate", "auroc")),
           m.threshold, m.signal] for name, m in methods.items()]),
        ("Latency per question (ms)",
         ["method", "p50", "p95", "p99"],
         [[name, *(_ms(m.latency_ms[key]) for key in ("p50", "p95", "p99"))] for name, m in methods.items()]),
    ]
    for title, headers, rows in sections:
        lines += [f"## {title}" if markdown else f"{title}:", "", *_table(headers, rows, markdown), ""]
    if result.notes:
        lines += ["## Notes" if markdown else "Notes:", "", *(f"- {note}" for note in result.notes), ""]
    if plots:
        lines += ["## Plots", "", *(f"![{name}]({name})" for name in plots), ""]
    return "\n".join(lines).rstrip() + "\n"


def _table(headers: list[str], rows: list[list], markdown: bool) -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    if markdown:
        return [f"| {' | '.join(headers)} |", f"|{'|'.join('---' for _ in headers)}|",
                *(f"| {' | '.join(row)} |" for row in cells)]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *cells)]
    return ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in [headers, *cells]]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _code(text: str, markdown: bool) -> str:
    return f"`{text}`" if markdown else text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _plot_recall(result: BenchResult, path: Path) -> Path | None:
    if not result.answerable:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, method in result.methods.items():
        ks = range(1, len(method.recall_curve) + 1)
        axes.plot(ks, method.recall_curve, marker="o", label=name)
    axes.set(xlabel="k (results seen)", ylabel="recall@k", ylim=(0, 1.02), title="Recall@k, answerable questions")
    if result.k <= 20:
        axes.set_xticks(list(range(1, result.k + 1)))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plot_scores(result: BenchResult, path: Path) -> Path | None:
    main = result.main
    sides = {"answerable": main.top_values(True), "should not be answered": main.top_values(False)}
    if not any(sides.values()):
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    values = [v for side in sides.values() for v in side]
    low, high = min(values), max(values)
    span = (low, high) if high > low else (low - 0.5, high + 0.5)
    for label, side in sides.items():
        if side:
            axes.hist(side, bins=30, range=span, alpha=0.55, label=f"{label} ({len(side)})")
    threshold = main.threshold
    if threshold is not None:
        axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axes.set(xlabel=f"top result's {main.signal}", ylabel="questions", title=f"Top {main.signal}, {main.name} ranking")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
