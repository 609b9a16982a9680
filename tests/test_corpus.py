"""Reading clip files (JSON lines, JSON, CSV, pages) into Clips, and the PATH:LINE: FIELD: errors."""

import json
import re
from pathlib import Path

import pytest

from clipsearch.errors import CorpusError
from clipsearch.ingest.clip_record import Clip, clip_id
from clipsearch.ingest.corpus import ACCEPTED_SHAPES, read_clips, read_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

ROSES = {
    "id": "roses-1",
    "question": "When should I prune roses?",
    "answer": "In late winter, just as the buds begin to swell.",
    "start": 101,
    "end": 129,
    "source": "Garden Hour",
}
GARLIC = {
    "id": "garlic-1",
    "question": "How deep should I plant garlic?",
    "answer": "About five centimetres deep, pointed end up.",
    "start": "02:10",
    "end": "02:40",
}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Every file is written to, and named relative to, tmp_path, so messages read 'clips.csv:3: ...'."""
    monkeypatch.chdir(tmp_path)


def write(name: str, content: str | bytes) -> str:
    if isinstance(content, bytes):
        Path(name).write_bytes(content)
    else:
        Path(name).write_text(content, encoding="utf-8")
    return name


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def error(*paths: str) -> str:
    with pytest.raises(CorpusError) as excinfo:
        read_clips(paths)
    return str(excinfo.value)


# --- formats --------------------------------------------------------------------------------


def test_jsonl():
    path = write("clips.jsonl", jsonl(ROSES) + "\n" + jsonl(GARLIC))
    roses, garlic = read_file(path)
    assert roses.clip == Clip(**ROSES)
    assert (garlic.where, garlic.clip.start, garlic.clip.end) == ("clips.jsonl:3", 130, 160)
    assert garlic.clip.source == ""
    assert read_clips([path]) == [roses.clip, garlic.clip]


def test_json_array_records_carry_the_line_they_start_on():
    text = "[\n" + json.dumps(ROSES, indent=2) + ",\n" + json.dumps(GARLIC, indent=2) + "\n]\n"
    path = write("clips.json", text)
    roses, garlic = read_file(path)
    assert roses.where == "clips.json:2"
    assert garlic.where == "clips.json:10"  # after "[" and ROSES's eight lines
    assert [roses.clip.id, garlic.clip.id] == ["roses-1", "garlic-1"]


def test_single_json_object():
    path = write("clip.json", "\n\n" + json.dumps(ROSES, indent=2) + "\n")
    (roses,) = read_file(path)
    assert roses.where == "clip.json:3"
    assert roses.clip == Clip(**ROSES)


def test_csv_with_bom_clock_times_and_multi_line_cells():
    path = write(
        "clips.csv",
        "\ufeffid,question,answer,start,end,source\n"
        'roses-1,When should I prune roses?,"In late winter,\n'
        'just as the buds begin to swell.",01:41,02:09,Garden Hour\n'
        "\n"
        "garlic-1,How deep should I plant garlic?,About five centimetres.,1:02:05,1:02:35,\n",
    )
    roses, garlic = read_file(path)
    assert roses.where == "clips.csv:2"
    assert roses.clip.answer == "In late winter,\njust as the buds begin to swell."
    assert (roses.clip.start, roses.clip.end, roses.clip.source) == (101, 129, "Garden Hour")
    assert garlic.where == "clips.csv:5"  # after the two-line record and a blank line
    assert (garlic.clip.id, garlic.clip.start, garlic.clip.end) == ("garlic-1", 3725, 3755)


def test_csv_header_names_are_trimmed_and_empty_optional_cells_are_unset():
    path = write("clips.csv", " answer , start , end , topic \nMulch in autumn.,10,20,\n")
    (mulch,) = read_file(path)
    assert mulch.clip.topic is None
    assert "topic" not in mulch.clip.to_dict()


def test_csv_missing_columns():
    write("clips.csv", "question,start\nWhen should I prune roses?,01:41\n")
    assert error("clips.csv") == (
        "clips.csv:1: header: missing column(s) answer, end; clip CSV columns are: "
        "id, question, answer, start, end, source, url, video_id, video_title, topic"
    )


def test_id_is_derived_from_content_when_missing():
    record = {k: v for k, v in ROSES.items() if k != "id"}
    (roses,) = read_file(write("clips.jsonl", jsonl(record)))
    assert re.fullmatch(r"clip-[0-9a-f]{12}", roses.clip.id)
    assert roses.clip.id == clip_id("Garden Hour", 101, 129, "When should I prune roses?", "clip")


def test_optional_fields_and_whitespace():
    record = {**ROSES, "answer": "  In late winter.  ", "url": "https://youtu.be/abc"}
    record.update(topic="", video_id=None)
    (roses,) = read_file(write("clips.jsonl", jsonl(record)))
    assert roses.clip.answer == "In late winter."
    assert (roses.clip.url, roses.clip.topic, roses.clip.video_id) == ("https://youtu.be/abc", None, None)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(jsonl(ROSES, GARLIC), id="json-lines"),
        pytest.param(json.dumps([ROSES, GARLIC], indent=2), id="json-array"),
    ],
)
def test_extensionless_file_is_detected_by_content(content):
    clips = read_file(write("clips", content))
    assert [sourced.clip.id for sourced in clips] == ["roses-1", "garlic-1"]


def test_extensionless_pretty_printed_object():
    (roses,) = read_file(write("clip", json.dumps(ROSES, indent=2)))
    assert (roses.where, roses.clip.id) == ("clip:1", "roses-1")


def test_extensionless_page():
    page = "Roses\n\nWhen should I prune roses?\n\nIn late winter.\n\nGarden Hour\n\n01:41 - 02:09\n"
    (roses,) = read_file(write("roses", page))
    assert (roses.where, roses.clip.topic, roses.clip.start) == ("roses:3", "Roses", 101)


def test_example_clips():
    clips = read_clips([EXAMPLES / "clips.jsonl"])
    assert len(clips) == 12
    assert all(clip.answer and clip.start < clip.end for clip in clips)


def test_example_clips_and_page_together():
    clips = read_clips([EXAMPLES / "clips.jsonl", EXAMPLES / "page.txt"])
    assert len(clips) == 20
    assert len({clip.id for clip in clips}) == 20


# --- errors: PATH:LINE: FIELD: what is wrong ------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        pytest.param(
            "clips.csv",
            "question,answer,start,end\nWhen should I sow tomatoes?,In March.,00:10,00:40\n"
            "When should I prune roses?,In late winter.,01:41,01:20\n",
            "clips.csv:3: end: 01:20 is before start 01:41",
            id="csv-end-before-start",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl({**ROSES, "start": 101, "end": 80.5}),
            "clips.jsonl:1: end: 80.5 is before start 101",
            id="json-end-before-start",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl({**ROSES, "end": 101}),
            "clips.jsonl:1: end: 101 equals start 101",
            id="end-equals-start",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl(ROSES, {**GARLIC, "answer": "  "}),
            "clips.jsonl:2: answer: missing or empty",
            id="empty-answer",
        ),
        pytest.param(
            "clips.csv",
            "question,answer,start,end\nWhen should I prune roses?,,01:41,02:09\n",
            "clips.csv:2: answer: missing or empty",
            id="csv-missing-answer",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl({k: v for k, v in ROSES.items() if k != "end"}),
            "clips.jsonl:1: end: missing",
            id="missing-end",
        ),
        pytest.param(
            "clips.csv",
            "answer,start,end\nIn late winter.,1:41pm,02:09\n",
            "clips.csv:2: start: '1:41pm' is not a time (expected seconds, MM:SS or H:MM:SS)",
            id="bad-time",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl({**ROSES, "end": "02:75"}),
            "clips.jsonl:1: end: '02:75' is not a valid time (minutes and seconds must be below 60)",
            id="bad-seconds",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl({**ROSES, "start": -5}),
            "clips.jsonl:1: start: -5 is not a time (must be a finite number of seconds >= 0)",
            id="negative-time",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl({**ROSES, "question": ["When?"]}),
            "clips.jsonl:1: question: must be a string, got list",
            id="question-not-text",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl(ROSES) + '{"answer": \n',
            "clips.jsonl:2: invalid JSON: Expecting value (column 12)",
            id="invalid-json-line",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl(ROSES) + '["In late winter.", 101, 129]\n',
            "clips.jsonl:2: expected a JSON object, got list",
            id="record-not-an-object",
        ),
        pytest.param(
            "clips.json",
            '[\n  {"answer": "In late winter.", "start": 1, "end": 2}\n  {"answer": "x"}\n]\n',
            "clips.json:3: invalid JSON: expected ',' or ']' between records",
            id="json-array-missing-comma",
        ),
        pytest.param(
            "clips.json",
            '[\n  {"answer": "In late winter.", "start": 1, "end": 2},\n',
            "clips.json:3: invalid JSON: unterminated array",
            id="json-array-unterminated",
        ),
        pytest.param(
            "clips.jsonl",
            jsonl(ROSES).encode() + b'{"answer": "Caf\xe9 grounds feed roses."}\n',
            "clips.jsonl:2: not UTF-8 text (byte 0xe9)",
            id="not-utf8",
        ),
        pytest.param(
            "clips.csv",
            "answer,start,end\nIn late winter.,01:41,02:09,Garden Hour\n",
            "clips.csv:2: 4 cells, header has 3",
            id="csv-extra-cell",
        ),
        pytest.param(
            "transcript.jsonl",
            jsonl({"text": "prune in late winter", "start": 101.0, "duration": 4.2}),
            f"transcript.jsonl: unrecognised record shape (keys: duration, start, text); {ACCEPTED_SHAPES}",
            id="unknown-record-shape",
        ),
        pytest.param(
            "notes",
            "Prune roses in late winter.\n",
            f"notes: unrecognised input format (no extension); {ACCEPTED_SHAPES}",
            id="unknown-format",
        ),
    ],
)
def test_bad_input(name, content, message):
    write(name, content)
    assert error(name) == message


def test_unknown_shape_mentions_the_accepted_shapes():
    write("transcript.jsonl", jsonl({"text": "prune in late winter", "start": 101.0, "duration": 4.2}))
    message = error("transcript.jsonl")
    shapes = (".jsonl/.json clip records with 'answer'", ".csv with a header row", ".txt clip-answer pages")
    for shape in shapes:
        assert shape in message


def test_duplicate_ids_across_files_name_both_places():
    write("a.jsonl", jsonl(ROSES))
    write("b.jsonl", jsonl(GARLIC, {**ROSES, "answer": "Any time after flowering."}))
    assert error("a.jsonl", "b.jsonl") == "b.jsonl:2: id: duplicate id 'roses-1' (first at a.jsonl:1)"


def test_missing_file():
    assert error("missing.jsonl") == "missing.jsonl: no such file"


def test_directory():
    Path("clips").mkdir()
    assert error("clips") == "clips: is a directory, expected a clip file"


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty.jsonl", "empty.jsonl: no records found"),
        ("empty.json", "empty.json: no records found"),
        ("empty.csv", "empty.csv:1: header: empty file, expected a header row naming clip fields"),
        (
            "empty.txt",
            "empty.txt: no clips found: a clip-answer page closes each clip with a 'MM:SS - MM:SS' line",
        ),
    ],
)
def test_empty_file(name, message):
    write(name, "")
    assert error(name) == message


def test_json_array_without_records():
    write("clips.json", "[]\n")
    assert error("clips.json") == "clips.json: no records found"


def test_csv_with_header_only():
    write("clips.csv", "question,answer,start,end\n")
    assert error("clips.csv") == "clips.csv: no records found"


def test_no_input():
    assert error() == "<no input>: no clips found"


def test_error_carries_path_line_and_field():
    write("clips.csv", "answer,start,end\nIn late winter.,01:41,01:20\n")
    with pytest.raises(CorpusError) as excinfo:
        read_file("clips.csv")
    assert (excinfo.value.path, excinfo.value.line, excinfo.value.field) == ("clips.csv", 2, "end")
