"""The HTTP service: a real ``clipsearch serve`` (uvicorn in a subprocess) on a free port, queried with httpx."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from clipsearch.cli import app
from conftest import EXAMPLES, LiveServer, read_jsonl

QUESTIONS = {q["qid"]: q for q in read_jsonl(EXAMPLES / "questions.jsonl")}
HIT_FIELDS = {"id", "question", "answer", "source", "start", "end", "score", "matched", "scores", "highlight"}


def search(server: LiveServer, **params) -> httpx.Response:
    return httpx.get(server.url + "/search", params=params, timeout=30)


def test_healthz(live_server):
    response = httpx.get(live_server.url + "/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("qid", ["ex-4", "ex-17", "ex-35"])
def test_search_finds_the_clip_a_paraphrase_asks_for(live_server, qid):
    question = QUESTIONS[qid]

    response = search(live_server, q=question["query"], k=3)

    assert response.status_code == 200
    answer = response.json()
    assert answer["query"] == question["query"]
    assert answer["answered"] is True
    assert answer["results"][0]["id"] == question["relevant"][0]


def test_search_results_carry_the_documented_fields_best_first(live_server):
    answer = search(live_server, q="how hot should the water be when I make coffee?", k=5).json()

    assert set(answer) == {"query", "answered", "results"}
    assert len(answer["results"]) == 5
    top = answer["results"][0]
    assert HIT_FIELDS <= set(top)
    assert set(top) - HIT_FIELDS <= {"url", "video_id", "video_title", "topic"}
    assert (top["id"], top["source"], top["start"], top["end"]) == ("page-d4541dfa2058", "Bean Lab", 45, 73)
    assert top["matched"] in {"question", "answer"}
    assert top["score"] > 0
    scores = [hit["score"] for hit in answer["results"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("k", [1, 4, 12])
def test_search_returns_at_most_k_results(live_server, k):
    answer = search(live_server, q="bike chain", k=k).json()

    assert len(answer["results"]) == k


def test_search_defaults_to_ten_results(live_server):
    assert len(search(live_server, q="bike chain").json()["results"]) == 10


@pytest.mark.parametrize(
    "params, loc",
    [
        ({}, ["query", "q"]),
        ({"q": ""}, ["query", "q"]),
        ({"q": "bike chain", "k": 0}, ["query", "k"]),
        ({"q": "bike chain", "k": 51}, ["query", "k"]),
        ({"q": "bike chain", "k": "many"}, ["query", "k"]),
    ],
    ids=["q missing", "q empty", "k=0", "k=51", "k not a number"],
)
def test_search_rejects_bad_parameters_with_422(live_server, params, loc):
    response = search(live_server, **params)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


@pytest.mark.parametrize("qid, k", [("ex-9", 3), ("ex-31", 5)])
def test_search_answers_as_ask_json_does(live_server, example_index, qid, k):
    query = QUESTIONS[qid]["query"]
    cli = CliRunner().invoke(app, ["ask", query, "--index", str(example_index), "-k", str(k), "--json"])
    assert cli.exit_code == 0, cli.output
    expected = json.loads(cli.stdout)

    answer = search(live_server, q=query, k=k).json()

    assert (answer["query"], answer["answered"]) == (expected["query"], expected["answered"])
    assert [hit["id"] for hit in answer["results"]] == [hit["id"] for hit in expected["results"]]
    assert [hit["score"] for hit in answer["results"]] == pytest.approx(
        [hit["score"] for hit in expected["results"]], abs=1e-5
    )


def test_without_an_index_the_server_starts_and_search_answers_503(tmp_path):
    server = LiveServer(tmp_path / "nope")
    try:
        assert httpx.get(server.url + "/healthz").status_code == 200

        response = search(server, q="how do I fix a flat tyre?")

        assert response.status_code == 503
        [error] = response.json()["detail"]
        assert (error["loc"], error["type"]) == ([], "index_not_loaded")
        assert str(tmp_path / "nope") in error["msg"]
        assert "the directory does not exist" in error["msg"]
    finally:
        server.stop()


def test_openapi_documents_search(live_server):
    schema = httpx.get(live_server.url + "/openapi.json").json()

    assert {"/search", "/healthz"} <= set(schema["paths"])
    parameters = {p["name"]: p for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert parameters["q"]["required"] is True
    assert (parameters["k"]["schema"]["minimum"], parameters["k"]["schema"]["maximum"]) == (1, 50)
