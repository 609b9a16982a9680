"""Admin reload and rebuilds picked up while serving, on live servers (see ``test_api``)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from api_client import (
    DESCALE,
    STREAM,
    ask,
    assert_error,
    current_version,
    ensure_index,
    metrics,
    readyz,
    reload,
    search,
    versions_dir,
    wait_until,
)
from conftest import EXAMPLE_CORPUS, TOKEN

from clipsearch.index.build import build_index
from clipsearch.index.layout import switch_current

# admin_server and watched_server start beside live_server, so their models load while it loads its own.
pytestmark = pytest.mark.usefixtures("started_servers")


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
