"""The ``clipsearch`` command line: a thin shell over the library (parse, call the core, print)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from clipsearch.cli import index_commands  # noqa: F401 - registers ``clipsearch index ...``
from clipsearch.cli.options import (
    GroupBy,
    IndexOption,
    ModelOption,
    QueriesOption,
    _default,
    _setting,
    _stderr_console,
    app,
    fail,
)
from clipsearch.errors import ClipsearchError
from clipsearch.ingest.clip_record import format_time
from clipsearch.settings import Settings

QueryEncoderOption = Annotated[str, _setting("query_encoder", "--query-encoder")]
OnnxPrecisionOption = Annotated[str, _setting("onnx_precision", "--onnx-precision")]
EncoderThreadsOption = Annotated[int, _setting("encoder_threads", "--encoder-threads", min=1, max=64)]
SearchThreadsOption = Annotated[int, _setting("search_threads", "--search-threads", min=1, max=64)]
CacheDirOption = Annotated[Optional[Path], _setting("cache_dir", "--cache-dir")]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A free-text question.")],
    index: IndexOption = Settings.model_fields["index"].default,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="How many clips to show.")] = 5,
    source: Annotated[Optional[list[str]], typer.Option("--source", help="Only clips from this source (repeatable).")] = None,
    video_id: Annotated[Optional[list[str]], typer.Option("--video-id", help="Only clips of this video (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer JSON (as GET /search returns it).")] = False,
    collapse: Annotated[
        bool, typer.Option("--collapse/--no-collapse", help="Overlapping clips of one video show as one result.")
    ] = True,
    group_by: Annotated[
        Optional[GroupBy], typer.Option("--group-by", help="One result per video, its best clip.")
    ] = None,
    model: ModelOption = None,
    query_encoder: QueryEncoderOption = _default("query_encoder"),
    onnx_precision: OnnxPrecisionOption = _default("onnx_precision"),
    encoder_threads: EncoderThreadsOption = _default("encoder_threads"),
    search_threads: SearchThreadsOption = _default("search_threads"),
    cache_dir: CacheDirOption = None,
) -> None:
    """Print the clips closest to a question, best first.

    Example usage:

        clipsearch ask "how do I fix a flat tyre?" --index index/example -k 3
    """
    from clipsearch.search.searcher import Searcher

    try:
        settings = Settings(
            index=index, model=model, query_encoder=query_encoder, onnx_precision=onnx_precision,
            encoder_threads=encoder_threads, search_threads=search_threads, cache_dir=cache_dir,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        searcher = Searcher.open(
            index, model=model, query_encoder=settings.query_encoder, onnx_precision=settings.onnx_precision,
            encoder_threads=settings.encoder_threads, search_threads=settings.search_threads,
            cache_dir=settings.cache_dir,
        )
        answer = searcher.search(question, k=k, filters={"source": source or [], "video_id": video_id or []},
                                 collapse=collapse, group_by=group_by.value if group_by else None)
    except ClipsearchError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if not answer.results:
        typer.echo("No clip answers that.")
        return
    if not answer.answered:
        typer.echo("No clip answers that with confidence. The closest clips:")
    for rank, hit in enumerate(answer.results, start=1):
        clip = hit.clip
        span = f"{format_time(clip.start)} – {format_time(clip.end)}"
        confidence = "" if hit.confidence is None else f", confidence {hit.confidence:.2f}"
        typer.echo(f"{rank}. [{span}] {clip.source or '-'}  score {hit.score:.3f}{confidence} ({hit.matched})")
        typer.echo(f"   {clip.question or clip.answer[:100]}")


@app.command()
def serve(
    index: IndexOption = _default("index"),
    host: Annotated[str, _setting("host", "--host")] = _default("host"),
    port: Annotated[int, _setting("port", "--port")] = _default("port"),
    model: ModelOption = None,
    query_encoder: QueryEncoderOption = _default("query_encoder"),
    onnx_precision: OnnxPrecisionOption = _default("onnx_precision"),
    encoder_threads: EncoderThreadsOption = _default("encoder_threads"),
    search_threads: SearchThreadsOption = _default("search_threads"),
    cache_dir: CacheDirOption = None,
    log_level: Annotated[str, _setting("log_level", "--log-level")] = _default("log_level"),
    default_k: Annotated[int, _setting("default_k", "--default-k")] = _default("default_k"),
    max_k: Annotated[int, _setting("max_k", "--max-k")] = _default("max_k"),
    max_query_chars: Annotated[
        int, _setting("max_query_chars", "--max-query-chars")
    ] = _default("max_query_chars"),
    max_body_bytes: Annotated[
        int, _setting("max_body_bytes", "--max-body-bytes")
    ] = _default("max_body_bytes"),
    max_query_string_bytes: Annotated[
        int, _setting("max_query_string_bytes", "--max-query-string-bytes")
    ] = _default("max_query_string_bytes"),
    max_in_flight: Annotated[int, _setting("max_in_flight", "--max-in-flight")] = _default("max_in_flight"),
    request_timeout: Annotated[
        float, _setting("request_timeout", "--request-timeout")
    ] = _default("request_timeout"),
    reload_interval: Annotated[
        float, _setting("reload_interval", "--reload-interval")
    ] = _default("reload_interval"),
    admin_token: Annotated[
        Optional[str], _setting("admin_token", "--admin-token", show_default=False, metavar="TOKEN")
    ] = None,
    cors_origins: Annotated[Optional[list[str]], _setting("cors_origins", "--cors-origin")] = None,
) -> None:
    """Serve an index over HTTP: the search page at /, GET /search, POST /ask, /healthz, /readyz, /metrics.

    The index is loaded once at startup; a new version built into the same directory is picked up while
    serving (checked every --reload-interval seconds). A missing or broken index does not stop the server: it
    starts, logs why, and answers searches with 503 until a good version appears. Every option can also be set
    by its CLIPSEARCH_* environment variable (prefer the variable for --admin-token: a flag shows in `ps`).

    Example usage:

        clipsearch serve --index index/example --port 8000
    """
    import uvicorn

    from clipsearch.serve.app import create_app, uvicorn_log_config
    from clipsearch.serve.connection import deadline_protocol

    try:
        settings = Settings(
            index=index, host=host, port=port, model=model, query_encoder=query_encoder,
            onnx_precision=onnx_precision, encoder_threads=encoder_threads, search_threads=search_threads,
            cache_dir=cache_dir, log_level=log_level, default_k=default_k,
            max_k=max_k, max_query_chars=max_query_chars, max_body_bytes=max_body_bytes,
            max_query_string_bytes=max_query_string_bytes, max_in_flight=max_in_flight,
            request_timeout=request_timeout, reload_interval=reload_interval, admin_token=admin_token, cors_origins=cors_origins or [],
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_config=uvicorn_log_config(settings.log_level), log_level=settings.log_level, access_log=False,
        # uvicorn's own limit on a request head stays above the app's query string limit, so the app's 414 (in
        # the one error shape) is what a long query gets.
        h11_max_incomplete_event_size=max(16 * 1024, settings.max_query_string_bytes + 8 * 1024),
        # A request must arrive whole within --request-timeout: slow clients cannot hold connections (issue 19).
        http=deadline_protocol(settings.request_timeout),
    )


@app.command()
def bench(
    queries: QueriesOption,
    index: IndexOption = Settings.model_fields["index"].default,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Results asked for per question.")] = 10,
    report: Annotated[
        Optional[Path], typer.Option("--report", help="Write report.md and PNG plots into this directory.")
    ] = None,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics as JSON to this file.")] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Also rank with BM25 only and dense only, side by side.")
    ] = False,
    reference: Annotated[
        Optional[Path],
        typer.Option("--reference", help="Clip file that resolves the labelled clip ids to {video_id, start, end} "
                     "moments; adds moment Hit@1 and video Hit@1 (for indexes cut from transcripts)."),
    ] = None,
    model: ModelOption = None,
) -> None:
    """Measure an index on labelled questions: Recall@1/5/10, MRR@10, nDCG@10, Hit@1, abstention, latency.

    Read-only: the index is never written. Questions whose relevant clips are all missing from the index (and, with
    --reference, from the reference) count as questions that should not be answered. With --reference, or labels
    that are moments {"video_id", "start", "end"}, the top result is also scored as a moment: a hit when it is in
    the right video and overlaps a relevant moment by at least half of the longer of the two. A malformed file
    exits with status 2 (PATH:LINE: FIELD: what is wrong).

    Example usage:

        clipsearch bench --index index/example --queries examples/questions.jsonl --queries examples/offtopic.jsonl

        clipsearch bench --index index/videos --queries queries.jsonl --reference clips.jsonl
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from clipsearch.evaluate.benchmark import read_queries, read_reference, run_benchmark
    from clipsearch.evaluate.report import render as render_report
    from clipsearch.evaluate.report import write as write_report
    from clipsearch.search.searcher import Searcher

    root = index.resolve()
    for option, target in (("--report", report), ("--json", json_file)):
        if target is not None and target.resolve().is_relative_to(root):
            typer.echo(f"error: {option} {target} is inside the index {index}; bench never writes to an index", err=True)
            raise typer.Exit(2)
    console = _stderr_console()
    try:
        labelled = read_queries(queries)
        spans = read_reference([reference]) if reference is not None else None
        searcher = Searcher.open(index, model=model)
        with Progress(
            TextColumn("asking"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            disable=not console.is_terminal, transient=True, console=console,
        ) as bar:
            task = bar.add_task("asking", total=None)
            result = run_benchmark(
                searcher, labelled, k=k, compare=compare, sources=queries, reference=spans,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except ClipsearchError as exc:
        raise fail(exc) from None
    typer.echo(render_report(result, markdown=False), nl=False)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        typer.echo(f"wrote {json_file}")
    if report is not None:
        written = write_report(result, report)
        typer.echo(f"wrote {', '.join(str(p) for p in written)}")


@app.command()
def calibrate(
    queries: QueriesOption,
    index: IndexOption = Settings.model_fields["index"].default,
    answered_rate: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Share of the answerable questions the threshold keeps answered.")
    ] = 0.9,
    keep_versions: Annotated[int, typer.Option(min=1, help="Versions to keep for rollback.")] = 3,
    folds: Annotated[
        int, typer.Option(min=0, help="Folds of whole videos for the cross-validated figures (0 or 1: none).")
    ] = 5,
) -> None:
    """Fit an index's ranking weights and "no answer" threshold on labelled questions; write them as a new version.

    The weights are fitted for MRR@10 on the answerable questions (with 20 or more); the calibration is a logistic
    model over retrieval features of the top result, answerable against unanswerable questions (5 or more of
    each; with fewer unanswerable ones only the threshold moves). Give it both kinds: off-topic questions, and
    questions about videos that are not in the index. Nothing is re-embedded; the new version is made current once
    verified, so a running server picks it up, and the previous one stays for rollback. The figures printed are
    in-sample, and cross-validated by video (--folds): the questions grouped by the video of their first relevant
    clip, each fold measured with weights and a calibration fitted on the other folds (mean ± spread across
    folds); trust those, and confirm on questions kept apart with `clipsearch bench`.

    Example usage:

        clipsearch calibrate --index index/example --queries examples/questions.jsonl --queries examples/offtopic.jsonl
    """
    from clipsearch.evaluate.benchmark import read_queries
    from clipsearch.evaluate.calibrate import calibrate as fit_index

    try:
        done = fit_index(index, read_queries(queries), answered_rate=answered_rate, keep_versions=keep_versions,
                         sources=queries, folds=folds)
    except ClipsearchError as exc:
        raise fail(exc) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    def f1(figures: dict) -> str:
        return "n/a" if figures["f1"] is None else f"{figures['f1']:.3f}"

    typer.echo(f"calibrated {index} version {done.version} on {done.answerable} answerable and "
               f"{done.unanswerable} unanswerable questions (in-sample figures)")
    typer.echo(f"  MRR@10          {done.mrr_before:.3f} -> {done.mrr_after:.3f}")
    typer.echo(f"  abstention F1   {f1(done.abstention_before)} -> {f1(done.abstention_after)}")
    typer.echo(f"  answered rate   {done.abstention_before['answered_rate']:.3f} -> "
               f"{done.abstention_after['answered_rate']:.3f}")
    typer.echo(f"  weights {json.dumps(done.fusion.to_dict()['weights'])}, threshold {done.calibration.threshold}")
    if done.cross_validated:
        typer.echo(f"cross-validated by video, {done.folds} folds (mean ± spread across folds):")
        for kind, figures in done.cross_validated.items():
            typer.echo(f"  {kind:<11} " + "  ".join(f"{name} {figure}" for name, figure in figures.items()))


@app.command()
def tune(
    clips: Annotated[list[Path], typer.Option("--clips", help="The clips the questions name (any clip format). Repeatable.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write (must not exist or be empty).")],
    queries: Annotated[
        Optional[list[Path]],
        typer.Option("--queries", help="Labelled training questions (JSON lines). Repeatable. "
                     "None: train on the clips' own question -> answer pairs."),
    ] = None,
    dev: Annotated[
        Optional[list[Path]],
        typer.Option("--dev", help="Questions measured before and after. Default: a seeded ~10 % of the questions, "
                     "by video, held out of training."),
    ] = None,
    model: Annotated[
        Optional[str], typer.Option("--model", "-m", help="Model to start from. Default: the packaged all-MiniLM-L6-v2.")
    ] = None,
    epochs: Annotated[float, typer.Option(min=0.1, help="Passes over the training pairs.")] = 2.0,
    batch_size: Annotated[int, typer.Option(min=2, help="Pairs per batch (each pair's in-batch negatives).")] = 32,
    max_seq_length: Annotated[int, typer.Option(min=16, help="Tokens of a clip text used in training.")] = 128,
    question_pairs: Annotated[
        bool, typer.Option("--question-pairs", help="Also pair each question with its clip's question (twice the steps).")
    ] = False,
    work: Annotated[
        Optional[Path], typer.Option("--work", help="Scratch directory for benchmark indexes (kept, with their "
                                     "embedding cache, so a second run is faster). Default: a temporary one."),
    ] = None,
) -> None:
    """Fine-tune the encoder on labelled questions and write a model directory usable by --model.

    Training uses in-batch negatives (sentence-transformers MultipleNegativesRankingLoss) on question -> clip
    answer pairs (with --question-pairs also question -> clip question), plus the corpus' own question -> answer
    pairs. Ranking weights are
    then refitted for the tuned model on a slice of the training videos kept out of training and written into the
    model directory (clipsearch_ranking.json; `index build --model DIR` uses them). Prints the dev metrics before
    and after. An index built with the tuned model says "answered" whenever it has results until you run
    `clipsearch calibrate` on it.

    Example usage:

        clipsearch tune --clips clips.jsonl --queries queries-train.jsonl --dev queries-dev.jsonl --out models/tuned
    """
    from clipsearch.evaluate.metrics import RANKING_METRICS
    from clipsearch.evaluate.tuning import TuneOptions
    from clipsearch.evaluate.tuning import tune as run_tune

    options = TuneOptions(epochs=epochs, batch_size=batch_size, max_seq_length=max_seq_length,
                          question_pairs=question_pairs)
    try:
        result = run_tune(clips, queries or [], out, dev_files=dev or [], model=model, options=options, work=work,
                          say=lambda message: typer.echo(message, err=True))
    except ClipsearchError as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {result.out}: trained on {result.train_pairs} pairs ({result.train_questions} questions), "
               f"weights fitted on {result.fit_questions}, measured on {result.dev_questions} dev questions")
    typer.echo(f"  {'metric':<10} {'before':>7} {'after':>7}")
    for name in RANKING_METRICS:
        typer.echo(f"  {name:<10} {result.before[name]:7.3f} {result.after[name]:7.3f}")
    typer.echo(f"  weights {json.dumps(result.fusion['weights'])}")
    typer.echo("  seconds " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))


def main() -> None:
    app(prog_name="clipsearch")


if __name__ == "__main__":
    sys.exit(main())
