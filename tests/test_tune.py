"""``clipsearch tune``: a real (short) fine-tune of the packaged model on the example corpus' questions, a model
directory that every other command takes with ``--model``, and ranking weights fitted for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_CORPUS, EXAMPLES
from typer.testing import CliRunner

from clipsearch.evaluate.benchmark import read_queries
from clipsearch.evaluate.tuning import split_by_video, training_pairs
from clipsearch.ingest.corpus import read_clips

QUESTIONS = EXAMPLES / "questions.jsonl"


def invoke(*args):
    from clipsearch.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, encoder) -> tuple[Path, str]:
    """A model tuned for one epoch on the example questions (small batches: the corpus is small)."""
    root = tmp_path_factory.mktemp("tune")
    out = root / "model"
    corpus = [arg for path in EXAMPLE_CORPUS for arg in ("--clips", path)]
    result = invoke("tune", *corpus, "--queries", QUESTIONS, "--out", out, "--batch-size", "8", "--epochs", "1",
                    "--work", root / "work")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_tune_writes_a_model_directory_with_its_ranking_weights_and_prints_before_and_after(tuned):
    out, output = tuned

    assert (out / "config.json").is_file() and (out / "modules.json").is_file()
    ranking = json.loads((out / "clipsearch_ranking.json").read_text())
    assert ranking["form"] == "weighted_mean"
    assert "before" in output and "after" in output
    assert "mrr@10" in output and "hit@1" in output
    assert "trained on" in output


def test_an_index_built_with_the_tuned_model_records_its_weights_and_answers(tuned, tmp_path):
    out, _ = tuned
    index = tmp_path / "index"

    assert invoke("index", "build", *EXAMPLE_CORPUS, "--out", index, "--model", out).exit_code == 0

    manifest = json.loads((index / "current" / "manifest.json").read_text())
    assert manifest["ranking"] == json.loads((out / "clipsearch_ranking.json").read_text())
    assert manifest["calibration"] is None  # until `clipsearch calibrate` fits one for this model
    result = invoke("ask", "my tyre keeps going flat, how do I repair the tube?", "--index", index, "--json")
    answer = json.loads(result.output)
    assert answer["answered"] is True and answer["threshold"] is None
    assert answer["results"][0]["id"] == "bike-01"


def test_tune_refuses_to_write_into_a_directory_that_is_not_empty(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    result = invoke("tune", "--clips", EXAMPLES / "clips.jsonl", "--out", out)

    assert result.exit_code == 1
    assert "not empty" in result.output
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_held_out_questions_are_about_videos_training_never_sees():
    clips = {clip.id: clip for clip in read_clips(EXAMPLE_CORPUS)}
    queries = read_queries([QUESTIONS])

    kept, held = split_by_video(queries, clips, 0.25, seed=3)

    assert kept and held and len(kept) + len(held) == len(queries)
    videos = {q.qid: {clips[i].video_id or i for i in q.relevant} for q in queries}
    assert not set().union(*(videos[q.qid] for q in kept)) & set().union(*(videos[q.qid] for q in held))
    # Each question is paired with the answer of the clip it names (optionally also with its question).
    first = kept[0]
    clip = clips[first.relevant[0]]
    assert training_pairs(kept, clips) == [(q.query, clips[i].answer) for q in kept for i in q.relevant]
    with_questions = training_pairs(kept, clips, with_questions=True)
    assert (first.query, clip.answer) in with_questions and (first.query, clip.question) in with_questions
