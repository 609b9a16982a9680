"""The Milvus server path: the same client with a URI, against a real ``milvus-lite server`` on 127.0.0.1.

The service and the builds are separate processes sharing one Milvus, as they would share a Milvus standalone or
cluster: a rebuild in another process while serving, the server going away (503 with the reason, never a hang or a
500) and coming back (answers again, with no restart of the service).
"""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest
from conftest import EXAMPLE_CORPUS, EXAMPLES, REPO, LiveServer, free_port

from clipsearch import build_index

sys.path.insert(0, str(REPO / "scripts"))
from perf.milvus_server import LocalMilvus  # noqa: E402


@pytest.fixture
def milvus(tmp_path):
    server = LocalMilvus(tmp_path / "milvus-data")
    yield server
    if server.process.poll() is None:
        server.stop()


def search(server: LiveServer, q: str = "how do I fix a flat tyre?") -> httpx.Response:
    return httpx.get(server.url + "/search", params={"q": q, "k": 3}, timeout=30)


def test_a_service_on_a_milvus_server_survives_a_rebuild_an_outage_and_a_recovery(milvus, tmp_path, encoder):
    out = tmp_path / "index"
    build_index([EXAMPLES / "clips.jsonl"], out, backend="milvus", milvus_uri=milvus.uri)
    manifest = json.loads((out / "current" / "manifest.json").read_text())
    assert manifest["milvus"]["uri"] == milvus.uri and manifest["milvus"]["token_env"] is None
    server = LiveServer(out, "--reload-interval", "0.5")
    try:
        first = search(server)
        assert first.status_code == 200 and first.json()["results"][0]["id"] == "bike-01"
        # a rebuild in this process, while the service (another process) serves from the same Milvus
        rebuilt = build_index(EXAMPLE_CORPUS, out, backend="milvus", milvus_uri=milvus.uri)
        deadline = time.monotonic() + 30
        while search(server).headers.get("X-Index-Version") != rebuilt.index.version:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.3)
        milvus.stop()
        down = search(server)
        assert down.status_code == 503, down.text
        assert down.json()["detail"][0]["type"] == "index_unavailable"
        assert milvus.uri in down.json()["detail"][0]["msg"]
        back = LocalMilvus(milvus.data, milvus.port)
        try:
            deadline = time.monotonic() + 60
            while (again := search(server)).status_code != 200:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.5)
            assert again.json()["results"][0]["id"] == "bike-01"
        finally:
            back.stop()
    finally:
        server.stop()


def test_a_build_against_an_unreachable_milvus_fails_clearly_and_keeps_the_served_version(tmp_path, example_index):
    from typer.testing import CliRunner

    from clipsearch.cli import app

    out = tmp_path / "index"
    result = CliRunner().invoke(app, [
        "index", "build", *map(str, EXAMPLE_CORPUS), "--out", str(out), "--backend", "milvus",
        "--milvus-uri", f"http://127.0.0.1:{free_port()}", "-q",
    ])
    assert result.exit_code == 1
    assert "Milvus at http://127.0.0.1:" in result.output and "cannot be reached" in result.output
    assert not (out / "current").exists()
