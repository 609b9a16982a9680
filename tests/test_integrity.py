"""Every kind of damage to an index version is refused naming the file, by `clipsearch index verify` and by a
serving process, which keeps the version it serves (issue 19).

The index has every kind of file a version can hold: IVF fields with float16 vectors, a rank-only field, span
tables, BM25's arrays and JSON, clips and the manifest. Each damage is made on a copy of its good version.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLE_CORPUS, LiveServer
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.errors import ClipsearchError, IndexCorrupt
from clipsearch.index.build import build_index
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.integrity import FAST, FULL, MANIFEST_SHA256, sealed
from clipsearch.index.layout import current_version_path, switch_current

TOKEN = "integrity-admin-token"


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory, example_index) -> Path:
    """The example corpus with IVF question, answer and sentence fields (and their float16 vectors) and rank-only
    passages; embeddings and the ONNX export come from the example index's cache (read, not changed)."""
    out = tmp_path_factory.mktemp("integrity") / "index"
    build_index(EXAMPLE_CORPUS, out, cache_dir=example_index / "cache", flat_max_vectors=0, float_max_vectors=0,
                passage_search_max_vectors=0)
    return out


@pytest.fixture(scope="module")
def server(every_kind, example_index):
    """A live server of that index, reloading only when asked (POST /admin/reload answers what it refused)."""
    live = LiveServer(every_kind, "--reload-interval", "0", "--cache-dir", str(example_index / "cache"),
                      env={"CLIPSEARCH_ADMIN_TOKEN": TOKEN})
    yield live
    live.stop()


def flip(name: str, where: str | None = None, bit: int = 0x01):
    """Flip one bit of ``name``: at the first occurrence of ``where`` (so that the file still parses), else in its
    middle."""

    def damage(version: Path) -> str:
        file = version / name
        data = bytearray(file.read_bytes())
        at = data.index(where.encode()) if where else len(data) // 2
        data[at] ^= bit
        file.write_bytes(bytes(data))
        return name

    damage.__name__ = f"flip {name}"
    return damage


def truncate(name: str):
    def damage(version: Path) -> str:
        file = version / name
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        return name

    damage.__name__ = f"truncate {name}"
    return damage


def delete(name: str):
    def damage(version: Path) -> str:
        (version / name).unlink()
        return name

    damage.__name__ = f"delete {name}"
    return damage


def manifest_says(change, names: str):
    """A manifest whose own checksum is right but whose content disagrees with the files or the model (as a
    buggy writer would make it); the refusal names ``names``."""

    def damage(version: Path) -> str:
        file = version / "manifest.json"
        manifest = json.loads(file.read_text())
        change(manifest)
        file.write_text(json.dumps(sealed({k: v for k, v in manifest.items() if k != MANIFEST_SHA256}), indent=2))
        return names

    return damage


def _more_clips(m):
    m["clips"] += 1


def _more_questions(m):
    m["vectors_by_field"]["question"] += 1
    m["vectors"] += 1


def _more_passages(m):
    m["vectors_by_field"]["passage"] += 1
    m["vectors"] += 1


def _wider(m):
    m["dim"] = 512


def _other_model(m):
    m["model_fingerprint"] = "0" * 64


def _bad_total(m):
    m["vectors"] += 1


#: (id, damage, caught by the fast checks of every load too)
DAMAGE = [
    ("flip manifest.json", flip("manifest.json", '"built_at": "2'), True),  # a year: still valid JSON
    ("flip clips.jsonl", flip("clips.jsonl", "chain", 0x20), True),  # a letter's case: still a clip record
    ("flip questions.faiss", flip("questions.faiss"), True),
    ("flip answers.f16.npy", flip("answers.f16.npy"), False),
    ("flip passages.f16.npy (rank-only)", flip("passages.f16.npy"), False),
    ("flip sentences.npy (spans)", flip("sentences.npy"), False),
    ("flip bm25 postings", flip("bm25/data.csc.index.npy"), False),
    ("flip bm25 vocabulary", flip("bm25/vocab.index.json", "chain", 0x20), True),
    ("truncate sentences.faiss", truncate("sentences.faiss"), True),
    ("truncate clips.jsonl", truncate("clips.jsonl"), True),
    ("truncate questions.f16.npy", truncate("questions.f16.npy"), True),
    ("delete answers.faiss", delete("answers.faiss"), True),
    ("delete bm25 params", delete("bm25/params.index.json"), True),
    ("delete manifest.json", delete("manifest.json"), True),
    ("manifest edited by hand", lambda v: _edit_unsealed(v), True),
    ("manifest: more clips", manifest_says(_more_clips, "clips.jsonl"), True),
    ("manifest: more question vectors", manifest_says(_more_questions, "questions.faiss"), True),
    ("manifest: more passage vectors", manifest_says(_more_passages, "passages.f16.npy"), True),
    ("manifest: vectors not their sum", manifest_says(_bad_total, "manifest.json"), True),
    ("manifest: another dimension", manifest_says(_wider, "questions.faiss"), True),
    ("manifest: another model", manifest_says(_other_model, "manifest.json"), False),  # the model is not loaded
]


def _edit_unsealed(version: Path) -> str:
    file = version / "manifest.json"
    manifest = json.loads(file.read_text())
    manifest["ranking"]["weights"]["bm25"] = 5.0
    file.write_text(json.dumps(manifest, indent=2))
    return "manifest.json"


@pytest.fixture
def damaged(every_kind, request):
    """A copy of the good version under ``versions/zz-...``, damaged; removed afterwards."""
    good = current_version_path(every_kind)
    copy = every_kind / "versions" / f"zz-{re.sub(r'[^A-Za-z0-9.]+', '-', request.node.name)}"
    shutil.copytree(good, copy)
    yield copy
    shutil.rmtree(copy)


@pytest.mark.parametrize(("damage", "fast"), [pytest.param(d, f, id=i) for i, d, f in DAMAGE])
def test_index_verify_refuses_every_damage_naming_the_file(every_kind, damaged, damage, fast):
    named = damage(damaged)

    result = CliRunner().invoke(app, ["index", "verify", str(every_kind), "--version", damaged.name])

    assert result.exit_code == 1, result.output
    assert f"error: {damaged / named}" in result.output
    if fast:  # the checks every load makes catch it too; the others need every byte hashed
        with pytest.raises(ClipsearchError, match=f"^{re.escape(str(damaged / named))}"):
            ClipIndex.load_version(every_kind, damaged, FAST)


def test_index_verify_passes_a_good_version_and_every_version(every_kind):
    result = CliRunner().invoke(app, ["index", "verify", str(every_kind)])

    assert result.exit_code == 0, result.output
    version = current_version_path(every_kind).name
    files = len(json.loads((every_kind / "current" / "manifest.json").read_text())["files"])
    assert f"{every_kind} version {version} (current): ok, {files} files" in result.output
    assert "model all-MiniLM-L6-v2 (fingerprint, dim 384)" in result.output
    listed = CliRunner().invoke(app, ["index", "verify", str(every_kind), "--all", "--json"])
    assert [json.loads(line)["version"] for line in listed.output.splitlines()] == [version]


def test_index_verify_all_checks_every_version_directory_even_one_without_a_readable_manifest(every_kind, damaged):
    (damaged / "manifest.json").write_text("{")

    result = CliRunner().invoke(app, ["index", "verify", str(every_kind), "--all"])

    assert result.exit_code == 1
    assert f"error: {damaged / 'manifest.json'}: not valid JSON" in result.output


def test_a_fast_load_hashes_what_it_reads_and_leaves_the_mapped_arrays_to_a_full_check(every_kind, damaged):
    flip("answers.f16.npy")(damaged)

    ClipIndex.load_version(every_kind, damaged, FAST)  # sizes and shapes are right
    with pytest.raises(IndexCorrupt, match=f"^{re.escape(str(damaged / 'answers.f16.npy'))}: sha256 differs"):
        ClipIndex.load_version(every_kind, damaged, FULL)


@pytest.mark.parametrize("damage", [pytest.param(d, id=i) for i, d, _ in DAMAGE])
def test_a_serving_process_refuses_every_damage_and_keeps_its_version(server, every_kind, damaged, damage):
    good = current_version_path(every_kind).name
    named = damage(damaged)
    switch_current(every_kind, damaged.name)
    try:
        refused = httpx.post(server.url + "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert refused.status_code == 409, refused.text
        error = refused.json()["detail"][0]
        assert error["type"] == "reload_refused"
        assert f"{damaged / named}" in error["msg"] and f"still serving version {good}" in error["msg"]
        answer = httpx.get(server.url + "/search", params={"q": "my chain squeaks", "k": 1}, timeout=30)
        assert answer.status_code == 200 and answer.headers["x-index-version"] == good
        assert answer.json()["results"][0]["id"] == "bike-04"
    finally:
        switch_current(every_kind, good)
    assert httpx.post(server.url + "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=60).json() == {"version": good, "reloaded": False}


def test_an_operator_who_built_a_bad_corpus_lists_the_versions_and_rolls_back(tmp_path, example_index):
    shutil.copytree(example_index / "cache", tmp_path / "cache")
    root, options = tmp_path / "index", ["--cache-dir", str(tmp_path / "cache"), "--quiet"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"answer": "Only this clip made it into the export.", "start": 0, "end": 5}) + "\n")
    runner = CliRunner()
    assert runner.invoke(app, ["index", "build", *map(str, EXAMPLE_CORPUS), "--out", str(root), *options]).exit_code == 0
    good = current_version_path(root).name
    assert runner.invoke(app, ["index", "build", str(bad), "--out", str(root), *options]).exit_code == 0
    wrong = current_version_path(root).name

    listed = runner.invoke(app, ["index", "versions", str(root), "--json"])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["id"], r["clips"], r["model"], r["current"]) for r in rows] == [
        (good, 20, "all-MiniLM-L6-v2", False), (wrong, 1, "all-MiniLM-L6-v2", True)]
    assert all(r["built_at"].endswith("+00:00") for r in rows)
    text = runner.invoke(app, ["index", "versions", str(root)]).output.splitlines()
    assert text[1].startswith(f"* {wrong}  ") and "  1 clips  all-MiniLM-L6-v2" in text[1]

    rolled = runner.invoke(app, ["index", "rollback", str(root)])
    assert rolled.exit_code == 0 and rolled.output == f"{root}: version {good} is current (20 clips)\n"
    assert current_version_path(root).name == good
    assert runner.invoke(app, ["index", "verify", str(root)]).exit_code == 0
    unknown = runner.invoke(app, ["index", "rollback", str(root), "--to", "nope"])
    assert unknown.exit_code == 1 and f"no version 'nope'; the versions are {good}, {wrong}" in unknown.output
    assert runner.invoke(app, ["index", "rollback", str(root), "--to", wrong]).exit_code == 0
    assert current_version_path(root).name == wrong
