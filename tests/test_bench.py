"""``clipsearch bench`` through the real parser, on the shipped example questions, plus the library underneath."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import EXAMPLES
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.errors import CorpusError
from clipsearch.evaluate.benchmark import LabelledQuery, read_queries, run_benchmark
from clipsearch.index.build import build_index
from clipsearch.search.searcher import Searcher

QUESTIONS = EXAMPLES / "questions.jsonl"
OFFTOPIC = EXAMPLES / "offtopic.jsonl"


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def snapshot(directory: Path) -> dict[str, str]:
    """Every entry under ``directory``: file bytes' sha256, symlink targets."""
    entries = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_symlink():
            entries[name] = "-> " + os.readlink(path)
        elif path.is_file():
            entries[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[name] = "dir"
    return entries


@pytest.fixture(scope="module")
def bench_run(example_index, tmp_path_factory):
    """One ``bench`` over the example index with both shipped question sets, JSON and report written."""
    out = tmp_path_factory.mktemp("bench")
    before = snapshot(example_index)
    result = invoke(
        "bench", "--index", example_index, "--queries", QUESTIONS, "--queries", OFFTOPIC,
        "--json", out / "bench.json", "--report", out / "report",
    )
    return result, out, before


def test_bench_prints_and_writes_the_metrics(bench_run, example_index):
    result, out, _ = bench_run
    assert result.exit_code == 0, result.output
    for label in ("Recall@1", "Recall@5", "Recall@10", "MRR@10", "nDCG@10", "Hit@1", "precision", "F1", "p95"):
        assert label in result.output
    data = json.loads((out / "bench.json").read_text())
    assert set(data["metrics"]) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "hit@1"}
    assert set(data["abstention"]) >= {"precision", "recall", "f1", "answered_rate"}
    assert set(data["latency_ms"]) == {"p50", "p95", "p99"}
    shipped = sum(1 for f in (QUESTIONS, OFFTOPIC) for line in f.read_text().splitlines() if line.strip())
    assert data["queries"] == shipped == 70
    assert (data["answerable"], data["unanswerable"]) == (40, 30)
    assert all(0.0 <= v <= 1.0 for v in data["metrics"].values())
    assert data["metrics"]["recall@1"] <= data["metrics"]["recall@5"] <= data["metrics"]["recall@10"]
    assert data["metrics"]["hit@1"] >= 0.9  # the shipped paraphrases are meant to come first
    assert all(v is None or 0.0 <= v <= 1.0 for v in data["abstention"].values())
    assert data["abstention"]["recall"] is not None and data["abstention"]["f1"] is not None  # off-topic ones exist
    p50, p95, p99 = (data["latency_ms"][p] for p in ("p50", "p95", "p99"))
    assert 0 < p50 <= p95 <= p99
    manifest = json.loads((example_index / "current" / "manifest.json").read_text())
    assert {key: data["index"][key] for key in ("version", "model", "ranking")} == {
        key: manifest[key] for key in ("version", "model", "ranking")
    }


def test_bench_writes_a_markdown_report_with_plots(bench_run):
    _, out, _ = bench_run
    report = out / "report"
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert pngs == ["recall_at_k.png", "scores.png"]
    for name in pngs:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in (report / "report.md").read_text()
    assert "| hybrid |" in (report / "report.md").read_text()


def test_bench_leaves_the_index_byte_for_byte_unchanged(bench_run, example_index):
    _, _, before = bench_run
    assert snapshot(example_index) == before


def head(path: Path, lines: int, tmp_path: Path) -> Path:
    """The first ``lines`` questions of ``path`` (keeps the slower CLI runs short)."""
    out = tmp_path / f"{path.stem}-{lines}.jsonl"
    out.write_text("\n".join(path.read_text().splitlines()[:lines]) + "\n")
    return out


def test_bench_without_unanswerable_questions_has_null_abstention(example_index, tmp_path):
    questions = head(QUESTIONS, 6, tmp_path)
    result = invoke("bench", "--index", example_index, "--queries", questions, "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    abstention = json.loads((tmp_path / "b.json").read_text())["abstention"]
    assert (abstention["precision"], abstention["recall"], abstention["f1"]) == (None, None, None)
    assert 0.0 <= abstention["answered_rate"] <= 1.0


def test_bench_compare_prints_one_row_per_method(example_index, tmp_path):
    result = invoke(
        "bench", "--index", example_index, "--queries", head(QUESTIONS, 4, tmp_path), "--queries",
        head(OFFTOPIC, 2, tmp_path), "--compare", "--json", tmp_path / "c.json",
    )
    assert result.exit_code == 0, result.output
    ranking_table = result.output.split("Ranking")[1].split("Abstention")[0]
    rows = [line.split()[0] for line in ranking_table.splitlines()[1:] if line.strip()]
    assert rows == ["method", "bm25", "dense", "hybrid"]
    data = json.loads((tmp_path / "c.json").read_text())
    assert list(data["compare"]) == ["bm25", "dense", "hybrid"]
    assert data["compare"]["hybrid"]["metrics"] == data["metrics"]
    assert data["compare"]["bm25"]["ranking"]["weights"]["bm25"] == 1.0
    assert data["compare"]["bm25"]["ranking"]["weights"]["question"] == 0.0


@pytest.mark.parametrize(
    "line, where",
    [
        ('{"qid": "x", "query": "how?", "relevant": "bike-01"}', "relevant: expected a list of clip ids"),
        ('{"qid": "x", "relevant": []}', "query: missing or empty"),
        ('{"qid": "x", "query": "how?"}', "relevant: missing"),
        ('{"qid": "x", "query": "how?", "relevant": [] ', "not valid JSON"),
        ('{"qid": "ex-1", "query": "how?", "relevant": []}', "qid: 'ex-1' is already used at"),
    ],
)
def test_a_malformed_queries_file_exits_2_naming_path_line_and_field(example_index, tmp_path, line, where):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(QUESTIONS.read_text().splitlines()[0] + "\n" + line + "\n")
    result = invoke("bench", "--index", example_index, "--queries", bad)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}:2: {where}"), result.stderr


def test_bench_refuses_to_write_into_the_index(example_index):
    result = invoke("bench", "--index", example_index, "--queries", QUESTIONS, "--report", example_index / "r")
    assert result.exit_code == 2
    assert "bench never writes to an index" in result.stderr


def test_overlapping_ids_and_missing_clips(tmp_path, encoder):
    """Either of two overlapping moments counts as found where the one standing is; unknown ids mean no answer."""
    clips = [
        {"id": "knife-a", "video_id": "v1", "start": 0, "end": 60, "question": "How do I sharpen a kitchen knife?",
         "answer": "Hold the knife at fifteen degrees to the whetstone and draw it across in smooth strokes."},
        {"id": "knife-b", "video_id": "v1", "start": 30, "end": 90, "question": "How do I sharpen a knife on a stone?",
         "answer": "Soak the whetstone, then sharpen the knife edge at a steady angle, alternating sides."},
        {"id": "tea", "video_id": "v2", "start": 0, "end": 30, "question": "How long should I steep green tea?",
         "answer": "Two to three minutes in water well below boiling, or it turns bitter."},
    ]
    corpus = tmp_path / "clips.jsonl"
    corpus.write_text("".join(json.dumps(c) + "\n" for c in clips))
    build_index([corpus], tmp_path / "index")
    searcher = Searcher.open(tmp_path / "index")
    queries = [
        LabelledQuery("a", "how to sharpen my kitchen knife with a whetstone", ("knife-a",)),
        LabelledQuery("b", "how to sharpen my kitchen knife with a whetstone", ("knife-b",)),
        LabelledQuery("gone", "how do I descale a kettle", ("clip-not-indexed",)),
    ]
    result = run_benchmark(searcher, queries, k=3)
    ranking = result.main.outcomes[0].ranking
    assert sorted(ranking[0]) == ["knife-a", "knife-b"]  # collapsed: one result standing for both
    assert result.main.metrics["hit@1"] == 1.0 and result.main.metrics["mrr@10"] == 1.0
    assert (result.queries, result.answerable) == (3, 2)
    assert "1 question(s) name only clip ids that are not in the index" in result.notes[0]
    assert searcher.fusion == searcher.index.fusion


def test_read_queries_defaults_qid_to_file_and_line(tmp_path):
    file = tmp_path / "mine.jsonl"
    file.write_text('\n{"query": "how?", "relevant": []}\n')
    assert read_queries([file]) == [LabelledQuery("mine:2", "how?", ())]
    with pytest.raises(CorpusError, match="no questions"):
        empty = tmp_path / "empty.jsonl"
        empty.write_text("\n")
        read_queries([empty])


# --- moments: an index cut from transcripts, scored against the human clips (--reference) ---


def dev_questions_of(videos, tmp_path) -> Path:
    """The shared dev questions about the given videos, as a questions file."""
    from conftest import TUTORIALVQA

    lines = [line for line in (TUTORIALVQA / "queries-dev.jsonl").read_text().splitlines()
             if any(f'"{video}-' in line for video in videos)]
    path = tmp_path / "dev-questions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bench_reference_scores_moments(transcript_index, tmp_path):
    from conftest import TRANSCRIPT_VIDEOS, TUTORIALVQA

    questions = dev_questions_of(TRANSCRIPT_VIDEOS, tmp_path)
    count = len(questions.read_text().splitlines())
    result = invoke("bench", "--index", transcript_index, "--queries", questions,
                    "--reference", TUTORIALVQA / "clips.jsonl", "--json", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert "moment Hit@1" in result.output and "video Hit@1" in result.output
    data = json.loads((tmp_path / "m.json").read_text())
    # the transcript clips are not the labelled ones: every question is answerable, by its moments only
    assert (data["queries"], data["answerable"]) == (count, count)
    assert data["metrics"]["hit@1"] is None
    clips = [json.loads(line) for line in (transcript_index / "current" / "clips.jsonl").read_text().splitlines()]
    assert data["mean_clip_seconds"] == pytest.approx(sum(c["end"] - c["start"] for c in clips) / len(clips))
    assert 0 < data["metrics"]["moment_hit@1"] <= data["metrics"]["video_hit@1"]
    assert data["metrics"]["video_hit@1"] >= 0.6  # three videos on distinct topics


def test_moment_labels_need_no_reference(transcript_index, tmp_path):
    questions = tmp_path / "moments.jsonl"
    questions.write_text(
        json.dumps({"qid": "sky", "query": "how do I open a second image with an interesting sky and add it?",
                    "relevant": [{"video_id": "14645", "start": 181.28, "end": 215.84}]}) + "\n"
        + json.dumps({"qid": "wrong-video", "query": "how do I open a second image with an interesting sky and add it?",
                      "relevant": [{"video_id": "14643", "start": "0:30", "end": "0:41"}]}) + "\n"
    )
    result = run_benchmark(Searcher.open(transcript_index), read_queries([questions]), k=3)
    assert result.main.metrics["moment_hit@1"] == 0.5 and result.main.metrics["video_hit@1"] == 0.5
    assert result.answerable == 2


@pytest.mark.parametrize(
    "label, where",
    [
        ({"start": 1, "end": 2}, "relevant[0].video_id: missing or not a string"),
        ({"video_id": "v", "start": "soon", "end": 2}, "relevant[0].start: 'soon' is not a time"),
        ({"video_id": "v", "start": 5, "end": 2}, "relevant[0].end: 2 is not after start 5"),
    ],
)
def test_a_malformed_moment_label_names_line_and_field(tmp_path, label, where):
    questions = tmp_path / "moments.jsonl"
    questions.write_text('{"query": "how?", "relevant": []}\n' + json.dumps({"query": "how?", "relevant": [label]}))
    with pytest.raises(CorpusError) as caught:
        read_queries([questions])
    assert str(caught.value).startswith(f"{questions}:2: {where}")


def test_a_reference_clip_without_video_id_is_refused(example_index, tmp_path):
    reference = tmp_path / "reference.jsonl"
    reference.write_text(json.dumps({"id": "c1", "video_id": "v", "answer": "a", "start": 0, "end": 5}) + "\n"
                         + json.dumps({"id": "c2", "answer": "b", "start": 0, "end": 5}) + "\n")
    result = invoke("bench", "--index", example_index, "--queries", QUESTIONS, "--reference", reference)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {reference}:2: video_id: missing"), result.stderr
