"""The index directory: versions, the manifest guard, atomic switches and the embedding cache."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from clipsearch.encode.torch_encoder import Encoder
from clipsearch.errors import ClipsearchError, IndexBusy, IndexCorrupt, IndexNotFound, ModelMismatch
from clipsearch.index.build import build_index
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.integrity import sealed
from clipsearch.index.layout import build_lock, current_version_id
from clipsearch.search.searcher import Searcher

GARDEN = [
    {"id": "g1", "question": "When should I prune roses?", "answer": "Prune roses in late winter, just as the buds "
     "begin to swell, cutting above an outward-facing bud.", "start": 10, "end": 40, "source": "Green Hour"},
    {"id": "g2", "question": "How often should I water tomatoes?", "answer": "Water tomatoes deeply two or three "
     "times a week rather than a little every day, so the roots grow down.", "start": 50, "end": 80,
     "source": "Green Hour"},
    {"id": "g3", "question": "", "answer": "Compost needs a mix of green kitchen scraps and brown material like dry "
     "leaves, turned every couple of weeks to keep it breathing.", "start": 90, "end": 120, "source": "Soil Talk"},
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def garden(tmp_path, encoder):
    """A fresh three-clip index this test may change."""
    corpus = write_jsonl(tmp_path / "garden.jsonl", GARDEN)
    out = tmp_path / "index"
    build_index([corpus], out)
    return out, corpus


def test_a_build_writes_a_self_describing_version(garden):
    out, _ = garden
    assert os.readlink(out / "current").startswith("versions/")  # relative: the directory can move
    manifest = json.loads((out / "current" / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["model"] == "all-MiniLM-L6-v2" and manifest["model_source"] == "package"
    assert len(manifest["model_fingerprint"]) == 64
    assert manifest["dim"] == 384 and manifest["metric"] == "inner_product"
    assert manifest["clips"] == 3
    # the clip with an empty question gets no question vector
    assert manifest["vectors_by_field"]["question"] == 2 and manifest["vectors_by_field"]["answer"] == 3
    assert manifest["vectors"] == sum(manifest["vectors_by_field"].values())
    assert len(manifest["inputs_sha256"]) == 64 and manifest["built_at"].endswith("+00:00")
    assert {"clips.jsonl", "questions.faiss", "answers.faiss"} <= set(manifest["files"])
    assert ClipIndex.open(out).version == manifest["version"] == current_version_id(out)


def test_loading_refuses_a_corrupted_manifest(garden):
    out, _ = garden
    (out / "current" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match=r"manifest\.json: not valid JSON"):
        ClipIndex.open(out)


def test_loading_refuses_a_file_that_differs_from_the_manifest(garden):
    out, _ = garden
    clips = out / "current" / "clips.jsonl"
    clips.write_text(clips.read_text().replace("roses", "ROSES"))
    with pytest.raises(IndexCorrupt, match=r"clips\.jsonl: sha256 differs"):
        ClipIndex.open(out)
    clips.unlink()
    with pytest.raises(IndexCorrupt, match=r"clips\.jsonl: missing"):
        ClipIndex.open(out)


def test_a_different_model_is_refused(garden, encoder):
    out, _ = garden
    impostor = Encoder(encoder.ref, encoder.model, "0" * 64)
    with pytest.raises(ModelMismatch, match="is not the model the index"):
        Searcher(ClipIndex.open(out), impostor)
    manifest_file = out / "current" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["model_fingerprint"] = "f" * 64
    manifest_file.write_text(json.dumps(sealed(manifest)))  # a consistent manifest naming another model
    with pytest.raises(ModelMismatch, match="fingerprint ffffffffffff"):
        Searcher.open(out)


def test_a_moved_index_still_loads(garden, tmp_path):
    out, _ = garden
    moved = tmp_path / "elsewhere" / "moved-index"
    moved.parent.mkdir()
    shutil.move(out, moved)
    answer = Searcher.open(moved).search("when do I cut back my roses", k=1)
    assert answer.results[0].clip.id == "g1"


def test_a_rebuild_does_not_disturb_a_reader_of_the_previous_version(garden, tmp_path):
    out, corpus = garden
    reader = Searcher.open(out)
    old_version = reader.index.version
    write_jsonl(corpus, [{**GARDEN[0], "id": "new-1"}])
    build_index([corpus], out)
    assert current_version_id(out) != old_version
    # the open reader still answers from its own version ...
    assert reader.search("when do I prune roses", k=3).results[0].clip.id == "g1"
    assert len(reader.index) == 3
    # ... and a new reader sees the new one
    assert [h.clip.id for h in Searcher.open(out).search("prune roses", k=3).results] == ["new-1"]


def test_old_versions_are_pruned_but_the_previous_one_stays(garden):
    out, corpus = garden
    for _ in range(3):
        build_index([corpus], out, keep_versions=2)
    versions = sorted(p.name for p in (out / "versions").iterdir())
    assert len(versions) == 2 and current_version_id(out) == versions[-1]


def test_unchanged_text_is_never_embedded_again(garden):
    out, corpus = garden
    again = build_index([corpus], out)
    assert again.encoded == 0 and again.cached > 0
    assert set(again.phases) == {"read", "encoder", "embed", "index"}
    assert 0 < sum(again.phases.values()) <= again.seconds
    changed = write_jsonl(corpus, [*GARDEN, {**GARDEN[0], "id": "g4", "question": "Do roses like full sun?"}])
    assert build_index([changed], out).encoded == 1


def test_a_second_build_of_the_same_directory_waits_its_turn(garden):
    out, corpus = garden
    with build_lock(out):
        with pytest.raises(IndexBusy, match="another build"):
            build_index([corpus], out)


def test_a_directory_that_is_not_an_index_is_never_written_into(tmp_path, encoder):
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"\xff\xd8")
    corpus = write_jsonl(tmp_path / "garden.jsonl", GARDEN)
    with pytest.raises(ClipsearchError, match="not a clipsearch index"):
        build_index([corpus], precious)
    assert [p.name for p in precious.iterdir()] == ["holiday.jpg"]


def test_opening_a_missing_index_says_so(tmp_path):
    with pytest.raises(IndexNotFound, match="does not exist"):
        ClipIndex.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexNotFound, match="current is missing"):
        ClipIndex.open(tmp_path / "empty")


def test_clips_embedded_by_onnx_are_the_clips_torch_embeds(tmp_path, encoder):
    corpus = write_jsonl(tmp_path / "garden.jsonl", GARDEN)

    onnx = build_index([corpus], tmp_path / "onnx", corpus_encoder="onnx").index
    torch = build_index([corpus], tmp_path / "torch", corpus_encoder="torch").index

    for name in ("question", "answer"):
        rows = [row for row, clip in enumerate(onnx.clips) if name == "answer" or clip.question]
        cosines = np.sum(onnx.store.vectors[name].vectors_of(rows) * torch.store.vectors[name].vectors_of(rows), axis=1)
        assert len(rows) and cosines.min() >= 0.999, name
    with pytest.raises(ValueError, match="corpus_encoder"):
        build_index([corpus], tmp_path / "other", corpus_encoder="tensorflow")


def test_a_rebuild_from_cached_embeddings_never_loads_torch(garden):
    """A rebuild whose texts are all in the cache (and its ONNX export too) starts without sentence-transformers
    or torch: the fixed cost of a small rebuild is then a fraction of a second, not a model load."""
    import subprocess
    import sys

    out, corpus = garden
    changed = write_jsonl(corpus.parent / "changed.jsonl", [*GARDEN[:2], {**GARDEN[2], "source": "Soil Hour"}])
    script = (
        "import sys; from clipsearch.index.build import build_index; "
        f"result = build_index([{str(changed)!r}], {str(out)!r}); "
        "print(result.encoded, result.cached, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert done.stdout.split() == ["0", "5", "False", "False"]
    assert ClipIndex.open(out).clips[2].source == "Soil Hour"
