"""Property tests of every input parser (issue 19): any bytes in a clip file (.jsonl, .json, .csv), a clip-answer
page (.txt), a transcript (.srt, .vtt, YouTube .json, yt-dlp .json3) give clips, or a CorpusError that names the
file (and the line, when there is one): never another exception. And a build over such a file never leaves a
partial index: it adds one complete version, or refuses and changes nothing.

Each parser gets 1,000 generated files (derandomized: the same files every run): raw bytes, files shaped like the
format with random values, and those files mutated byte by byte (flips, insertions, deletions, truncations,
repeated lines).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipsearch.errors import CorpusError
from clipsearch.index.build import build_index
from clipsearch.index.layout import current_version_id
from clipsearch.ingest.clip_record import CLIP_FIELDS, Clip
from clipsearch.ingest.corpus import read_clips

EXAMPLES = 1000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# --- values -------------------------------------------------------------------------------------------------

#: Text without lone surrogates (which no file can hold as UTF-8).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
CLOCK = st.builds(lambda h, m, s, f: (f"{h}:" if h else "") + f"{m:02d}:{s:02d}" + (f".{f}" if f else ""),
                  st.integers(0, 3), st.integers(0, 75), st.integers(0, 75), st.sampled_from(["", "5", "250"]))
TIME = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True), CLOCK,
                 CLOCK.map(lambda c: f" {c} "), TEXT, st.none(), st.booleans())
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=4)


@st.composite
def clip_record(draw) -> dict:
    """A clip record: a good one with one field made wrong, missing or extra, or any fields with any values."""
    if draw(st.booleans()):
        start = draw(st.integers(0, 5000))
        record = {"answer": draw(WORDS), "start": start, "end": start + draw(st.integers(1, 90)),
                  "question": draw(WORDS)}
        field = draw(st.sampled_from([*CLIP_FIELDS, "x"]))
        if draw(st.booleans()):
            record[field] = draw(TIME if field in ("start", "end") else st.one_of(WORDS, TEXT, JSON))
        return record
    record = {}
    for field in draw(st.lists(st.sampled_from([*CLIP_FIELDS, "answer", "start", "end"]), max_size=8)):
        record[field] = draw(TIME if field in ("start", "end") else st.one_of(WORDS, TEXT, JSON))
    return record


# --- files shaped like each format ------------------------------------------------------------------------


def jsonl_files():
    line = st.one_of(clip_record().map(json.dumps), JSON.map(json.dumps), TEXT)
    return st.lists(line, max_size=6).map(lambda lines: "\n".join(lines).encode())


def json_files():
    return st.one_of(st.lists(clip_record(), max_size=5), clip_record(), JSON).map(
        lambda value: json.dumps(value, indent=1).encode())


def csv_files():
    """A good clip CSV (then mutated), or random headers and cells."""
    cell = st.one_of(WORDS, CLOCK, st.integers(-3, 5000).map(str), TEXT.map(lambda t: f'"{t}"'), st.just(""))
    good_row = st.tuples(WORDS.map(lambda w: w.replace(",", " ").replace('"', "'")), st.integers(0, 500),
                         st.integers(1, 60)).map(lambda r: f"{r[0]}?,{r[0]},{r[1]},{r[1] + r[2]}")
    good = st.lists(good_row, min_size=1, max_size=4).map(lambda rows: "question,answer,start,end\n" + "\n".join(rows))
    header = st.lists(st.sampled_from([*CLIP_FIELDS, "answer", "start", "end", "x"]), min_size=1, max_size=8)
    rows = st.lists(st.lists(cell, max_size=9).map(",".join), max_size=5)
    anything = st.tuples(header.map(",".join), rows).map(lambda hr: "\n".join([hr[0], *hr[1]]))
    return st.one_of(good, anything).map(str.encode)


def page_files():
    paragraph = st.one_of(WORDS, WORDS.map(lambda w: w + "?"), st.just("Logo"), st.just("Thumbnail"),
                          st.just("Watch clip answer (00:29m)"), st.just("of44"))
    time_range = st.tuples(CLOCK, st.sampled_from([" - ", "-", " – "]), CLOCK).map("".join)
    block = st.tuples(st.lists(paragraph, max_size=5), time_range).map(lambda b: "\n\n".join([*b[0], b[1]]))
    return st.lists(st.one_of(block, paragraph), max_size=5).map(lambda blocks: "\n\n".join(blocks).encode())


SRT_TIME = st.builds(lambda h, m, s, ms: f"{h:02d}:{m:02d}:{s:02d},{ms:03d}", st.integers(0, 120), st.integers(0, 70),
                     st.integers(0, 70), st.integers(0, 1200))


def srt_files():
    cue = st.tuples(st.integers(-1, 99), SRT_TIME, SRT_TIME, st.lists(st.one_of(WORDS, TEXT), max_size=3)).map(
        lambda c: f"{c[0]}\n{c[1]} --> {c[2]}\n" + "\n".join(c[3]))
    return st.lists(cue, max_size=5).map(lambda cues: "\n\n".join(cues).encode())


def vtt_files():
    stamp = SRT_TIME.map(lambda t: t.replace(",", ".")) | CLOCK
    cue = st.tuples(st.one_of(st.just(""), WORDS.map(lambda w: w + "\n")), stamp, stamp,
                    st.sampled_from(["", " align:start position:10%"]), st.lists(st.one_of(WORDS, TEXT), max_size=3)
                    ).map(lambda c: f"{c[0]}{c[1]} --> {c[2]}{c[3]}\n" + "\n".join(c[4]))
    header = st.sampled_from(["WEBVTT", "WEBVTT\nKind: captions\nLanguage: en", "WEBVTT - title", "webvtt", ""])
    return st.tuples(header, st.lists(cue, max_size=5)).map(lambda hc: "\n\n".join([hc[0], *hc[1]]).encode())


def youtube_files():
    cue = st.fixed_dictionaries({"text": st.one_of(WORDS, TEXT, JSON), "start": TIME},
                                optional={"duration": TIME, "extra": JSON})
    return st.lists(cue, max_size=6).map(lambda cues: json.dumps(cues).encode())


def json3_files():
    seg = st.fixed_dictionaries({}, optional={"utf8": st.one_of(WORDS, JSON)})
    event = st.fixed_dictionaries({}, optional={"tStartMs": TIME, "dDurationMs": TIME,
                                                "segs": st.one_of(st.lists(seg, max_size=3), JSON)})
    return st.lists(event, max_size=6).map(lambda events: json.dumps({"events": events}).encode())


@st.composite
def mutated(draw, files):
    """A file of the format with a few random byte edits."""
    data = bytearray(draw(files))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat line"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\n", b"\r\n", b"\x00", b'"',
                                                                                    b"\xef\xbb\xbf", b"-->", b"?"]))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat line":
            lines = bytes(data).split(b"\n")
            k = draw(st.integers(0, len(lines) - 1))
            data = bytearray(b"\n".join([*lines[: k + 1], *lines[k:]]))
    return bytes(data)


def any_bytes(files):
    return st.one_of(st.binary(max_size=200), files, mutated(files))


#: parser -> (file suffix, files)
PARSERS = {
    "jsonl clips": (".jsonl", jsonl_files()),
    "json clips": (".json", json_files()),
    "csv clips": (".csv", csv_files()),
    "txt page": (".txt", page_files()),
    "srt": (".srt", srt_files()),
    "vtt": (".vtt", vtt_files()),
    "youtube json": (".json", youtube_files()),
    "json3": (".json3", json3_files()),
}

# --- the property -------------------------------------------------------------------------------------------


def read_or_refuse(path: Path, data: bytes) -> list[Clip] | CorpusError:
    """The clips of ``data`` written to ``path``, or the CorpusError; anything else fails the test."""
    path.write_bytes(data)
    try:
        clips = read_clips([path])
    except CorpusError as exc:
        assert exc.path == str(path) and str(exc).startswith(f"{path}:"), f"error does not name the file: {exc}"
        lines = len(re.split(rb"\r\n|\r|\n", data))  # as an editor numbers them
        assert exc.line is None or 1 <= exc.line <= lines, f"line {exc.line} of a {lines}-line file: {exc}"
        assert exc.message.strip(), "an empty message"
        return exc
    assert clips, "no clips and no error"
    for clip in clips:
        assert isinstance(clip, Clip) and clip.answer.strip() and clip.id
        assert math.isfinite(clip.start) and math.isfinite(clip.end) and 0 <= clip.start < clip.end, clip
    assert len({clip.id for clip in clips}) == len(clips)
    json.dumps([clip.to_dict() for clip in clips], ensure_ascii=False).encode("utf-8")  # writable as clips.jsonl
    return clips


@pytest.mark.parametrize("parser", list(PARSERS))
def test_any_bytes_give_clips_or_an_error_naming_the_file(parser, tmp_path):
    suffix, files = PARSERS[parser]
    path = tmp_path / f"input{suffix}"
    outcomes = {"clips": 0, "refused": 0}

    @FUZZ
    @given(any_bytes(files))
    def check(data):
        outcome = read_or_refuse(path, data)
        outcomes["refused" if isinstance(outcome, CorpusError) else "clips"] += 1

    check()
    assert sum(outcomes.values()) >= EXAMPLES
    assert outcomes["clips"] and outcomes["refused"], outcomes  # the generated files reach both outcomes


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, example_index) -> Path:
    """An index of the example clips; its cache (embeddings, ONNX export) a copy of the example index's."""
    work = tmp_path_factory.mktemp("fuzz-build")
    shutil.copytree(example_index / "cache", work / "cache")
    build_index([Path(__file__).resolve().parents[1] / "examples" / "clips.jsonl"], work / "index",
                cache_dir=work / "cache")
    return work / "index"


def test_a_build_over_any_such_file_adds_one_whole_version_or_changes_nothing(small_index, tmp_path):
    """Fewer cases than the parsers' (a build that succeeds embeds the new texts): a refused build leaves the
    directory as it was (every file, its size); an accepted one adds exactly one version, made current."""
    outcomes = {"clips": 0, "refused": 0}

    def snapshot() -> dict:
        return {str(p.relative_to(small_index)): p.stat().st_size for p in small_index.rglob("*")
                if p.is_file() and p.name != ".build.lock"}

    @settings(FUZZ, max_examples=40)
    @given(st.sampled_from(list(PARSERS)).flatmap(lambda name: st.tuples(st.just(PARSERS[name][0]),
                                                                          any_bytes(PARSERS[name][1]))))
    def check(case):
        suffix, data = case
        source = tmp_path / f"input{suffix}"
        source.write_bytes(data)
        before, current = snapshot(), current_version_id(small_index)
        versions = set(os.listdir(small_index / "versions"))
        try:
            done = build_index([source], small_index, keep_versions=100, cache_dir=small_index.parent / "cache")
        except CorpusError:
            assert snapshot() == before and current_version_id(small_index) == current
            outcomes["refused"] += 1
            return
        added = set(os.listdir(small_index / "versions")) - versions
        assert added == {done.index.version} == {current_version_id(small_index)}
        outcomes["clips"] += 1

    check()
    assert outcomes["clips"] and outcomes["refused"], outcomes


# --- what the fuzzing found (issue 19), pinned ---------------------------------------------------------------


def test_line_numbers_count_only_real_line_breaks(tmp_path):
    """A line separator (U+2028, valid inside a JSON string) is no line break (str.splitlines made it one)."""
    path = tmp_path / "clips.jsonl"
    path.write_text('{"answer": "a\u2028b", "start": 0, "end": 1}\n{"answer": \n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"clips\.jsonl:2: invalid JSON"):
        read_clips([path])


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_an_unpaired_surrogate_is_refused_at_its_line(tmp_path, suffix):
    path = tmp_path / f"clips{suffix}"
    path.write_text('[\n{"answer": "ok", "start": 0, "end": 1},\n{"answer": "bad \\ud800", "start": 0, "end": 2}\n]'
                    if suffix == ".json" else '{"answer": "bad \\udc00", "start": 0, "end": 2}\n')
    line = 3 if suffix == ".json" else 1
    with pytest.raises(CorpusError, match=rf"clips{suffix}:{line}: invalid JSON string: unpaired surrogate"):
        read_clips([path])


def test_a_cue_that_lasts_no_time_joins_its_neighbour_and_a_transcript_of_instants_is_refused(tmp_path):
    youtube = tmp_path / "v.json"
    youtube.write_text(json.dumps([{"text": "first words", "start": 0, "duration": 4},
                                   {"text": "last words", "start": 4}]))
    (clip,) = read_clips([youtube])
    assert (clip.start, clip.end, clip.answer) == (0.0, 4.0, "first words last words")
    instant = tmp_path / "i.srt"
    instant.write_text("1\n00:00:05,000 --> 00:00:05,000\nhello\n")
    with pytest.raises(CorpusError, match=r"i\.srt:2: end: every cue with text ends where it starts"):
        read_clips([instant])


def test_clips_without_a_word_bm25_keeps_still_build(tmp_path, example_index):
    source = tmp_path / "stopwords.jsonl"
    source.write_text(json.dumps({"answer": "!", "start": 0, "end": 1}) + "\n"
                      + json.dumps({"question": "the", "answer": "of", "start": 1, "end": 2}) + "\n")
    shutil.copytree(example_index / "cache", tmp_path / "cache")
    done = build_index([source], tmp_path / "index", cache_dir=tmp_path / "cache")
    assert done.clips == 2
    assert done.index.bm25.scores("what is this").tolist() == [0.0, 0.0]
