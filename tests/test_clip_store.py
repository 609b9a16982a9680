"""ClipStore: an index's clips read from clips.jsonl on demand, with the columns a search filters and groups by."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLE_CORPUS

from clipsearch.errors import IndexCorrupt
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.clip_store import ClipStore
from clipsearch.ingest.clip_record import Clip
from clipsearch.ingest.corpus import read_clips

CLIPS = [
    Clip("a", "How do I bleed a radiator?", "Open the valve a quarter turn.", 10.0, 25.5, "Home Fix", video_id="v1"),
    Clip("b", "", "Close it when water comes out.", 25.5, 40.0, "Home Fix", video_id="v1", topic="heating"),
    Clip("c", "Why is my bread dense?", "Proof it longer, in a warm place.", 0.0, 12.0, "", url="https://x.test/b"),
]


def write(path, clips, last_newline=True):
    text = "\n".join(json.dumps(c.to_dict(), ensure_ascii=False) for c in clips) + ("\n" if last_newline else "")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("last_newline", [True, False], ids=["newline at end", "no newline at end"])
def test_the_store_gives_back_every_clip_by_row(tmp_path, last_newline):
    store = ClipStore.open(write(tmp_path / "clips.jsonl", CLIPS, last_newline))

    assert len(store) == 3
    assert store[0] == CLIPS[0] and store[2] == CLIPS[2] and store[-1] == CLIPS[2]
    assert store[1:] == CLIPS[1:]
    assert list(store) == CLIPS
    with pytest.raises(IndexError, match="clip row 3 out of range"):
        store[3]


def test_the_columns_hold_times_and_coded_sources_and_videos(tmp_path):
    columns = ClipStore.open(write(tmp_path / "clips.jsonl", CLIPS)).columns

    assert columns.start.tolist() == [10.0, 25.5, 0.0] and columns.end.tolist() == [25.5, 40.0, 12.0]
    assert [columns.video_id.values[c] for c in columns.video_id.codes] == ["v1", "v1", ""]
    assert columns.source.rows_equal_to_any(["Home Fix"]).tolist() == [True, True, False]
    assert columns.source.rows_equal_to_any(["nobody", ""]).tolist() == [False, False, True]
    assert not columns.video_id.rows_equal_to_any(["v2"]).any()


def test_an_empty_file_is_an_empty_store(tmp_path):
    (tmp_path / "clips.jsonl").write_bytes(b"")
    store = ClipStore.open(tmp_path / "clips.jsonl")

    assert len(store) == 0 and list(store) == [] and len(store.columns.start) == 0


def test_a_line_that_is_not_a_clip_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "clips.jsonl", CLIPS)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"id": "d", "question": "no times"}\n')

    with pytest.raises(IndexCorrupt, match=r"clips\.jsonl:4: not a clip record"):
        ClipStore.open(path)


def test_an_index_holds_its_clips_in_a_store_equal_to_its_corpus(example_index):
    index = ClipIndex.open(example_index)

    assert isinstance(index.clips, ClipStore)
    assert list(index.clips) == read_clips(EXAMPLE_CORPUS)
    rows = np.flatnonzero(index.clips.columns.video_id.codes == index.clips.columns.video_id.codes[0])
    assert {index.clips[int(r)].video_id for r in rows} == {index.clips[0].video_id}
