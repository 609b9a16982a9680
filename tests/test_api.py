"""The HTTP service: real ``clipsearch serve`` processes (uvicorn subprocesses) on free ports, over httpx.

Three servers: ``live_server`` (conftest, default settings, the example index, shared with the browser tests);
``admin_server`` (a copy of the example index, an admin token, no background check, tighter limits given by
env var and flag); ``watched_server`` (a directory that starts without an index and is checked every 0.3 s).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import DATA, EXAMPLE_CORPUS, EXAMPLES, LiveServer, read_jsonl
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.index.build import build_index
from clipsearch.index.layout import switch_current
from clipsearch.serve.schemas import AnswerBody
from clipsearch.settings import Settings, settings_table

QUESTIONS = {q["qid"]: q for q in read_jsonl(EXAMPLES / "questions.jsonl")}
STREAM = [
    q["query"] for q in read_jsonl(EXAMPLES / "questions.jsonl") + read_jsonl(DATA / "seed_paraphrases.jsonl")
]
CLIPS = {c["id"]: c for c in read_jsonl(EXAMPLES / "clips.jsonl")}
HIT_FIELDS = {
    "id",
    "question",
    "answer",
    "source",
    "start",
    "end",
    "duration",
    "start_label",
    "end_label",
    "link",
    "score",
    "matched",
    "scores",
    "highlight",
    "overlapping",
}
OPTIONAL_FIELDS = {"url", "video_id", "video_title", "topic"}
TOKEN = "s3cret-admin-token"
ADMIN_MAX_QUERY_CHARS = 40
ADMIN_MAX_IN_FLIGHT = 2
ALLOWED_ORIGIN = "https://clips.example.org"
DESCALE = {
    "id": "coffee-descale",
    "question": "How do I descale my espresso machine?",
    "answer": "Run a citric acid solution through the boiler and the group head, then flush it with two full "
    "tanks of fresh water so nothing sour is left behind. Hard water areas need this every month.",
    "start": 10,
    "end": 42,
    "source": "Bean Lab",
}


# --- servers and helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def started_servers(example_index, tmp_path_factory):
    """The two servers of this module, started before any test here waits for one (``live_server`` included):
    loading the model in parallel is one wait instead of three."""
    admin_dir = tmp_path_factory.mktemp("admin") / "index"
    shutil.copytree(example_index, admin_dir, symlinks=True)
    watched_dir = tmp_path_factory.mktemp("watched") / "index"
    started = {
        "admin": LiveServer(
            admin_dir,
            "--reload-interval",
            "0",
            "--max-in-flight",
            str(ADMIN_MAX_IN_FLIGHT),
            "--cors-origin",
            ALLOWED_ORIGIN,
            env={"CLIPSEARCH_ADMIN_TOKEN": TOKEN, "CLIPSEARCH_MAX_QUERY_CHARS": str(ADMIN_MAX_QUERY_CHARS)},
            wait=False,
        ),
        "watched": LiveServer(watched_dir, "--reload-interval", "0.3", wait=False),
    }
    started["admin"].index_dir = admin_dir
    started["watched"].index_dir = watched_dir
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def servers(started_servers):
    yield started_servers
    for server in started_servers.values():
        server.stop()


@pytest.fixture(scope="module")
def admin_server(servers) -> LiveServer:
    servers["admin"].wait_started()
    return servers["admin"]


@pytest.fixture(scope="module")
def watched_server(servers) -> LiveServer:
    servers["watched"].wait_started()
    return servers["watched"]


def search(server: LiveServer, **params) -> httpx.Response:
    return httpx.get(server.url + "/search", params=params, timeout=30)


def ask(server: LiveServer, body, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/ask", json=body, timeout=30, **kwargs)


def raw(server: LiveServer, target: str, **kwargs) -> httpx.Response:
    """A GET of ``target`` exactly as written (httpx keeps percent escapes of a URL string as they are)."""
    return httpx.get(server.url + target, timeout=30, **kwargs)


def reload(server: LiveServer, token: str | None = TOKEN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(server.url + "/admin/reload", headers=headers, timeout=60, **kwargs)


def readyz(server: LiveServer) -> httpx.Response:
    return httpx.get(server.url + "/readyz", timeout=30)


def metrics(server: LiveServer) -> dict:
    """{(sample name, sorted labels): value} of GET /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_until(check, timeout: float = 60, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{message} not reached in {timeout}s")


def assert_error(response: httpx.Response, status: int, type_: str, loc: list | None = None) -> dict:
    """The one error shape: {"detail": [{"loc": [...], "msg": "...", "type": "..."}]}, and nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"]
    assert isinstance(body["detail"], list) and body["detail"]
    for item in body["detail"]:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["loc"], list) and isinstance(item["type"], str)
        assert isinstance(item["msg"], str) and item["msg"]
    first = body["detail"][0]
    assert first["type"] == type_
    assert first["loc"] == (loc if loc is not None else [])
    return first


def versions_dir(server: LiveServer) -> Path:
    return server.index_dir / "versions"


def current_version(server: LiveServer) -> str:
    return (server.index_dir / "current").readlink().name


def ensure_index(server: LiveServer, example_index: Path) -> None:
    """The watched server's directory holds an index and the server answers from it."""
    if not (server.index_dir / "current").exists():
        shutil.copytree(example_index, server.index_dir, symlinks=True, dirs_exist_ok=True)
    wait_until(lambda: readyz(server).status_code == 200, message="readiness")


# --- endpoints ----------------------------------------------------------------------------------------------


def test_healthz(live_server):
    response = httpx.get(live_server.url + "/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_what_is_served(live_server, example_index):
    response = readyz(live_server)

    assert response.status_code == 200
    ready = response.json()
    assert ready == {
        "index": str(example_index),
        "version": (example_index / "current").readlink().name,
        "built_at": ready["built_at"],
        "model": "all-MiniLM-L6-v2",
        "clips": 20,
        "query_encoder": "onnx fp32",
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


# --- limits and the error shape -----------------------------------------------------------------------------

BODY = b'{"question": "bike chain"}'
FILTERS = "&" + "&".join(["source=Bean+Lab"] * 480)
FULL_QUERY_STRING = "q=" + "x" * (8192 - len("q=") - len(FILTERS)) + FILTERS  # exactly 8 KiB
assert len(FULL_QUERY_STRING) == 8192
JSON = {"content-type": "application/json"}


def chunks(size: int):
    """A body of ``size`` bytes sent chunked (no Content-Length): the JSON question padded with spaces."""
    yield BODY
    left = size - len(BODY)
    while left > 0:
        yield b" " * min(1024, left)
        left -= 1024


ERROR_CASES = {
    # name: (method, target, request options, status, type, loc)
    "q missing": ("GET", "/search", {}, 422, "missing", ["query", "q"]),
    "q empty": ("GET", "/search?q=", {}, 422, "string_too_short", ["query", "q"]),
    "q only spaces": ("GET", "/search?q=+++", {}, 422, "string_too_short", ["query", "q"]),
    "q 513 chars": ("GET", "/search?q=" + "x" * 513, {}, 422, "string_too_long", ["query", "q"]),
    "k=0": ("GET", "/search?q=bike&k=0", {}, 422, "greater_than_equal", ["query", "k"]),
    "k=51": ("GET", "/search?q=bike&k=51", {}, 422, "less_than_equal", ["query", "k"]),
    "k not a number": ("GET", "/search?q=bike&k=many", {}, 422, "int_parsing", ["query", "k"]),
    "unknown parameter": ("GET", "/search?q=bike&topic=x", {}, 422, "extra_forbidden", ["query", "topic"]),
    "query not UTF-8": ("GET", "/search?q=%FF%FE", {}, 400, "invalid_encoding", ["query", "q"]),
    "surrogate in query": ("GET", "/search?q=%ED%A0%80", {}, 400, "invalid_encoding", ["query", "q"]),
    "name not UTF-8": ("GET", "/search?q=bike&%C3=1", {}, 400, "invalid_encoding", ["query", "\ufffd"]),
    "query string 8 KiB + 1": ("GET", "/search?q=" + "x" * (8192 - 1), {}, 414, "query_too_long", []),
    "no such route": ("GET", "/nope", {}, 404, "not_found", []),
    "no admin token set": ("POST", "/admin/reload", {}, 404, "not_found", []),
    "wrong method": ("DELETE", "/search", {}, 405, "method_not_allowed", []),
    "GET /ask": ("GET", "/ask", {}, 405, "method_not_allowed", []),
    "question missing": ("POST", "/ask", {"json": {"k": 3}}, 422, "missing", ["body", "question"]),
    "question too long": (
        "POST",
        "/ask",
        {"json": {"question": "x" * 513}},
        422,
        "string_too_long",
        ["body", "question"],
    ),
    "k too large": (
        "POST",
        "/ask",
        {"json": {"question": "bike", "k": 51}},
        422,
        "less_than_equal",
        ["body", "k"],
    ),
    "unknown key": (
        "POST",
        "/ask",
        {"json": {"question": "bike", "limit": 3}},
        422,
        "extra_forbidden",
        ["body", "limit"],
    ),
    "unknown filter": (
        "POST",
        "/ask",
        {"json": {"question": "bike", "filters": {"topic": ["x"]}}},
        422,
        "extra_forbidden",
        ["body", "filters", "topic"],
    ),
    "filter not a list": (
        "POST",
        "/ask",
        {"json": {"question": "bike", "filters": {"source": "Bean Lab"}}},
        422,
        "list_type",
        ["body", "filters", "source"],
    ),
    "not JSON": (
        "POST",
        "/ask",
        {"content": b'{"question": ', "headers": JSON},
        422,
        "json_invalid",
        ["body", 13],
    ),
    "not an object": ("POST", "/ask", {"json": ["bike"]}, 422, "model_attributes_type", ["body"]),
    "lone surrogate": (
        "POST",
        "/ask",
        {"content": b'{"question": "\\ud800"}', "headers": JSON},
        422,
        "string_unicode",
        ["body", "question"],
    ),
    "body not UTF-8": (
        "POST",
        "/ask",
        {"content": b'{"question": "\xff"}', "headers": JSON},
        400,
        "invalid_encoding",
        ["body"],
    ),
    "body 16 KiB + 1": (
        "POST",
        "/ask",
        {"content": BODY + b" " * (16384 + 1 - len(BODY)), "headers": JSON},
        413,
        "body_too_large",
        [],
    ),
    "body 1 MiB": (
        "POST",
        "/ask",
        {"content": BODY + b" " * (1 << 20), "headers": JSON},
        413,
        "body_too_large",
        [],
    ),
    "chunked body 16 KiB + 1": (
        "POST",
        "/ask",
        {"content": "chunks", "headers": JSON},
        413,
        "body_too_large",
        [],
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_every_error_has_the_one_shape(live_server, case):
    method, target, options, status, type_, loc = ERROR_CASES[case]
    if options.get("content") == "chunks":
        options = {**options, "content": chunks(16384 + 1)}

    response = httpx.request(method, live_server.url + target, timeout=30, **options)

    assert_error(response, status, type_, loc)


def test_a_405_names_the_allowed_methods(live_server):
    response = httpx.delete(live_server.url + "/search")

    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    "target, body",
    [
        ("/search?q=" + "x" * 512, None),
        ("/search?q=" + "%20" * 100 + "x" * 512 + "%20" * 100, None),
        ("/search?" + FULL_QUERY_STRING, None),
        ("/ask", BODY + b" " * (16384 - len(BODY))),
        ("/ask", "chunks"),
    ],
    ids=[
        "q 512 chars",
        "q 512 chars plus spaces",
        "query string 8 KiB",
        "body 16 KiB",
        "chunked body 16 KiB",
    ],
)
def test_requests_at_the_limits_are_answered(live_server, target, body):
    if body is None:
        response = raw(live_server, target)
    else:
        content = chunks(16384) if body == "chunks" else body
        response = httpx.post(live_server.url + target, content=content, headers=JSON, timeout=30)

    assert response.status_code == 200, response.text


def test_bad_input_never_gets_a_5xx(live_server):
    """Odd but valid questions are answered, not crashed on."""
    for question in [
        "\x00",
        "🚲🔧" * 100,
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "\u202e\u200b",
        "?" * 512,
    ]:
        response = ask(live_server, {"question": question, "k": 50})
        assert response.status_code == 200, (question, response.text)
    for target in [
        "/search?q=%00",
        "/search?q=bike&k=1e3",
        "/search?q=bike&k=-1",
        "/search?q=bike&k=%F0%9F%9A%B2",
        "/search?q=bike&source",
        "/search?q=bike&q=chain",
        "/%2e%2e/etc/passwd",
        "/search/",
    ]:
        response = raw(live_server, target)
        assert response.status_code < 500, (target, response.text)
        if response.status_code >= 400:
            assert list(response.json()) == ["detail"]


def test_the_question_length_limit_is_a_setting(admin_server):
    ok = search(admin_server, q="x" * ADMIN_MAX_QUERY_CHARS, k=1)
    refused = search(admin_server, q="x" * (ADMIN_MAX_QUERY_CHARS + 1), k=1)

    assert ok.status_code == 200
    error = assert_error(refused, 422, "string_too_long", ["query", "q"])
    assert str(ADMIN_MAX_QUERY_CHARS) in error["msg"]


def _stalled_request(server: LiveServer) -> socket.socket:
    """A POST /ask whose body has not fully arrived: it holds a place in flight until finished."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /ask HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY[:10]
    )
    return sock


def test_beyond_max_in_flight_the_service_answers_503_overloaded(admin_server):
    stalled = [_stalled_request(admin_server) for _ in range(ADMIN_MAX_IN_FLIGHT)]
    try:
        response = wait_until(
            lambda: (r := search(admin_server, q="bike chain", k=1)).status_code == 503 and r,
            timeout=10,
            message="503 overloaded",
        )

        assert_error(response, 503, "overloaded")
        assert response.headers["retry-after"] == "1"
        assert httpx.get(admin_server.url + "/healthz").status_code == 200  # probes are always answered
        assert readyz(admin_server).status_code == 200
    finally:
        for sock in stalled:
            sock.sendall(BODY[10:])
        answers = [sock.recv(64) for sock in stalled]
        for sock in stalled:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
    assert search(admin_server, q="bike chain", k=1).status_code == 200


# --- admin --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer tökén".encode()},
    ],
    ids=["missing", "wrong", "longer", "other case", "basic", "no scheme", "empty", "not ascii"],
)
def test_admin_reload_without_the_right_token_is_401(admin_server, headers):
    response = httpx.post(admin_server.url + "/admin/reload", headers=headers)

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_admin_routes_do_not_exist_without_a_token(live_server):
    assert_error(reload(live_server), 404, "not_found")
    assert "/admin/reload" not in httpx.get(live_server.url + "/openapi.json").json()["paths"]


def test_admin_reload_answers_reloaded_false_when_nothing_changed(admin_server):
    response = reload(admin_server)

    assert response.status_code == 200
    assert response.json() == {"version": current_version(admin_server), "reloaded": False}


def test_admin_reload_swaps_in_a_new_version_and_refuses_a_broken_one(admin_server, tmp_path):
    """The admin server never checks on its own: only the call picks the new version up."""
    old = current_version(admin_server)
    extra = tmp_path / "descale.jsonl"
    extra.write_text(json.dumps(DESCALE) + "\n")
    new = build_index([*EXAMPLE_CORPUS, extra], admin_server.index_dir).index.version
    assert readyz(admin_server).json()["version"] == old

    response = reload(admin_server)

    assert response.json() == {"version": new, "reloaded": True}
    ready = readyz(admin_server).json()
    assert (ready["version"], ready["clips"], ready["last_reload_error"]) == (new, 21, None)
    top = search(admin_server, q="how do I descale my espresso machine?", k=1)
    assert top.json()["results"][0]["id"] == "coffee-descale"
    assert top.headers["x-index-version"] == new

    broken = versions_dir(admin_server) / "zz-broken"
    shutil.copytree(versions_dir(admin_server) / new, broken)
    (broken / "manifest.json").write_text("{")
    switch_current(admin_server.index_dir, broken.name)
    try:
        error = assert_error(reload(admin_server), 409, "reload_refused")
        assert "zz-broken" in error["msg"] and "not valid JSON" in error["msg"]
        assert readyz(admin_server).json()["version"] == new
        assert search(admin_server, q="bike chain", k=1).headers["x-index-version"] == new
    finally:
        switch_current(admin_server.index_dir, new)
        shutil.rmtree(broken)
    assert reload(admin_server).json() == {"version": new, "reloaded": False}
    assert readyz(admin_server).json()["last_reload_error"] is None


# --- picking up rebuilds: the watched server (in file order: the first test needs it without an index) ----


def test_without_an_index_the_server_starts_answers_503_and_becomes_ready_when_one_is_built(
    watched_server, example_index
):
    assert not (watched_server.index_dir / "current").exists(), (
        "this test must run first on the watched server"
    )
    assert httpx.get(watched_server.url + "/healthz").status_code == 200

    for response in (
        search(watched_server, q="how do I fix a flat tyre?"),
        readyz(watched_server),
        ask(watched_server, {"question": "flat tyre"}),
    ):
        error = assert_error(response, 503, "index_not_loaded")
        assert (
            str(watched_server.index_dir) in error["msg"] and "the directory does not exist" in error["msg"]
        )
    page = httpx.get(watched_server.url + "/", params={"q": "flat tyre"})
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert metrics(watched_server)[("clipsearch_index_loaded", ())] == 0

    shutil.copytree(example_index, watched_server.index_dir, symlinks=True)

    wait_until(lambda: readyz(watched_server).status_code == 200, message="readiness")
    assert search(watched_server, q="how do I fix a flat tyre?", k=1).json()["results"][0]["id"] == "bike-01"


def test_a_rebuild_is_picked_up_while_searches_run_and_none_fails(watched_server, example_index, tmp_path):
    ensure_index(watched_server, example_index)
    old = readyz(watched_server).json()["version"]
    extra = tmp_path / "descale.jsonl"
    extra.write_text(json.dumps(DESCALE) + "\n")
    failures: list = []
    answered_by: Counter = Counter()
    stop = threading.Event()

    def searches():
        with httpx.Client(base_url=watched_server.url, timeout=30) as client:
            i = 0
            while not stop.is_set():
                try:
                    response = client.get("/search", params={"q": STREAM[i % len(STREAM)], "k": 5})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    answered_by[response.headers["x-index-version"]] += 1
                i += 1

    stream = threading.Thread(target=searches)
    stream.start()
    try:
        wait_until(lambda: answered_by[old] >= 5, message="searches on the old version")
        new = build_index([*EXAMPLE_CORPUS, extra], watched_server.index_dir).index.version
        wait_until(lambda: readyz(watched_server).json()["version"] == new, timeout=30, message="the swap")
        wait_until(lambda: answered_by[new] >= 5, message="searches on the new version")
    finally:
        stop.set()
        stream.join()

    assert failures == []
    assert set(answered_by) == {old, new}
    assert search(watched_server, q="how do I descale my espresso machine?", k=1).json()["results"][0][
        "id"
    ] == ("coffee-descale")
    assert metrics(watched_server)[("clipsearch_index_reloads_total", ())] >= 1


def _flip_a_byte(version: Path) -> str:
    target = version / "answers.faiss"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return "answers.faiss: sha256 differs"


def _bad_manifest(version: Path) -> str:
    (version / "manifest.json").write_text('{"format_version": 1}')
    return "missing key(s)"


@pytest.mark.parametrize("damage", [_flip_a_byte, _bad_manifest], ids=["corrupt file", "bad manifest"])
def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(watched_server, example_index, damage):
    ensure_index(watched_server, example_index)
    good = current_version(watched_server)
    wait_until(lambda: readyz(watched_server).json()["version"] == good, message="the current version served")
    failures_before = metrics(watched_server)[("clipsearch_index_reload_failures_total", ())]
    broken = versions_dir(watched_server) / f"zz-broken-{damage.__name__}"
    shutil.copytree(versions_dir(watched_server) / good, broken)
    expected = damage(broken)

    switch_current(watched_server.index_dir, broken.name)
    try:
        ready = wait_until(
            lambda: (r := readyz(watched_server).json()).get("last_reload_error") and r,
            timeout=10,
            message="the refusal",
        )
        assert ready["version"] == good
        assert broken.name in ready["last_reload_error"] and expected in ready["last_reload_error"]
        response = search(watched_server, q="bike chain", k=3)
        assert response.status_code == 200 and response.headers["x-index-version"] == good
        time.sleep(1)  # three more checks: a refused version is not retried (nor counted) again and again
        seen = metrics(watched_server)
        assert seen[("clipsearch_index_reload_failures_total", ())] == failures_before + 1
        assert seen[("clipsearch_index_reload_error", ())] == 1
        assert seen[("clipsearch_index_info", (("model", "all-MiniLM-L6-v2"), ("version", good)))] == 1
    finally:
        switch_current(watched_server.index_dir, good)
    wait_until(
        lambda: readyz(watched_server).json()["last_reload_error"] is None, timeout=10, message="recovery"
    )
    assert metrics(watched_server)[("clipsearch_index_reload_error", ())] == 0
    shutil.rmtree(broken)


# --- metrics, logs, CORS, OpenAPI ---------------------------------------------------------------------------


def test_metrics_count_requests_answers_and_describe_the_index(live_server):
    search(live_server, q="my chain squeaks", k=3)
    search(live_server, q="bike chain", source="No such channel")
    search(live_server, q="bike", k=0)

    seen = metrics(live_server)

    def requests(status: str) -> float:
        return seen[
            ("clipsearch_http_requests_total", (("method", "GET"), ("route", "/search"), ("status", status)))
        ]

    assert requests("200") >= 2 and requests("422") >= 1
    assert seen[("clipsearch_http_request_duration_seconds_count", (("route", "/search"),))] >= 3
    assert seen[("clipsearch_answers_total", (("answered", "true"),))] >= 1
    assert seen[("clipsearch_answers_total", (("answered", "false"),))] >= 1
    assert seen[("clipsearch_index_clips", ())] == 20
    assert seen[("clipsearch_index_loaded", ())] == 1
    assert 0 < seen[("clipsearch_index_age_seconds", ())] < 24 * 3600
    assert seen[("clipsearch_index_reloads_total", ())] == 0
    assert seen[("clipsearch_index_reload_failures_total", ())] == 0
    assert seen[("clipsearch_index_reload_error", ())] == 0


def test_metrics_label_unmatched_paths_by_one_name(live_server):
    httpx.get(live_server.url + "/no/such/path/3f9a")

    text = httpx.get(live_server.url + "/metrics").text

    assert "3f9a" not in text
    assert 'route="(unmatched)"' in text


def test_every_request_gets_one_access_log_line_without_the_question(live_server):
    search(live_server, q="access-log-canary question", k=1)
    httpx.get(live_server.url + "/nope%0Aforged")

    wait_until(lambda: 'path="/nope\\nforged"' in live_server.output(), message="the access log line")
    log = live_server.output()

    assert 'method=GET path="/search" status=200 ms=' in log
    assert 'method=GET path="/nope\\nforged" status=404 ms=' in log
    assert "access-log-canary" not in log
    assert '"GET /search' not in log  # uvicorn's own access log is off: one line per request


def test_cors_allows_only_the_configured_origins(admin_server, live_server):
    allowed = httpx.get(admin_server.url + "/healthz", headers={"Origin": ALLOWED_ORIGIN})
    other = httpx.get(admin_server.url + "/healthz", headers={"Origin": "https://elsewhere.example"})
    preflight = httpx.options(
        admin_server.url + "/ask",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    default = httpx.get(live_server.url + "/healthz", headers={"Origin": ALLOWED_ORIGIN})

    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in default.headers


def test_openapi_documents_every_endpoint_and_model(live_server, admin_server):
    schema = httpx.get(live_server.url + "/openapi.json").json()

    assert {"/", "/search", "/ask", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    parameters = {p["name"]: p for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert parameters["q"]["required"] is True
    assert parameters["q"]["schema"]["maxLength"] == 512
    assert (parameters["k"]["schema"]["minimum"], parameters["k"]["schema"]["maximum"]) == (1, 50)
    assert parameters["source"]["schema"]["type"] == "array"
    components = schema["components"]["schemas"]
    result = components["Result"]["properties"]
    assert HIT_FIELDS | OPTIONAL_FIELDS <= set(result)
    ask_schema = components["AskRequest"]
    assert ask_schema["additionalProperties"] is False and ask_schema["required"] == ["question"]
    assert components["Filters"]["additionalProperties"] is False
    assert {"ErrorBody", "Readiness", "Health", "AnswerBody"} <= set(components)
    for path in ("/search", "/ask"):
        responses = next(iter(schema["paths"][path].values()))["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AnswerBody"
        }
        assert responses["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    admin = httpx.get(admin_server.url + "/openapi.json").json()
    assert "/admin/reload" in admin["paths"]
    assert {"ReloadBody"} <= set(admin["components"]["schemas"])


# --- settings -----------------------------------------------------------------------------------------------

BUILD_ONLY = {"keep_versions", "flat_max_vectors", "float_max_vectors", "span_search_max_vectors",
              "passage_search_max_vectors", "corpus_encoder"}


def test_serve_help_lists_every_serving_setting_with_its_env_var():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    missing = [
        env for name, env, _, _ in settings_table() if name not in BUILD_ONLY and env not in result.output
    ]
    assert missing == []


def test_settings_read_the_environment_and_check_their_values(monkeypatch):
    monkeypatch.setenv("CLIPSEARCH_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("CLIPSEARCH_ADMIN_TOKEN", "")
    monkeypatch.setenv("CLIPSEARCH_RELOAD_INTERVAL", "0.5")

    settings = Settings()

    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.admin_token is None  # empty means none, never "the empty token opens the door"
    assert settings.reload_interval == 0.5
    assert "s3cret" not in repr(Settings(admin_token="s3cret"))
    with pytest.raises(ValueError, match="default_k"):
        Settings(default_k=20, max_k=10)


def test_serve_refuses_a_bad_setting_with_exit_status_2():
    result = CliRunner().invoke(app, ["serve", "--port", "70000"])

    assert result.exit_code == 2
    assert "port" in result.output
