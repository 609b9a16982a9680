"""Benchmark: run labelled questions through a Searcher and measure ranking, abstention and latency.

Labelled questions are JSON lines ``{"qid", "query", "relevant": [clip ids]}``; ``relevant: []`` marks a question
that should not be answered. A benchmark only reads the index. It scores the list a user sees: ``results`` in order,
whatever ``answered`` says, an id a result lists in ``overlapping`` counting as found at that result's rank.

An index whose clips are not the labelled ones (a transcript cut into clips) is scored by moments: a reference clip
file resolves the labelled ids to ``(video_id, start, end)`` spans, or a label is such a span object directly, and
the top result is a moment hit when it overlaps a relevant span by half of the longer of the two
(:func:`clipsearch.evaluate.metrics.moment_hit`).

Example usage::

    searcher = Searcher.open("index/example")
    queries = read_queries(["examples/questions.jsonl", "examples/offtopic.jsonl"])
    result = run_benchmark(searcher, queries, compare=True)
    print(report.render(result, markdown=False))
    report.write(result, Path("reports/example"))
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipsearch.errors import CorpusError
from clipsearch.evaluate import metrics
from clipsearch.evaluate.metrics import Span
from clipsearch.evaluate.results import BenchResult, MethodResult, QueryOutcome
from clipsearch.ingest.clip_record import parse_time
from clipsearch.ingest.corpus import iter_sourced_clips
from clipsearch.scoring.fusion import COMPONENTS, Fusion

#: The baselines ``compare`` runs next to the index's own ranking, as fusion weights (unnamed components get 0).
#: A paraphrase bonus above cosine 1 never applies.
BASELINES = {
    "bm25": {"bm25": 1.0, "paraphrase": 2.0},
    "dense": {"question": 1.0, "answer": 1.0, "paraphrase": 2.0},  # separate question and answer vectors
}
HYBRID = "hybrid"


@dataclass(frozen=True)
class LabelledQuery:
    """A question with the clip ids and the moments that answer it (none: it should not be answered)."""

    qid: str
    query: str
    relevant: tuple[str, ...]
    spans: tuple[Span, ...] = ()


def read_queries(paths: Sequence[str | Path]) -> list[LabelledQuery]:
    """Read labelled questions from JSON-lines files; ``qid`` defaults to ``FILE_STEM:LINE``.

    Raises:
        CorpusError: a file cannot be read, a line is not a valid record, or a qid repeats
            (``PATH:LINE: FIELD: what is wrong``).
    """
    queries: list[LabelledQuery] = []
    seen: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CorpusError(path, None, None, f"cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        count = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            query = _parse_query(path, number, line)
            if query.qid in seen:
                raise CorpusError(path, number, "qid", f"{query.qid!r} is already used at {seen[query.qid]}")
            seen[query.qid] = f"{path}:{number}"
            queries.append(query)
            count += 1
        if not count:
            raise CorpusError(path, None, None, "no questions in the file")
    return queries


def read_reference(paths: Sequence[str | Path]) -> dict[str, Span]:
    """The moment of every clip of reference clip files: ``{clip id: (video_id, start, end)}``.

    Raises:
        CorpusError: a file is malformed, or a clip has no ``video_id`` (``PATH:LINE: FIELD: what is wrong``).
    """
    spans: dict[str, Span] = {}
    for sourced in iter_sourced_clips(paths):
        clip = sourced.clip
        if not clip.video_id:
            raise CorpusError(sourced.path, sourced.line, "video_id",
                              "missing: a reference clip needs the video it is a moment of")
        spans[clip.id] = (clip.video_id, clip.start, clip.end)
    return spans


def run_benchmark(
    searcher,
    queries: Sequence[LabelledQuery],
    *,
    k: int = 10,
    compare: bool = False,
    sources: Sequence[str | Path] = (),
    reference: Mapping[str, Span] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BenchResult:
    """Ask every question, best ``k`` results each, and measure the answers.

    Args:
        searcher: a ``clipsearch.Searcher``; only read (its ``fusion`` is swapped during ``compare`` and restored).
        compare: also rank with each of ``BASELINES`` (BM25 only, dense only) for a side-by-side table.
        reference: clip id -> (video_id, start, end) (see :func:`read_reference`): labelled ids found there become
            moments, and the metrics add ``moment_hit@1`` and ``video_hit@1``.
        progress: called with (questions done, questions in all methods).

    Relevant ids that are not in the index are dropped; a question left with none, and without moments, counts as
    one that should not be answered (that is how an index built without some videos is benched), and a note says so.
    """
    known = {clip.id for clip in searcher.index.clips}
    relevant = {q.qid: [i for i in q.relevant if i in known] for q in queries}
    spans = {q.qid: [*q.spans, *(reference[i] for i in q.relevant if reference and i in reference)] for q in queries}
    moments = reference is not None or any(spans.values())
    notes = _label_notes(queries, relevant, spans, reference)
    own = searcher.fusion
    plans = {name: _baseline(own, weights) for name, weights in BASELINES.items()} if compare else {}
    plans[HYBRID] = own
    done, total = 0, len(plans) * len(queries)

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    results = {}
    try:
        for name, fusion in plans.items():
            searcher.fusion = fusion
            results[name] = _run_method(searcher, name, fusion, queries, relevant, spans if moments else None, k, tick)
    finally:
        searcher.fusion = own
    manifest = searcher.index.manifest
    main = results.pop(HYBRID)
    return BenchResult(
        index={
            "path": str(searcher.index.root), "version": manifest.get("version"), "model": manifest.get("model"),
            "clips": len(searcher.index.clips), "ranking": manifest.get("ranking"),
        },
        sources=[str(s) for s in sources],
        k=k,
        queries=len(queries),
        answerable=sum(1 for q in queries if relevant[q.qid] or spans[q.qid]),
        main=main,
        compared=results,
        notes=notes,
        mean_clip_seconds=_mean_clip_seconds(searcher.index.clips),
    )


def _run_method(searcher, name, fusion, queries, relevant, spans, k, tick) -> MethodResult:
    if queries:  # warm up (first-call allocations) outside the timed questions
        searcher.search(queries[0].query, k=k)
    outcomes = []
    for query in queries:
        began = time.perf_counter()
        answer = searcher.search(query.query, k=k)
        elapsed = (time.perf_counter() - began) * 1000
        results = list(answer.results)
        top = getattr(answer, "best_score", None)
        if top is None and results:
            top = results[0].score
        confidence = getattr(results[0], "confidence", None) if results else None
        top_clip = results[0].clip if results else None
        outcomes.append(QueryOutcome(
            qid=query.qid,
            answerable=bool(relevant[query.qid] or (spans and spans[query.qid])),
            answered=bool(answer.answered),
            ranking=[[hit.clip.id, *(getattr(hit, "overlapping", None) or ())] for hit in results],
            top_score=None if top is None else float(top),
            top_confidence=None if confidence is None else float(confidence),
            threshold=getattr(answer, "threshold", None),
            latency_ms=elapsed,
            top_span=None if top_clip is None else (top_clip.video_id or "", top_clip.start, top_clip.end),
        ))
        tick()
    rankings = {o.qid: o.ranking for o in outcomes}
    method = MethodResult(
        name=name,
        fusion=fusion.to_dict() if hasattr(fusion, "to_dict") else {},
        outcomes=outcomes,
        metrics=metrics.ranking_metrics(relevant, rankings),
        abstention=metrics.abstention([o.answerable for o in outcomes], [o.answered for o in outcomes]),
        latency_ms=metrics.percentiles([o.latency_ms for o in outcomes]),
        recall_curve=metrics.recall_curve(relevant, rankings, k),
    )
    if spans is not None:
        method.metrics.update(metrics.moment_metrics(spans, {o.qid: o.top_span for o in outcomes}))
    # How well the top result's signal separates the two kinds of question, whatever threshold is chosen.
    method.abstention["auroc"] = metrics.auroc(method.top_values(True), method.top_values(False))
    return method


def _baseline(own: Fusion, weights: dict[str, float]) -> Fusion:
    """The index's fusion with every component weight zeroed except those named."""
    return dataclasses.replace(own, **{**dict.fromkeys(COMPONENTS, 0.0), **weights})


def _label_notes(queries, relevant, spans, reference) -> list[str]:
    dropped = sum(1 for q in queries if q.relevant and not relevant[q.qid] and not spans[q.qid])
    partial = sum(1 for q in queries if relevant[q.qid] and len(relevant[q.qid]) < len(q.relevant))
    notes = []
    if dropped:
        where = "the index or the reference" if reference is not None else "the index"
        notes.append(f"{dropped} question(s) name only clip ids that are not in {where}: "
                     "they count as questions that should not be answered.")
    if partial:
        notes.append(f"{partial} question(s) name some clip ids that are not in the index: those ids are ignored.")
    if reference is not None:
        resolved = sum(1 for q in queries if spans[q.qid] and not relevant[q.qid])
        notes.append(f"{resolved} question(s) are scored on moments only (their clip ids resolved through the "
                     "reference are not in the index).")
    return notes


def _mean_clip_seconds(clips) -> float | None:
    return sum(clip.duration for clip in clips) / len(clips) if clips else None


def _parse_query(path: Path, number: int, line: str) -> LabelledQuery:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(path, number, None, f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise CorpusError(path, number, None, "expected a JSON object {\"qid\", \"query\", \"relevant\"}")
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise CorpusError(path, number, "query", "missing or empty; expected the question as a string")
    if "relevant" not in record:
        raise CorpusError(path, number, "relevant", "missing; expected a list of clip ids ([] = should not be answered)")
    labels = record["relevant"]
    if not isinstance(labels, list) or not all((isinstance(i, str) and i) or isinstance(i, dict) for i in labels):
        raise CorpusError(path, number, "relevant",
                          f"expected a list of clip ids (strings) or moments {{video_id, start, end}}, got {json.dumps(labels)}")
    ids = [label for label in labels if isinstance(label, str)]
    spans = tuple(_span(path, number, n, label) for n, label in enumerate(labels) if isinstance(label, dict))
    qid = record.get("qid", f"{path.stem}:{number}")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
        raise CorpusError(path, number, "qid", f"expected a string, got {json.dumps(qid)}")
    return LabelledQuery(str(qid), query, tuple(ids), spans)


def _span(path: Path, number: int, n: int, label: dict) -> Span:
    """A moment label ``{"video_id", "start", "end"}``."""
    video = label.get("video_id")
    if isinstance(video, int) and not isinstance(video, bool):
        video = str(video)
    if not isinstance(video, str) or not video:
        raise CorpusError(path, number, f"relevant[{n}].video_id", "missing or not a string")
    times = []
    for field_name in ("start", "end"):
        try:
            times.append(parse_time(label.get(field_name)))
        except ValueError as exc:
            raise CorpusError(path, number, f"relevant[{n}].{field_name}", str(exc)) from None
    if times[1] <= times[0]:
        raise CorpusError(path, number, f"relevant[{n}].end", f"{label['end']} is not after start {label['start']}")
    return (video, times[0], times[1])
