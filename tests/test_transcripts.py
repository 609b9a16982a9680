"""Reading timed transcripts (SRT, WebVTT, YouTube JSON, yt-dlp json3, video lists) into clean cues, and the errors
bad transcripts give. Every fixture is our own invented caption text, written in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipsearch.errors import CorpusError
from clipsearch.index.build import build_index
from clipsearch.ingest.corpus import ACCEPTED_SHAPES, read_clips, read_file
from clipsearch.ingest.segmentation import Segmentation
from clipsearch.ingest.transcripts import Cue, normalise, read_cues, read_transcript


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def times_and_text(cues: list[Cue]) -> list[tuple[float, float, str]]:
    return [(c.start, c.end, c.text) for c in cues]


# --- SRT ---

SRT = (
    "\ufeff1\r\n"
    "00:00:01,000 --> 00:00:04,000\r\n"
    "<i>Welcome back</i> to the potting bench.\r\n"
    "\r\n"
    "2\r\n"
    "00:00:03,500 --> 00:00:06,000\r\n"
    "{\\an8}Today we repot a fern &amp; a cactus.\r\n"
    "\r\n"
    "3\r\n"
    "00:00:06,000 --> 00:00:07,000\r\n"
    "<b> </b>\r\n"
    "\r\n"
    "4\r\n"
    "01:02:03,250 --> 01:02:05,750\r\n"
    "An hour in, the roots\r\n"
    "have filled the pot.\r\n"
)


def test_srt_with_bom_crlf_tags_overlap_empty_cue_and_hour_timestamps(tmp_path):
    cues = read_cues(write(tmp_path, "talk.srt", SRT))
    assert times_and_text(cues) == [
        (1.0, 3.5, "Welcome back to the potting bench."),  # clamped where the next cue starts
        (3.5, 6.0, "Today we repot a fern & a cactus."),
        (3723.25, 3725.75, "An hour in, the roots have filled the pot."),
    ]
    assert [c.line for c in cues] == [2, 6, 14]


def test_srt_alone_is_cut_into_clips_named_after_the_file(tmp_path):
    sourced = read_file(write(tmp_path, "fern-care.srt", SRT))
    clips = [s.clip for s in sourced]
    assert [c.id for c in clips] == ["fern-care@1000-6000", "fern-care@3723250-3725750"]
    assert all(c.video_id == "fern-care" and c.question == "" for c in clips)
    assert clips[0].answer == "Welcome back to the potting bench. Today we repot a fern & a cactus."
    assert [(s.path, s.line) for s in sourced] == [(str(tmp_path / "fern-care.srt"), 2)] + [
        (str(tmp_path / "fern-care.srt"), 14)
    ]


# --- WebVTT ---

VTT = """WEBVTT
X-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000

NOTE written by hand for this test

intro
00:00:00.500 --> 00:00:02.000 align:start position:10%
<v Mara>Hello, I'm Mara.</v>

00:00:02.000 --> 00:00:02.000
   

00:00:02.500 --> 00:00:05.000
<v.loud Theo>And I'm Theo &amp; we fix clocks.

1:00:00.000 --> 1:00:04.000
<c.yellow>An</c><01:00:01.000><c> hour</c> later
"""


def test_vtt_with_timestamp_map_voice_tags_settings_empty_cue_and_hour_timestamps(tmp_path):
    cues = read_cues(write(tmp_path, "clocks.vtt", VTT))
    assert times_and_text(cues) == [
        (0.5, 2.0, "Hello, I'm Mara."),
        (2.5, 5.0, "And I'm Theo & we fix clocks."),
        (3600.0, 3604.0, "An hour later"),
    ]
    assert [c.line for c in cues] == [7, 13, 16]


def test_vtt_rolling_auto_captions_without_punctuation(tmp_path):
    rolling = (
        "WEBVTT\nKind: captions\nLanguage: en\n\n"
        "00:00:00.000 --> 00:00:02.000\nso first you loosen\n\n"
        "00:00:01.800 --> 00:00:04.000\nso first you loosen\nthe back panel\n\n"
        "00:00:04.000 --> 00:00:04.010\nthe back panel\n\n"
        "00:00:04.010 --> 00:00:06.000\nthe back panel\nthen lift the gears out\n"
    )
    cues = read_cues(write(tmp_path, "auto.vtt", rolling))
    assert times_and_text(cues) == [
        (0.0, 1.8, "so first you loosen"),
        (1.8, 4.0, "the back panel"),
        (4.01, 6.0, "then lift the gears out"),
    ]


def test_extensionless_webvtt_is_detected_by_content(tmp_path):
    clips = read_clips([write(tmp_path, "clocks", VTT)])
    assert clips[0].video_id == "clocks" and clips[0].start == 0.5


# --- YouTube JSON ---


def test_youtube_transcript_list(tmp_path):
    items = [
        {"text": "welcome to the\nbee yard", "start": 0.0, "duration": 3.2},
        {"text": "[Music]", "start": 2.9, "duration": 1.0},
        {"text": "   ", "start": 4.0, "duration": 1.0},
        {"text": "we&#39;ll open a hive", "start": 5.0},
        {"text": "slowly", "start": 7.5, "duration": 2.0},
    ]
    path = write(tmp_path, "bees.json", "[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")
    cues = read_cues(path)
    assert times_and_text(cues) == [
        (0.0, 2.9, "welcome to the bee yard"),
        (2.9, 3.9, "[Music]"),
        (5.0, 7.5, "we'll open a hive"),  # no duration: until the next cue
        (7.5, 9.5, "slowly"),
    ]
    assert [c.line for c in cues] == [2, 3, 5, 6]
    assert read_clips([path])[0].id == "bees@0-9500"


def test_yt_dlp_json3(tmp_path):
    document = {
        "wireMagic": "pb3",
        "events": [
            {"tStartMs": 0, "dDurationMs": 60000, "id": 1, "wpWinPosId": 1},
            {"tStartMs": 120, "dDurationMs": 4000, "wWinId": 1,
             "segs": [{"utf8": "first"}, {"utf8": " mix", "tOffsetMs": 400}, {"utf8": " the mortar"}]},
            {"tStartMs": 2500, "dDurationMs": 3000, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]},
            {"tStartMs": 2500, "dDurationMs": 3000, "wWinId": 1, "segs": [{"utf8": "then lay the bricks"}]},
        ],
    }
    path = write(tmp_path, "wall.json3", json.dumps(document, indent=1))
    cues = read_cues(path)
    assert times_and_text(cues) == [(0.12, 2.5, "first mix the mortar"), (2.5, 5.5, "then lay the bricks")]
    lines = path.read_text().splitlines()
    assert all('"tStartMs"' in lines[c.line] or '"tStartMs"' in lines[c.line - 1] for c in cues)
    assert read_transcript(path).video_id == "wall"


# --- video lists ---


def test_video_list_with_chapters_relative_paths_and_metadata(tmp_path):
    write(tmp_path, "subs/clocks.vtt", VTT)
    write(tmp_path, "subs/fern.srt", SRT)
    videos = write(tmp_path, "videos.jsonl", "\n".join([
        json.dumps({"video_id": "v-clocks", "title": "Clock repair", "url": "https://www.youtube.com/watch?v=abc",
                    "transcript": "subs/clocks.vtt", "source": "Tick Talk",
                    "chapters": [{"title": "Who we are", "start": 0}, {"title": "Later on", "start": "59:00"}]}),
        "",
        json.dumps({"video_id": "v-fern", "title": "Ferns", "url": "https://example.org/fern.mp4",
                    "transcript": "subs/fern.srt"}),
    ]) + "\n")
    sourced = read_file(videos)
    clips = [s.clip for s in sourced]
    assert [(c.video_id, c.question, c.start, c.end) for c in clips] == [
        ("v-clocks", "Who we are", 0.5, 5.0),
        ("v-clocks", "Later on", 3600.0, 3604.0),
        ("v-fern", "", 1.0, 6.0),
        ("v-fern", "", 3723.25, 3725.75),
    ]
    assert clips[0].video_title == "Clock repair" and clips[0].source == "Tick Talk"
    assert clips[2].url == "https://example.org/fern.mp4" and clips[2].source == ""
    assert sourced[0].path == str(tmp_path / "subs/clocks.vtt") and sourced[0].line == 7


# --- errors: PATH:LINE: FIELD: what is wrong ---


@pytest.mark.parametrize(
    "name, content, message",
    [
        pytest.param(
            "talk.srt",
            "1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:05,000 --> 00:00:04,000\nbackwards\n",
            "talk.srt:6: end: 00:00:04,000 is before start 00:00:05,000",
            id="srt-end-before-start",
        ),
        pytest.param(
            "talk.srt",
            "1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:0x,000 --> 00:00:04,000\nbad\n",
            "talk.srt:5: timing: unreadable SRT cue starting '2' (expected a number, then "
            "'HH:MM:SS,mmm --> HH:MM:SS,mmm', then the text)",
            id="srt-unreadable-timestamp",
        ),
        pytest.param(
            "talk.vtt",
            "WEBVTT\n\n00:01.000 --> 00:02.000\nfine\n\n00:05.000 --> 00:04.000\nbackwards\n",
            "talk.vtt:6: end: 00:00:04.000 is before start 00:00:05.000",
            id="vtt-end-before-start",
        ),
        pytest.param(
            "talk.vtt",
            "WEBVTT\n\n00:01.000 --> 00:02.000\nfine\n\n00:75.000 --> 00:76.000\nbad seconds\n",
            "talk.vtt:6: timing: unreadable cue timing '00:75.000 --> 00:76.000' "
            "(expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm')",
            id="vtt-unreadable-timestamp",
        ),
        pytest.param(
            "talk.vtt",
            "00:01.000 --> 00:02.000\nno header\n",
            "talk.vtt:1: not WebVTT: the first line must start with 'WEBVTT'",
            id="vtt-no-header",
        ),
        pytest.param(
            "talk.json",
            '[\n{"text": "a", "start": 1, "duration": 2},\n{"text": "b", "start": 4, "duration": -1}\n]\n',
            "talk.json:3: duration: -1 is negative: the cue would end before it starts",
            id="youtube-negative-duration",
        ),
        pytest.param(
            "talk.json",
            '[\n{"text": "a", "start": 1, "duration": 2},\n{"text": "b", "start": "soon", "duration": 1}\n]\n',
            "talk.json:3: start: 'soon' is not a number",
            id="youtube-unreadable-start",
        ),
        pytest.param(
            "talk.json3",
            '{"events": [\n{"tStartMs": 0, "segs": [{"utf8": "a"}]},\n{"segs": [{"utf8": "b"}]}\n]}\n',
            "talk.json3:3: tStartMs: missing",
            id="json3-missing-start",
        ),
        pytest.param(
            "videos.jsonl",
            '{"video_id": "a", "transcript": "a.vtt"}\n{"video_id": "b", "transcript": "missing.vtt"}\n',
            "videos.jsonl:2: transcript: no such file: {tmp}/missing.vtt",
            id="list-missing-transcript",
        ),
        pytest.param(
            "videos.jsonl",
            '{"video_id": "a", "transcript": "a.vtt", "chapters": [{"title": "Intro", "start": "1:75"}]}\n',
            "videos.jsonl:1: chapters[0].start: '1:75' is not a valid time (minutes and seconds must be below 60)",
            id="list-bad-chapter",
        ),
    ],
)
def test_bad_transcripts(tmp_path, name, content, message):
    write(tmp_path, "a.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nfine.\n")
    path = write(tmp_path, name, content)
    with pytest.raises(CorpusError) as caught:
        read_clips([path])
    assert str(caught.value) == f"{tmp_path}/{message.format(tmp=tmp_path)}"


def test_unrecognised_input_lists_the_transcript_formats(tmp_path):
    with pytest.raises(CorpusError) as caught:
        read_clips([write(tmp_path, "notes", "just some words\n")])
    for shape in (".srt and .vtt transcripts", "yt-dlp .json3", ".jsonl video lists with a 'transcript' path"):
        assert shape in ACCEPTED_SHAPES and shape in str(caught.value)


def test_a_bad_transcript_in_a_list_writes_no_index(tmp_path):
    write(tmp_path, "good.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nfine.\n")
    write(tmp_path, "bad.vtt", "WEBVTT\n\n00:05.000 --> 00:04.000\nbackwards\n")
    videos = write(tmp_path, "videos.jsonl", '{"transcript": "good.vtt"}\n{"transcript": "bad.vtt"}\n')
    with pytest.raises(CorpusError, match=r"bad\.vtt:3: end:"):
        build_index([videos], tmp_path / "index")
    assert not (tmp_path / "index").exists()


def test_normalise_merges_a_cue_inside_another_and_keeps_times_monotonic():
    cues = [Cue(0.0, 10.0, "outer", 1), Cue(2.0, 5.0, "inner", 2), Cue(9.0, 12.0, "after", 3), Cue(9.0, 9.5, "", 4)]
    assert times_and_text(normalise(cues)) == [(0.0, 9.0, "outer inner"), (9.0, 12.0, "after")]


# --- end to end: the real model, a real index on disk ---


def test_build_and_ask_on_shared_transcripts(transcript_index):
    from conftest import TRANSCRIPT_VIDEOS, TUTORIALVQA

    from clipsearch.evaluate.metrics import moment_hit
    from clipsearch.search.searcher import Searcher

    searcher = Searcher.open(transcript_index)
    clips = searcher.index.clips
    assert {c.video_id for c in clips} == set(TRANSCRIPT_VIDEOS)
    assert searcher.index.manifest["segmentation"] == Segmentation().to_dict()
    for video in TRANSCRIPT_VIDEOS:
        cues = read_cues(TUTORIALVQA / "transcripts" / f"{video}.vtt")
        own = [c for c in clips if c.video_id == video]
        # every clip starts and ends on cue times and holds their text; every cue is in some clip
        for clip in own:
            inside = [cue for cue in cues if clip.start <= cue.start and cue.end <= clip.end]
            assert (clip.start, clip.end) == (inside[0].start, inside[-1].end)
            assert clip.answer == " ".join(cue.text for cue in inside)
        assert all(any(c.start <= cue.start and cue.end <= c.end for c in own) for cue in cues)
        assert all(c.question == "" and c.id == f"{video}@{round(c.start * 1000)}-{round(c.end * 1000)}" for c in own)
    # two questions whose labelled TutorialVQA moments are 14645-4 and 14643-0
    for question, moment in [
        ("how do I open a second image with an interesting sky and add it to my design?", ("14645", 181.28, 215.84)),
        ("in the Save As dialog, how do I save the design in Photoshop format with its layers?",
         ("14643", 32.96, 48.78)),
    ]:
        top = searcher.search(question, k=3).results[0]
        assert moment_hit((top.clip.video_id, top.clip.start, top.clip.end), moment), top.clip.id
        assert top.scores["question"] is None and top.score > 0
