"""What the HTTP tests share: the example's questions and clips, calls of the routes, and the one error shape."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
from conftest import (
    DATA,
    EXAMPLES,
    TOKEN,
    LiveServer,
    read_jsonl,
)
from prometheus_client.parser import text_string_to_metric_families

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
DESCALE = {
    "id": "coffee-descale",
    "question": "How do I descale my espresso machine?",
    "answer": "Run a citric acid solution through the boiler and the group head, then flush it with two full "
    "tanks of fresh water so nothing sour is left behind. Hard water areas need this every month.",
    "start": 10,
    "end": 42,
    "source": "Bean Lab",
}


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
