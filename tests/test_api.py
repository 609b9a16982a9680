"""The HTTP service's routes: real ``clipsearch serve`` processes (uvicorn subprocesses) on free ports, over httpx.

The servers (conftest): ``live_server`` (default settings, the example index, shared with the browser tests);
``admin_server`` (a copy of the example index, an admin token, no background check, tighter limits given by
env var and flag); ``watched_server`` (a directory that starts without an index and is checked every 0.3 s).
This file: the routes and filters; ``test_api_errors``: limits and the error shape; ``test_api_admin``: admin
reload and picking up rebuilds; ``test_api_operations``: metrics, logs, CORS, OpenAPI and settings.
"""

from __future__ import annotations

import json

import httpx
import pytest
from api_client import (
    CLIPS,
    HIT_FIELDS,
    OPTIONAL_FIELDS,
    QUESTIONS,
    ask,
    readyz,
    search,
    wait_until,
)
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.serve.schemas import AnswerBody

# admin_server and watched_server start beside live_server, so their models load while it loads its own.
pytestmark = pytest.mark.usefixtures("started_servers")


# --- endpoints ----------------------------------------------------------------------------------------------


def test_healthz(live_server):
    response = httpx.get(live_server.url + "/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_what_is_served(live_server, example_index):
    # the version a server starts with is hashed in full in the background, then `verified`
    ready = wait_until(lambda: (r := readyz(live_server).json()).get("verified") and r, message="the full check")

    assert ready == {
        "index": str(example_index),
        "version": (example_index / "current").readlink().name,
        "built_at": ready["built_at"],
        "model": "all-MiniLM-L6-v2",
        "clips": 20,
        "query_encoder": "onnx fp32",
        "verified": True,
        "last_reload_error": None,
    }
    assert ready["built_at"].endswith("+00:00")


@pytest.mark.parametrize("qid", ["ex-4", "ex-17", "ex-35"])
def test_search_finds_the_clip_a_paraphrase_asks_for(live_server, qid):
    question = QUESTIONS[qid]

    response = search(live_server, q=question["query"], k=3)

    assert response.status_code == 200
    answer = response.json()
    assert answer["query"] == question["query"]
    assert answer["results"][0]["id"] == question["relevant"][0]


def test_search_results_carry_the_documented_fields_best_first(live_server):
    answer = search(live_server, q="how hot should the water be when I make coffee?", k=5).json()

    assert {"query", "answered", "results"} <= set(answer)
    assert len(answer["results"]) == 5
    top = answer["results"][0]
    assert HIT_FIELDS <= set(top)
    assert (top["id"], top["source"], top["start"], top["end"]) == ("page-d4541dfa2058", "Bean Lab", 45, 73)
    assert (top["start_label"], top["end_label"], top["duration"]) == ("00:45", "01:13", 28)
    assert top["topic"] == "Home Coffee Brewing"
    assert "url" not in top and "video_id" not in top and top["link"] is None
    assert top["matched"] in {"question", "answer"}
    assert top["score"] > 0
    scores = [hit["score"] for hit in answer["results"]]
    assert scores == sorted(scores, reverse=True)


def test_each_result_links_to_its_moment(live_server):
    results = {hit["id"]: hit for hit in search(live_server, q="bike", k=20).json()["results"]}

    youtube, media = results["bike-04"], results["bike-06"]
    assert youtube["link"] == "https://www.youtube.com/watch?v=kQ7vR2mZt4X&t=240s"
    assert (youtube["start_label"], youtube["end_label"], youtube["duration"]) == ("04:00", "05:00", 60)
    assert media["link"] == "https://media.example.org/videos/adjustments-at-home.mp4#t=20,95"
    for field in OPTIONAL_FIELDS:
        assert youtube[field] == CLIPS["bike-04"][field]


@pytest.mark.parametrize("k", [1, 4, 12])
def test_search_returns_at_most_k_results(live_server, k):
    answer = search(live_server, q="bike chain", k=k).json()

    assert len(answer["results"]) == k


def test_search_defaults_to_ten_results(live_server):
    assert len(search(live_server, q="bike chain").json()["results"]) == 10


def test_every_field_returned_is_in_the_response_model(live_server):
    """The OpenAPI schema documents every key of the answer JSON (a key the core adds must be added there)."""
    schema = httpx.get(live_server.url + "/openapi.json").json()["components"]["schemas"]
    answer = search(live_server, q="bike", k=20).json()

    assert set(answer) <= set(schema["AnswerBody"]["properties"])
    assert AnswerBody.model_validate(answer).model_dump(exclude_unset=True) == answer  # what it documents, typed
    for hit in answer["results"]:
        assert set(hit) <= set(schema["Result"]["properties"])
    assert {key for hit in answer["results"] for key in hit} >= OPTIONAL_FIELDS


def test_search_trims_the_question(live_server):
    answer = search(live_server, q="   my chain squeaks \n", k=1).json()

    assert answer["query"] == "my chain squeaks"
    assert answer["results"][0]["id"] == "bike-04"


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
    assert [set(hit) for hit in answer["results"]] == [set(hit) for hit in expected["results"]]


def test_ask_answers_as_search_does(live_server):
    query = QUESTIONS["ex-12"]["query"]
    by_get = search(live_server, q=query, k=4, source="Spoke & Chain").json()

    by_post = ask(live_server, {"question": query, "k": 4, "filters": {"source": ["Spoke & Chain"]}})

    assert by_post.status_code == 200
    assert [h["id"] for h in by_post.json()["results"]] == [h["id"] for h in by_get["results"]]
    assert by_post.json()["query"] == by_get["query"]


def test_ask_needs_only_the_question(live_server):
    response = ask(live_server, {"question": "how fine should I grind coffee for a french press?"})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 10


def test_search_says_which_index_version_answered(live_server, example_index):
    response = search(live_server, q="bike chain", k=1)

    assert response.headers["x-index-version"] == (example_index / "current").readlink().name


def test_the_search_page_is_served(live_server):
    response = httpx.get(live_server.url + "/", params={"q": "my chain squeaks", "k": 3})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "bike-04" in response.text or "lubricate my chain" in response.text


def test_the_search_page_refuses_a_bad_query_in_html(live_server):
    for params in ({"q": "   "}, {"q": "bike", "k": "0"}, {"q": "x" * 513}):
        response = httpx.get(live_server.url + "/", params=params)

        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("text/html")


# --- filters ------------------------------------------------------------------------------------------------


def test_a_filter_matching_more_than_k_clips_returns_k_of_them(live_server):
    answer = search(live_server, q="how do I adjust my brakes?", k=3, source="Bean Lab").json()

    assert len(answer["results"]) == 3
    assert {hit["source"] for hit in answer["results"]} == {"Bean Lab"}


def test_a_filter_matching_fewer_than_k_clips_returns_all_of_them(live_server):
    answer = search(live_server, q="how do I adjust my brakes?", k=10, source="Bean Lab").json()

    assert len(answer["results"]) == 8
    assert {hit["source"] for hit in answer["results"]} == {"Bean Lab"}


def test_filters_repeat_and_combine(live_server):
    both = search(live_server, q="bike chain", k=50, source=["Bean Lab", "Workstand Weekly"]).json()
    video = search(live_server, q="coffee", k=50, video_id="kQ7vR2mZt4X").json()
    neither = search(live_server, q="bike chain", k=50, source="Bean Lab", video_id="kQ7vR2mZt4X").json()

    assert len(both["results"]) == 11
    assert {hit["source"] for hit in both["results"]} == {"Bean Lab", "Workstand Weekly"}
    assert sorted(hit["id"] for hit in video["results"]) == [
        "bike-01",
        "bike-02",
        "bike-03",
        "bike-04",
        "bike-05",
    ]
    assert (neither["answered"], neither["results"]) == (False, [])


def test_an_unknown_filter_value_gives_no_results(live_server):
    response = search(live_server, q="bike chain", source="No such channel")

    assert response.status_code == 200
    assert (response.json()["answered"], response.json()["results"]) == (False, [])


def test_ask_filters_by_video(live_server):
    response = ask(
        live_server, {"question": "bike chain", "k": 50, "filters": {"video_id": ["wheels-and-washing"]}}
    )

    assert sorted(hit["id"] for hit in response.json()["results"]) == ["bike-10", "bike-11", "bike-12"]


def test_group_by_video_and_collapse_are_options_of_both_routes(live_server):
    grouped = search(live_server, q="bike maintenance", k=5, group_by="video").json()
    asked = ask(live_server, {"question": "bike maintenance", "k": 5, "group_by": "video", "collapse": False}).json()

    for answer in (grouped, asked):
        videos = [hit["video_id"] for hit in answer["results"] if "video_id" in hit]
        assert len(videos) == len(set(videos)) == 3
    assert search(live_server, q="bike maintenance", collapse="false").status_code == 200


def test_an_unknown_group_by_names_the_field(live_server):
    response = search(live_server, q="bike chain", group_by="source")

    assert response.status_code == 422
    assert "group_by" in response.text
