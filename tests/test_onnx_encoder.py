"""The ONNX query encoder: exported from the real packaged model, verified against torch, cached, used by search."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from conftest import EXAMPLES

from clipsearch.encode import onnx_encoder
from clipsearch.encode.factory import load_query_encoder
from clipsearch.encode.onnx_encoder import OnnxEncoder, export_onnx, onnx_paths
from clipsearch.encode.torch_encoder import Encoder
from clipsearch.evaluate.benchmark import read_queries
from clipsearch.search.searcher import Searcher

QUESTIONS = [q.query for q in read_queries([EXAMPLES / "questions.jsonl", EXAMPLES / "offtopic.jsonl"])]


def test_a_build_exports_the_verified_query_encoder_into_the_cache(example_index, encoder):
    graph, record_path = onnx_paths(example_index / "cache", encoder.fingerprint, "fp32")

    record = onnx_encoder.read_record(record_path)

    assert graph.is_file() and record is not None
    assert record["verified"] and record["min_cosine"] >= 0.999
    assert record["model_fingerprint"] == encoder.fingerprint and record["bytes"] == graph.stat().st_size


def test_onnx_vectors_equal_torch_vectors(example_index, encoder):
    onnx = load_query_encoder(encoder.ref, example_index / "cache")
    texts = QUESTIONS[:8] + ["  padded  ", "x" * 3000]

    assert isinstance(onnx, OnnxEncoder) and onnx.fingerprint == encoder.fingerprint
    one_by_one = np.vstack([onnx.encode([t]) for t in texts])
    batched = onnx.encode(texts)
    expected = encoder.encode(texts)
    assert one_by_one.dtype == np.float32 and one_by_one.shape == (len(texts), encoder.dim)
    assert np.sum(one_by_one * expected, axis=1).min() >= 0.999
    assert np.sum(batched * expected, axis=1).min() >= 0.999
    assert np.allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)


def test_a_second_export_is_a_cache_hit(example_index, encoder):
    graph, record_path = onnx_paths(example_index / "cache", encoder.fingerprint, "fp32")
    before = (graph.stat().st_ino, graph.stat().st_mtime_ns, record_path.read_bytes())

    export_onnx(encoder, example_index / "cache", "fp32")
    load_query_encoder(encoder.ref, example_index / "cache")

    assert (graph.stat().st_ino, graph.stat().st_mtime_ns, record_path.read_bytes()) == before


def test_search_with_onnx_gives_torch_top_10(example_index, encoder):
    onnx = Searcher.open(example_index, query_encoder="onnx")
    torch = Searcher(onnx.index, encoder)

    assert isinstance(onnx.encoder, OnnxEncoder)
    for question in QUESTIONS[:12]:
        ours = [h.clip.id for h in onnx.search(question, k=10).results]
        theirs = [h.clip.id for h in torch.search(question, k=10).results]
        assert ours == theirs, question


def test_an_export_that_does_not_verify_is_refused_and_queries_stay_on_torch(
    tmp_path, encoder, monkeypatch, caplog
):
    monkeypatch.setitem(onnx_encoder.MIN_COSINE, "fp32", 1.5)  # no export can reach it
    graph, record_path = onnx_paths(tmp_path, encoder.fingerprint, "fp32")

    with caplog.at_level(logging.WARNING, logger="clipsearch.onnx"):
        chosen = load_query_encoder(encoder.ref, tmp_path)

    assert isinstance(chosen, Encoder)
    record = onnx_encoder.read_record(record_path)
    assert record["verified"] is False and record["threshold"] == 1.5
    assert not graph.exists()
    assert "refused" in caplog.text and "queries use torch" in caplog.text


def test_a_refused_int8_export_gives_way_to_the_fp32_one(tmp_path, encoder, monkeypatch, caplog):
    monkeypatch.setitem(onnx_encoder.MIN_COSINE, "int8", 1.5)  # no int8 export can reach it

    with caplog.at_level(logging.WARNING, logger="clipsearch.onnx"):
        chosen = load_query_encoder(encoder.ref, tmp_path, precision="int8")

    assert isinstance(chosen, onnx_encoder.OnnxEncoder) and chosen.record["precision"] == "fp32"
    assert onnx_encoder.read_record(onnx_paths(tmp_path, encoder.fingerprint, "int8")[1])["verified"] is False
    assert "int8 export" in caplog.text and "queries use the fp32 export" in caplog.text


def test_an_export_of_another_recipe_is_made_again(tmp_path, encoder):
    graph, record_path = onnx_paths(tmp_path, encoder.fingerprint, "fp32")
    record = onnx_encoder.export_onnx(encoder, tmp_path)
    assert record["recipe"] == onnx_encoder.RECIPES["fp32"]
    record_path.write_text(json.dumps({**record, "recipe": "an older one"}), encoding="utf-8")

    assert onnx_encoder.read_record(record_path) is None
    assert onnx_encoder.export_onnx(encoder, tmp_path)["recipe"] == onnx_encoder.RECIPES["fp32"]


def test_the_torch_backend_is_the_sentence_transformers_encoder(example_index, encoder):
    assert load_query_encoder(encoder.ref, example_index / "cache", backend="torch") is encoder
    with pytest.raises(ValueError):
        load_query_encoder(encoder.ref, example_index / "cache", precision="fp8")


def test_the_tokenizers_tokenizer_gives_the_inputs_transformers_gives(encoder):
    from transformers import AutoTokenizer

    tokenize = onnx_encoder.tokenizer_of(encoder.ref.path, 256)
    reference = AutoTokenizer.from_pretrained(str(encoder.ref.path), use_fast=True)
    texts = [t.strip() for t in onnx_encoder.PROBES + QUESTIONS[:10]]

    for batch in (texts[:1], texts[:5], texts):
        ours = tokenize(batch)
        theirs = reference(batch, padding=True, truncation="longest_first", max_length=256, return_tensors="np")
        assert set(ours) == {"input_ids", "attention_mask", "token_type_ids"}
        for name, values in ours.items():
            assert values.dtype == np.int64 and np.array_equal(values, theirs[name]), name
    assert tokenize([" ".join(["word"] * 600)])["input_ids"].shape == (1, 256)


def test_a_model_without_tokenizer_json_is_tokenized_by_transformers(tmp_path, encoder):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(encoder.ref.path, model)
    (model / "tokenizer.json").unlink()  # a slow-tokenizer-only model: vocab.txt and its config

    tokenize = onnx_encoder.tokenizer_of(model, 256)

    expected = onnx_encoder.tokenizer_of(encoder.ref.path, 256)(QUESTIONS[:4])
    found = tokenize(QUESTIONS[:4])
    assert all(np.array_equal(found[name], expected[name]) for name in expected)


def test_a_question_asked_beside_another_search_is_encoded_on_one_thread(example_index):
    """Alone, a question gets every encoder thread (latency); beside another search, one (throughput)."""
    import threading

    searcher = Searcher.open(example_index, encoder_threads=2)
    encoder = searcher.encoder
    assert encoder.single_session is not encoder.session
    seen, entered, release = [], threading.Event(), threading.Event()
    original = encoder.encode

    def encode(texts, **options):
        seen.append(options.get("threads"))
        if len(seen) == 1:  # hold the first search in flight
            entered.set()
            release.wait(30)
        return original(texts, **options)

    encoder.encode = encode
    first = threading.Thread(target=searcher.search, args=("my chain squeaks",))
    first.start()
    assert entered.wait(30)
    beside = searcher.search("how do I fix a flat tyre?")
    release.set()
    first.join(30)
    alone = searcher.search("how do I fix a flat tyre?")

    assert seen == [None, 1, None]
    assert [h.clip.id for h in beside.results] == [h.clip.id for h in alone.results]
    one, two = original(QUESTIONS[:5], threads=1), original(QUESTIONS[:5])
    assert np.allclose(one, two, atol=1e-5)


def test_a_build_encodes_its_batches_side_by_side_on_one_thread_sessions(example_index, encoder):
    """A build's encoder runs its batches on one-thread sessions in parallel (throughput): same vectors, in order."""
    graph, record_path = onnx_paths(example_index / "cache", encoder.fingerprint, "fp32")
    record = onnx_encoder.read_record(record_path)
    build = OnnxEncoder(encoder.ref, encoder.fingerprint, graph, record, 2, parallel_batches=True)
    query = load_query_encoder(encoder.ref, example_index / "cache")
    texts = QUESTIONS * 3  # several batches of 4, of different lengths

    assert np.allclose(build.encode(texts[:7], batch_size=4), query.encode(texts[:7], batch_size=4), atol=1e-5)
    assert len(build._batch_sessions) == 1  # two batches: not worth a second session
    assert np.allclose(build.encode(texts, batch_size=4), query.encode(texts, batch_size=4), atol=1e-5)
    assert len(build._batch_sessions) == 2 and build.single_session is build.session

    import threading

    first, called = build._batch_sessions[0], threading.Event()
    first_run = first.run

    def broken(*args, **kwargs):
        called.set()
        raise RuntimeError("the second session failed")

    def waiting(*args, **kwargs):  # the first session leaves batches for the second
        called.wait(30)
        return first_run(*args, **kwargs)

    build._batch_sessions[1].run, first.run = broken, waiting
    with pytest.raises(RuntimeError, match="the second session failed"):
        build.encode(texts, batch_size=4)
