"""The served index: loading, swapping in new versions beside the old, refusing broken ones, and its metrics.

In-process with the real model and real index directories (copies of the example index, or new builds).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import EXAMPLE_CORPUS
from prometheus_client.parser import text_string_to_metric_families

from clipsearch.encode.models import resolve_model
from clipsearch.index.build import build_index
from clipsearch.index.layout import switch_current
from clipsearch.serve.prometheus import Metrics
from clipsearch.serve.service import IndexNotLoaded, ReloadRefused, Service

DESCALE = {
    "id": "coffee-descale",
    "question": "How do I descale my espresso machine?",
    "answer": "Run a citric acid solution through the boiler, then flush it with two tanks of fresh water.",
    "start": 10,
    "end": 42,
    "source": "Bean Lab",
}


@pytest.fixture
def root(example_index, tmp_path) -> Path:
    """A copy of the example index this test may change."""
    copy = tmp_path / "index"
    shutil.copytree(example_index, copy, symlinks=True)
    return copy


@pytest.fixture
def service(root):
    service = Service(root)
    service.reload()
    yield service
    service.close()


def current(root: Path) -> str:
    return (root / "current").readlink().name


def rebuild(
    root: Path, tmp_path: Path, model: str | Path | None = None, only_the_new_clip: bool = False
) -> str:
    """A new version of ``root`` with one more clip (or only that clip); returns its id."""
    extra = tmp_path / "descale.jsonl"
    extra.write_text(json.dumps(DESCALE) + "\n")
    sources = [extra] if only_the_new_clip else [*EXAMPLE_CORPUS, extra]
    return build_index(sources, root, model=model).index.version


def damaged_copy(root: Path, name: str) -> Path:
    """A copy of the current version with one byte of its answer vectors flipped (same size, other sha256)."""
    version = root / "versions" / name
    shutil.copytree(root / "versions" / current(root), version)
    target = version / "answers.faiss"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return version


def samples(metrics: Metrics) -> dict:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_first_reload_loads_the_current_version(root):
    service = Service(root)
    with pytest.raises(IndexNotLoaded, match="not loaded yet"):
        _ = service.searcher

    outcome = service.reload()

    assert (outcome.version, outcome.reloaded) == (current(root), True)
    deadline = time.monotonic() + 10  # the first version is hashed in full in the background
    while not service.status()["verified"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.status() == {
        "index": str(root),
        "version": current(root),
        "built_at": service.searcher.index.manifest["built_at"],
        "model": "all-MiniLM-L6-v2",
        "clips": 20,
        "query_encoder": "onnx fp32",
        "verified": True,
        "last_reload_error": None,
    }
    assert service.reloads == 0  # loading the first version is not a reload


def test_reload_without_a_new_version_changes_nothing(service, root):
    searcher = service.searcher

    outcome = service.reload()

    assert (outcome.version, outcome.reloaded) == (current(root), False)
    assert service.searcher is searcher


def test_a_new_version_loads_beside_the_old_which_keeps_answering(service, root, tmp_path):
    old = service.searcher
    new_version = rebuild(root, tmp_path)

    outcome = service.reload()

    assert (outcome.version, outcome.reloaded) == (new_version, True)
    assert service.searcher is not old
    assert service.searcher.encoder is old.encoder  # same model: not loaded again
    assert (
        service.searcher.search("how do I descale my espresso machine?", k=1).results[0].clip.id
        == "coffee-descale"
    )
    # A request that took the old searcher before the swap finishes on it, undisturbed.
    assert old.search("how do I descale my espresso machine?", k=1).results[0].clip.id != "coffee-descale"
    assert (service.reloads, service.failed_reloads, service.status()["clips"]) == (1, 0, 21)


def test_a_corrupt_version_is_refused_once_and_the_old_one_keeps_serving(service, root):
    good = current(root)
    searcher = service.searcher
    switch_current(root, damaged_copy(root, "zz-corrupt").name)

    with pytest.raises(ReloadRefused, match="zz-corrupt.*answers.faiss: sha256 differs"):
        service.reload()

    assert service.searcher is searcher
    assert service.status()["version"] == good
    assert "still serving version " + good in service.status()["last_reload_error"]
    assert service.failed_reloads == 1
    # The background check does not retry (nor count) the same refused version; an operator's reload does.
    with pytest.raises(ReloadRefused):
        service.reload()
    assert service.failed_reloads == 1
    with pytest.raises(ReloadRefused):
        service.reload(retry_refused=True)
    assert service.failed_reloads == 2

    switch_current(root, good)

    assert service.reload().reloaded is False
    assert service.error is None


def flip_spans(version: Path) -> None:
    """Flip a byte of the version's sentence span table: a memory-mapped file, which only a full check hashes."""
    target = version / "sentences.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))


def test_a_new_version_is_hashed_in_full_before_it_is_swapped_in(service, root):
    good = current(root)
    damaged = root / "versions" / "zz-spans"
    shutil.copytree(root / "versions" / good, damaged)
    flip_spans(damaged)
    switch_current(root, damaged.name)

    with pytest.raises(ReloadRefused, match=r"zz-spans/sentences\.npy: sha256 differs"):
        service.reload()

    assert service.status()["version"] == good


def test_the_first_version_serves_after_the_fast_checks_and_is_withdrawn_if_the_full_check_fails(root):
    flip_spans(root / "versions" / current(root))
    service = Service(root)

    assert service.reload().reloaded  # the fast checks pass: it serves at once
    deadline = time.monotonic() + 30
    while service.error is None and time.monotonic() < deadline:
        time.sleep(0.01)

    assert "withdrawn" in service.error and "sentences.npy: sha256 differs" in service.error
    with pytest.raises(IndexNotLoaded, match="sentences.npy: sha256 differs"):
        _ = service.searcher
    assert service.failed_reloads == 1
    with pytest.raises(ReloadRefused):  # not retried by the background check
        service.reload()


def test_a_vanished_index_keeps_the_loaded_version_serving(service, root):
    good = current(root)
    os.remove(root / "current")

    with pytest.raises(ReloadRefused, match="current is missing"):
        service.reload()

    assert service.status()["version"] == good
    with pytest.raises(ReloadRefused):
        service.reload()
    assert service.failed_reloads == 1


def test_without_an_index_nothing_is_loaded_and_the_reason_is_given(tmp_path):
    service = Service(tmp_path / "nope")

    with pytest.raises(IndexNotLoaded, match="the directory does not exist"):
        service.reload()

    with pytest.raises(IndexNotLoaded, match=str(tmp_path / "nope")):
        service.status()
    assert service.failed_reloads == 0


def test_the_watcher_swaps_in_a_new_version_within_its_interval(service, root, tmp_path):
    new_version = rebuild(root, tmp_path)
    service.watch(0.05)

    deadline = time.monotonic() + 30
    while service.searcher.index.version != new_version and time.monotonic() < deadline:
        time.sleep(0.02)

    assert service.searcher.index.version == new_version
    service.close()
    assert service._thread is None


def test_a_version_built_with_another_model_loads_that_model(service, root, tmp_path):
    """The new version's manifest names another model (here: a copy of the packaged one with one more file, so
    another fingerprint): it is loaded beside the old one."""
    other = tmp_path / "other-model"
    shutil.copytree(resolve_model(None).path, other)
    (other / "NOTICE.txt").write_text("a different model directory\n")
    old = service.searcher
    new_version = rebuild(root, tmp_path, model=other, only_the_new_clip=True)  # few texts to encode

    assert service.reload().reloaded is True

    new = service.searcher
    assert new.index.version == new_version
    assert new.encoder is not old.encoder
    assert new.encoder.fingerprint == new.index.manifest["model_fingerprint"] != old.encoder.fingerprint
    assert new.search("how do I descale my espresso machine?", k=1).results[0].clip.id == "coffee-descale"

    # A service pinned to the packaged model refuses that version.
    pinned = Service(root, model="all-MiniLM-L6-v2")
    with pytest.raises(ReloadRefused, match="is not the model the index"):
        pinned.reload()


def test_metrics_describe_the_service_and_belong_to_one_app(service, root):
    metrics, other = Metrics(service), Metrics(service)
    metrics.observe_request("/search", "GET", 200, 0.012)
    metrics.observe_answer(True)
    metrics.observe_answer(False)

    seen = samples(metrics)

    assert (
        seen[("clipsearch_http_requests_total", (("method", "GET"), ("route", "/search"), ("status", "200")))]
        == 1
    )
    assert (
        seen[("clipsearch_http_request_duration_seconds_bucket", (("le", "0.025"), ("route", "/search")))]
        == 1
    )
    assert seen[("clipsearch_answers_total", (("answered", "true"),))] == 1
    assert seen[("clipsearch_answers_total", (("answered", "false"),))] == 1
    assert seen[("clipsearch_index_clips", ())] == 20
    assert seen[("clipsearch_index_loaded", ())] == 1
    assert seen[("clipsearch_index_info", (("model", "all-MiniLM-L6-v2"), ("version", current(root))))] == 1
    assert (
        "clipsearch_http_requests_total",
        (("method", "GET"), ("route", "/search"), ("status", "200")),
    ) not in (samples(other))


def test_a_server_searches_with_one_torch_and_one_blas_thread_per_request():
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from clipsearch.search.threads import one_thread_per_search

    torch_threads = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores this test process's BLAS threads on the way out
        try:
            one_thread_per_search()
            assert torch.get_num_threads() == 1
            blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
            assert blas and set(blas) == {1}
        finally:
            torch.set_num_threads(torch_threads)
