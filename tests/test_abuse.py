"""Resource limits under abuse (issue 19): slow connections are closed after --request-timeout, and neither they
nor a burst of requests stops a well-behaved client from being answered (scripts/abuse_test.py against a live
server); the per-request deadline itself, on a real uvicorn running a small ASGI app."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
import uvicorn
from conftest import REPO, free_port

from clipsearch.serve.connection import deadline_protocol

TIMEOUT = 0.5


def test_slow_connections_are_closed_and_a_burst_is_shed_while_a_client_keeps_being_answered(example_index, tmp_path):
    shutil.copytree(example_index / "cache", tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "abuse_test.py"), "--slow", "300", "--trickle", "0.5", "--burst",
         "100", "--seconds", "3", "--work", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache"), "--",
         "--request-timeout", "1", "--max-in-flight", "8"],
        capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    slow = re.search(r"'opened': (\d+), 'closed_by_server': (\d+), 'longest_lived_s': ([\d.]+)", done.stdout)
    assert slow and slow[1] == slow[2] == "300" and float(slow[3]) < 2.5, done.stdout
    assert re.search(r"'503 overloaded': \d+", done.stdout) and re.search(r"'200': \d+", done.stdout), done.stdout
    assert re.search(r"well-behaved client: [1-9]\d* answered .*, 0 not answered", done.stdout), done.stdout


async def app(scope, receive, send):
    """Reads the whole body, takes ``?sleep`` seconds to answer, answers 200."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        more = message.get("more_body", False)
    if scope["query_string"].startswith(b"sleep="):
        import asyncio

        await asyncio.sleep(float(scope["query_string"][6:]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=deadline_protocol(TIMEOUT),
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(10)


def closed_after(sock: socket.socket, limit: float = 5) -> float:
    """Seconds until the server closes ``sock`` (reading and dropping what it sends)."""
    began = time.monotonic()
    sock.settimeout(limit)
    while sock.recv(1024):
        pass
    return time.monotonic() - began


def test_a_request_head_sent_too_slowly_closes_the_connection(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        for _ in range(3):  # each byte would reset uvicorn's own keep-alive timer
            time.sleep(TIMEOUT / 3)
            sock.sendall(b"X")
        assert TIMEOUT * 0.9 <= time.monotonic() - began + closed_after(sock) < TIMEOUT + 2


def test_a_body_sent_too_slowly_closes_the_connection(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        assert closed_after(sock) < TIMEOUT + 2


def test_a_connection_that_opens_and_sends_nothing_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert closed_after(sock) < TIMEOUT + 2


def test_requests_in_time_on_one_connection_and_a_slow_answer_are_not_cut(port):
    """The deadline runs per request, from the end of the previous response, and not while answering."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        for path in ["/", "/?sleep=" + str(TIMEOUT * 2), "/", "/"]:  # longer in all than the deadline
            time.sleep(TIMEOUT / 2)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                chunk = sock.recv(1024)
                assert chunk, f"the connection was closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK")
