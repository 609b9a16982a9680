"""Clip times, jump links, ids and the Clip record."""

import math

import pytest

from clipsearch.ingest.clip_record import Clip, clip_id, format_time, jump_link, parse_time


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("01:41", 101),
        ("00:00", 0),
        ("1:02:05", 3725),
        ("75:00", 4500),  # MM:SS may run past an hour
        ("01:41.5", 101.5),
        (" 02:09 ", 129),
        ("12.5", 12.5),
        ("90", 90),
        (90, 90),
        (12.5, 12.5),
        (0, 0),
    ],
)
def test_parse_time(value, seconds):
    assert parse_time(value) == seconds


@pytest.mark.parametrize(
    "value, message",
    [
        ("ab", "'ab' is not a time (expected seconds, MM:SS or H:MM:SS)"),
        ("", "'' is not a time (expected seconds, MM:SS or H:MM:SS)"),
        ("-3", "'-3' is not a time (must be a finite number of seconds >= 0)"),
        (-1, "-1 is not a time (must be a finite number of seconds >= 0)"),
        (math.inf, "inf is not a time (must be a finite number of seconds >= 0)"),
        ("nan", "'nan' is not a time (must be a finite number of seconds >= 0)"),
        ("01:75", "'01:75' is not a valid time (minutes and seconds must be below 60)"),
        ("1:60:00", "'1:60:00' is not a valid time (minutes and seconds must be below 60)"),
        (True, "True is not a time"),
        (None, "None is not a time (expected seconds, MM:SS or H:MM:SS)"),
        ([1, 2], "[1, 2] is not a time (expected seconds, MM:SS or H:MM:SS)"),
    ],
)
def test_parse_time_rejects(value, message):
    with pytest.raises(ValueError) as excinfo:
        parse_time(value)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "00:00"), (101, "01:41"), (59.9, "00:59"), (3599, "59:59"), (3600, "1:00:00"), (3725, "1:02:05")],
)
def test_format_time(seconds, text):
    assert format_time(seconds) == text


@pytest.mark.parametrize("text", ["00:00", "01:41", "59:59", "1:00:00", "1:02:05", "12:34:56"])
def test_format_time_round_trips_parse_time(text):
    assert format_time(parse_time(text)) == text


@pytest.mark.parametrize(
    "url, start, end, link",
    [
        # YouTube watch URLs jump with t=<whole seconds>s and keep the video id.
        ("https://www.youtube.com/watch?v=abc123", 101, 129, "https://www.youtube.com/watch?v=abc123&t=101s"),
        ("https://youtube.com/watch?v=abc123", 101.9, 129, "https://youtube.com/watch?v=abc123&t=101s"),
        ("https://m.youtube.com/watch?v=abc123", 101, 129, "https://m.youtube.com/watch?v=abc123&t=101s"),
        # An existing t= is replaced, not repeated; a fragment is dropped.
        (
            "https://www.youtube.com/watch?t=5s&v=abc123&list=PL1#comments",
            101,
            129,
            "https://www.youtube.com/watch?v=abc123&list=PL1&t=101s",
        ),
        ("https://youtu.be/abc123", 101, 129, "https://youtu.be/abc123?t=101s"),
        # Any other URL gets a media fragment #t=start,end.
        ("https://example.org/soil.mp4", 101, 129, "https://example.org/soil.mp4#t=101,129"),
        ("https://example.org/soil.mp4", 101.5, 129.25, "https://example.org/soil.mp4#t=101.5,129.25"),
        ("https://example.org/soil.mp4#old", 101, 129, "https://example.org/soil.mp4#t=101,129"),
        # Fractions that round to whole milliseconds print without a trailing dot.
        ("https://example.org/soil.mp4", 101.0001, 129.9999, "https://example.org/soil.mp4#t=101,130"),
    ],
)
def test_jump_link(url, start, end, link):
    assert jump_link(url, start, end) == link


@pytest.mark.parametrize("url", [None, ""])
def test_jump_link_without_url(url):
    assert jump_link(url, 101, 129) is None


def test_clip_id_is_prefix_and_12_hex_digits_of_the_content():
    first = clip_id("Garden Hour", 101, 129, "When should I prune roses?", "clip")
    assert first.startswith("clip-")
    assert len(first) == len("clip-") + 12
    int(first.removeprefix("clip-"), 16)
    assert clip_id("Garden Hour", 101, 129, "When should I prune roses?", "page") == "page-" + first[5:]


def test_clip_id_uses_whole_seconds():
    whole = clip_id("Garden Hour", 101, 129, "Q?", "clip")
    assert clip_id("Garden Hour", 101.4, 129.9, "Q?", "clip") == whole


@pytest.mark.parametrize(
    "changed",
    [("Other Channel", 101, 129, "Q?"), ("Garden Hour", 102, 129, "Q?"), ("Garden Hour", 101, 130, "Q?"),
     ("Garden Hour", 101, 129, "Other?")],
)
def test_clip_id_changes_with_each_part(changed):
    assert clip_id(*changed, "clip") != clip_id("Garden Hour", 101, 129, "Q?", "clip")


def test_clip_to_dict_omits_unset_optional_fields():
    clip = Clip(
        id="roses-1", question="When should I prune roses?", answer="In late winter.", start=101, end=129
    )
    assert clip.to_dict() == {
        "id": "roses-1",
        "question": "When should I prune roses?",
        "answer": "In late winter.",
        "start": 101,
        "end": 129,
        "source": "",
    }
    assert clip.duration == 28


def test_clip_to_dict_keeps_set_optional_fields():
    clip = Clip(
        id="roses-1",
        question="When should I prune roses?",
        answer="In late winter.",
        start=101,
        end=129,
        source="Garden Hour",
        url="https://youtu.be/abc",
        topic="Roses",
    )
    data = clip.to_dict()
    assert data["url"] == "https://youtu.be/abc"
    assert data["topic"] == "Roses"
    assert "video_id" not in data and "video_title" not in data
    assert Clip(**data) == clip
