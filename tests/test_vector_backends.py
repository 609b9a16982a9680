"""One contract, two vector backends: FAISS files and a real Milvus Lite collection behave the same to search.

build -> reopen -> search each field -> filter -> rebuild -> rollback, then what only Milvus does: the manifest
names the collection (never a secret), the alias follows the current version, a dead build's collection is cleaned
up, and clips are upserted and deleted in place.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLE_CORPUS, EXAMPLES, read_jsonl

from clipsearch import Searcher, build_index
from clipsearch.errors import ClipsearchError, IndexCorrupt
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.milvus_store import connect, resolve_uri
from clipsearch.index.upsert import upsert_clips
from clipsearch.index.versions import list_versions, rollback

BACKENDS = ("faiss", "milvus")
CLIPS = read_jsonl(EXAMPLES / "clips.jsonl")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, encoder) -> dict:
    """The example index on each backend, built twice (the first version from the clips file alone)."""
    made = {}
    for backend in BACKENDS:
        out = tmp_path_factory.mktemp(backend) / "index"
        first = build_index([EXAMPLES / "clips.jsonl"], out, backend=backend)
        second = build_index(EXAMPLE_CORPUS, out, backend=backend)
        made[backend] = (backend, out, first.index.version, second.index.version)
    return made


@pytest.fixture(params=BACKENDS)
def built(request, indexes):
    return indexes[request.param]


def test_a_reopened_index_names_its_backend_and_finds_each_clip_by_its_own_question(built, encoder):
    backend, out, _, _ = built
    index = ClipIndex.open(out)
    assert index.manifest["backend"] == backend == index.store.backend
    rows = np.arange(len(CLIPS))
    vectors = encoder.encode([clip["question"] for clip in CLIPS])
    scores, found = index.search("question", vectors, k=1)
    assert [index.clips[int(r)].id for r in found[:, 0]] == [clip["id"] for clip in CLIPS]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)
    assert np.allclose(index.store.cosines("question", rows[:3], vectors[0]), vectors[:3] @ vectors[0], atol=1e-4)


def test_every_span_field_finds_the_piece_it_was_cut_from(built, encoder):
    _, out, _, _ = built
    index = ClipIndex.open(out)
    for field in index.store.span_fields:
        table = index.store.span_table(field)
        clip_row, start, end = (int(x) for x in table[5])
        vector = encoder.encode([index.clips[clip_row].answer[start:end]])
        _, found = index.search(field, vector, k=1)
        assert int(table[found[0, 0], 0]) == clip_row, field
        best, at = index.store.best_spans(field, np.array([clip_row]), vector[0])
        assert best[0] == pytest.approx(1.0, abs=1e-4) and int(table[at[0], 0]) == clip_row


def test_both_backends_answer_the_same_clips_with_the_same_scores(indexes):
    answers = {}
    for backend, (_, out, _, _) in indexes.items():
        searcher = Searcher.open(out)
        answer = searcher.search("how do I fix a flat tyre?", k=5)
        filtered = searcher.search("how do I fix a flat tyre?", k=5, filters={"source": ["Bean Lab"]})
        assert {hit.clip.source for hit in filtered.results} == {"Bean Lab"}
        answers[backend] = [[(h.clip.id, round(h.score, 4), h.highlight) for h in a.results] for a in (answer, filtered)]
    assert answers["faiss"] == answers["milvus"]
    assert len(answers["faiss"][0]) == 5


def test_a_rollback_makes_the_previous_version_current_and_versions_lists_both(built):
    _, out, first, second = built
    assert [(v.id, v.current) for v in list_versions(out)] == [(first, False), (second, True)]
    assert rollback(out).version == first
    assert len(Searcher.open(out).index) == len(CLIPS)
    assert rollback(out, to=second).version == second
    with pytest.raises(ClipsearchError, match="no version 'nope'"):
        rollback(out, to="nope")


@pytest.fixture
def milvus_index(tmp_path, encoder):
    out = tmp_path / "index"
    build_index(EXAMPLE_CORPUS, out, backend="milvus")
    return out


def test_the_manifest_names_the_collection_and_the_alias_follows_the_current_version(milvus_index):
    index = ClipIndex.open(milvus_index)
    milvus = index.manifest["milvus"]
    assert milvus["uri"] == "milvus.db" and milvus["alias"] == "clipsearch_index"
    client = connect(resolve_uri(milvus["uri"], milvus_index))
    assert client.describe_alias("clipsearch_index")["collection_name"] == milvus["collection"]
    again = build_index(EXAMPLE_CORPUS, milvus_index, backend="milvus", keep_versions=1)
    assert client.describe_alias("clipsearch_index")["collection_name"] == again.index.manifest["milvus"]["collection"]
    # keep_versions=1: the first version and its collection are gone
    assert [n for n in client.list_collections() if n.startswith("clipsearch_index_v")] == [
        again.index.manifest["milvus"]["collection"]
    ]


def test_a_collection_left_by_a_dead_build_is_dropped_by_the_next_build(milvus_index):
    client = connect(resolve_uri("milvus.db", milvus_index))
    client.create_collection("clipsearch_index_v20200101T000000000000Z_dead00", dimension=4)
    build_index(EXAMPLE_CORPUS, milvus_index, backend="milvus")
    assert "clipsearch_index_v20200101T000000000000Z_dead00" not in client.list_collections()


def test_a_collection_that_disagrees_with_the_manifest_is_refused_naming_both_sides(milvus_index):
    index = ClipIndex.open(milvus_index)
    client = connect(resolve_uri("milvus.db", milvus_index))
    client.alter_collection_properties(index.manifest["milvus"]["collection"], {"clipsearch.dim": "768"})
    with pytest.raises(IndexCorrupt, match=r"dim '768', the manifest.json of version .* says '384'"):
        ClipIndex.open(milvus_index)


def test_upsert_adds_and_replaces_clips_and_delete_removes_them_in_place(milvus_index, tmp_path):
    changed = {**CLIPS[0], "answer": "Kettle descaling: fill it with equal parts vinegar and water, then boil."}
    new = {**CLIPS[1], "id": "tea-1", "question": "How hot should water be for green tea?",
           "answer": "Around 80 degrees Celsius; boiling water makes green tea bitter."}
    changes = tmp_path / "changes.jsonl"
    changes.write_text("".join(json.dumps(c) + "\n" for c in (changed, new, CLIPS[2])), encoding="utf-8")
    result = upsert_clips(milvus_index, [changes])
    assert (result.added, result.changed, result.deleted) == (1, 1, 0)
    searcher = Searcher.open(milvus_index)
    assert searcher.search("green tea water temperature", k=1).results[0].clip.id == "tea-1"
    assert searcher.search("descaling vinegar", k=1).results[0].clip.id == CLIPS[0]["id"]  # BM25 and vectors
    with pytest.raises(IndexCorrupt, match="an upsert or delete changed the collection"):
        rollback(milvus_index)
    with pytest.raises(ClipsearchError, match="no clip with id 'nope'; nothing was changed"):
        upsert_clips(milvus_index, delete_ids=["tea-1", "nope"])
    deleted = upsert_clips(milvus_index, delete_ids=["tea-1"])
    total = len(ClipIndex.open(milvus_index).clips)
    assert (deleted.deleted, len(deleted.index), len(result.index)) == (1, total, total + 1)
    ids = {hit.clip.id for hit in Searcher.open(milvus_index).search("green tea water temperature", k=50).results}
    assert "tea-1" not in ids


def test_a_faiss_index_answers_that_it_is_rebuilt_not_upserted(example_index):
    with pytest.raises(ClipsearchError, match="is a FAISS index: FAISS versions are rebuilt"):
        upsert_clips(example_index, delete_ids=[CLIPS[0]["id"]])


def test_the_upsert_and_delete_commands_change_a_milvus_index_and_refuse_a_faiss_one(milvus_index, example_index,
                                                                                    tmp_path):
    from typer.testing import CliRunner

    from clipsearch.cli import app

    new = {**CLIPS[1], "id": "tea-2", "question": "How long should black tea steep?",
           "answer": "Three to five minutes in water just off the boil, then take the leaves out."}
    changes = tmp_path / "new.jsonl"
    changes.write_text(json.dumps(new) + "\n", encoding="utf-8")
    runner = CliRunner()

    added = runner.invoke(app, ["index", "upsert", str(changes), "--index", str(milvus_index)])
    assert added.exit_code == 0, added.output
    assert "1 added, 0 changed, 0 deleted" in added.output
    assert Searcher.open(milvus_index).search("black tea steeping time", k=1).results[0].clip.id == "tea-2"

    unknown = runner.invoke(app, ["index", "delete", "tea-2", "nope", "--index", str(milvus_index)])
    assert unknown.exit_code == 1 and "no clip with id 'nope'; nothing was changed" in unknown.output
    deleted = runner.invoke(app, ["index", "delete", "tea-2", "--index", str(milvus_index)])
    assert deleted.exit_code == 0 and "0 added, 0 changed, 1 deleted" in deleted.output
    assert len(ClipIndex.open(milvus_index)) == len(CLIPS) + 8  # the clips file and the page's 8 clips

    refused = runner.invoke(app, ["index", "upsert", str(changes), "--index", str(example_index)])
    assert refused.exit_code == 1 and "is a FAISS index: FAISS versions are rebuilt" in refused.output


def test_a_derived_version_of_a_milvus_index_shares_its_collection_and_outlives_its_source(milvus_index):
    from clipsearch.index.build import derive_version
    from clipsearch.scoring.fusion import Fusion

    source = ClipIndex.open(milvus_index)
    before = [h.clip.id for h in Searcher.open(milvus_index).search("how do I fix a flat tyre?", k=3).results]
    derived = derive_version(milvus_index, fusion=Fusion(paraphrase=0.9), keep_versions=1)  # the source is pruned
    assert derived.manifest["milvus"]["collection"] == source.manifest["milvus"]["collection"]
    assert [v.id for v in list_versions(milvus_index)] == [derived.version]
    client = connect(resolve_uri("milvus.db", milvus_index))
    assert source.manifest["milvus"]["collection"] in client.list_collections()
    searcher = Searcher.open(milvus_index)
    assert searcher.fusion.paraphrase == 0.9
    assert [h.clip.id for h in searcher.search("how do I fix a flat tyre?", k=3).results] == before


def test_an_index_call_sent_twice_keeps_the_index_the_first_made(tmp_path):
    """pymilvus sends a call again when the connection drops under it (a long index build on a server that refuses
    the client's keep-alive pings): the second create_index finds the index and the build goes on."""
    from pymilvus import DataType, MilvusClient

    from clipsearch.index.milvus_writer import _create_index

    client = connect(str(tmp_path / "retry.db"))
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection("retried", schema=schema)
    for _ in range(2):
        _create_index(client, "retried", "vector", metric_type="IP", index_type="FLAT", params={})
    assert client.list_indexes("retried") == ["vector"]
    with pytest.raises(Exception, match="field"):  # any other failure still fails the build
        _create_index(client, "retried", "no_such_field", index_type="INVERTED")
