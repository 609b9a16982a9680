"""The HTTP service's limits and its one error shape, on live servers (see ``test_api``)."""

from __future__ import annotations

import socket

import httpx
import pytest
from api_client import (
    ask,
    assert_error,
    raw,
    readyz,
    search,
    wait_until,
)
from conftest import ADMIN_MAX_IN_FLIGHT, ADMIN_MAX_QUERY_CHARS, LiveServer

# admin_server and watched_server start beside live_server, so their models load while it loads its own.
pytestmark = pytest.mark.usefixtures("started_servers")


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
