"""Clip-answer pages: the real seed page, the project's example page and small hand-written pages."""

from pathlib import Path
from textwrap import dedent

import pytest

from clipsearch.errors import CorpusError
from clipsearch.ingest.clip_page import looks_like_page, parse_page
from clipsearch.ingest.corpus import read_file

#: The real WION page the format was designed from; read in place, never copied into the repository.
SEED_PAGE = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_54ed5500dd6f44a6.txt"
EXAMPLE_PAGE = Path(__file__).resolve().parents[1] / "examples" / "page.txt"


def parse(text: str) -> list:
    return [clip for clip, _line in parse_page(dedent(text), "page.txt")]


def page_error(text: str) -> str:
    with pytest.raises(CorpusError) as excinfo:
        parse_page(dedent(text), "page.txt")
    return str(excinfo.value)


# --- the real seed page -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_clips():
    return parse_page(SEED_PAGE.read_text(encoding="utf-8"), str(SEED_PAGE))


def test_seed_page_has_six_clips_with_their_times(seed_clips):
    times = [(clip.start, clip.end) for clip, _line in seed_clips]
    assert times == [(101, 129), (0, 130), (133, 163), (207, 237), (56, 85), (164, 196)]


def test_seed_page_source_and_topic_carry_to_every_clip(seed_clips):
    assert [clip.source for clip, _line in seed_clips] == ["WION"] * 6
    assert [clip.topic for clip, _line in seed_clips] == ["NATO Alliance"] * 6


def test_seed_page_questions_and_answers(seed_clips):
    first, first_line = seed_clips[0]
    assert first.id == "page-ba772a6ca3b7"
    assert first.question == "Why does Russia reject NATO peacekeepers in a potential Ukraine peace deal?"
    assert first_line == 5
    assert first.answer.startswith("Russia rejects NATO peacekeepers because")
    for clip, _line in seed_clips:
        assert clip.question.endswith("?")
        assert clip.id.startswith("page-")
        assert "Watch clip answer" not in clip.answer
        assert "Thumbnail" not in clip.answer
        assert not clip.answer.endswith("WION")
    assert len({clip.id for clip, _line in seed_clips}) == 6


def test_seed_page_through_read_file():
    clips = read_file(SEED_PAGE)
    assert [sourced.line for sourced in clips] == [5, 16, 27, 38, 49, 60]
    assert clips[0].where == f"{SEED_PAGE}:5"


def test_example_page_parses_to_eight_clips():
    clips = parse_page(EXAMPLE_PAGE.read_text(encoding="utf-8"), "examples/page.txt")
    assert len(clips) == 8
    assert {clip.source for clip, _line in clips} == {"Bean Lab"}
    assert {clip.topic for clip, _line in clips} == {"Home Coffee Brewing"}
    assert (clips[0][0].start, clips[0][0].end) == (12, 41)


# --- the grammar on small pages -----------------------------------------------------------------------------

GARDEN_PAGE = """\
    Logo

    Vegetable Garden

    When should I sow tomato seeds indoors?

    Sow them six to eight weeks before the last frost, on a warm windowsill.

    Watch clip answer (00:28m)
    Thumbnail

    Garden Hour

    01:41 - 02:09

    How deep should I plant garlic?

    Push each clove in about five centimetres deep, pointed end up.

    Watch clip answer (00:30m)
    Thumbnail

    Garden Hour

    02:10 - 02:40

    of2
"""


def test_small_page():
    clips = parse_page(dedent(GARDEN_PAGE), "page.txt")
    assert [(clip.question, line) for clip, line in clips] == [
        ("When should I sow tomato seeds indoors?", 5),
        ("How deep should I plant garlic?", 16),
    ]
    first, second = (clip for clip, _line in clips)
    assert first.answer == "Sow them six to eight weeks before the last frost, on a warm windowsill."
    assert (first.start, first.end, first.source) == (101, 129, "Garden Hour")
    assert (second.start, second.end, second.source) == (130, 160, "Garden Hour")
    assert first.topic == second.topic == "Vegetable Garden"


def test_multi_paragraph_answer():
    (clip,) = parse(
        """\
        How do I start a compost heap?

        Pick a shady corner and start with a layer of twigs for air.

        Then alternate green kitchen scraps with brown leaves and cardboard.

        Watch clip answer (00:45m)
        Thumbnail

        Garden Hour

        00:10 - 00:55
        """
    )
    assert clip.answer == (
        "Pick a shady corner and start with a layer of twigs for air.\n\n"
        "Then alternate green kitchen scraps with brown leaves and cardboard."
    )
    assert clip.source == "Garden Hour"


def test_lines_of_a_paragraph_are_joined():
    (clip,) = parse(
        """\
        How do I start a compost heap?

        Pick a shady corner
        and start with twigs.

        00:10 - 00:55
        """
    )
    assert clip.answer == "Pick a shady corner and start with twigs."


def test_hours_in_time_range():
    (clip,) = parse(
        """\
        Why do my courgettes rot at the tip?

        The flowers were not pollinated, so the fruit withers from the end.

        Garden Hour

        1:02:05 - 1:03:00
        """
    )
    assert (clip.start, clip.end) == (3725, 3780)


@pytest.mark.parametrize("dash", ["-", "–", "—"])
def test_dashes_and_spacing_in_time_range(dash):
    (clip,) = parse(
        f"""\
        How often should I water seedlings?

        Keep the compost damp but never soggy.

        01:41{dash}02:09
        """
    )
    assert (clip.start, clip.end) == (101, 129)


def test_page_without_watch_and_thumbnail_lines():
    first, second = parse(
        """\
        How often should I water seedlings?

        Keep the compost damp but never soggy.

        Garden Hour

        00:30 - 01:00

        Do slugs eat lettuce?

        Yes, young lettuce is one of their favourites.

        01:10 - 01:30
        """
    )
    assert (first.answer, first.source) == ("Keep the compost damp but never soggy.", "Garden Hour")
    # With a single paragraph after the question, that paragraph is the answer and there is no source.
    assert (second.answer, second.source) == ("Yes, young lettuce is one of their favourites.", "")


def test_new_topic_mid_page():
    clips = parse(
        """\
        Vegetable Garden

        When should I sow tomato seeds indoors?

        Six to eight weeks before the last frost.

        Garden Hour

        00:30 - 01:00

        How deep should I plant garlic?

        About five centimetres deep.

        Garden Hour

        01:10 - 01:30

        Roses

        When should I prune roses?

        In late winter, just as the buds begin to swell.

        Garden Hour

        01:40 - 02:10
        """
    )
    assert [clip.topic for clip in clips] == ["Vegetable Garden", "Vegetable Garden", "Roses"]


def test_page_without_topic():
    (clip,) = parse(
        """\
        When should I prune roses?

        In late winter.

        00:30 - 01:00
        """
    )
    assert clip.topic is None
    assert "topic" not in clip.to_dict()


@pytest.mark.parametrize("counter", ["of44", "1 of 3", "Page 2 of 5"])
def test_page_counter_is_ignored(counter):
    clips = parse(
        f"""\
        When should I prune roses?

        In late winter.

        00:30 - 01:00

        {counter}
        """
    )
    assert [clip.question for clip in clips] == ["When should I prune roses?"]


def test_ids_are_page_prefixed_and_stable():
    text = dedent(GARDEN_PAGE)
    assert [c.id for c, _ in parse_page(text, "a.txt")] == [c.id for c, _ in parse_page(text, "b.txt")]
    assert all(c.id.startswith("page-") and len(c.id) == 17 for c, _ in parse_page(text))


def test_looks_like_page():
    assert looks_like_page(dedent(GARDEN_PAGE))
    assert not looks_like_page("Compost needs air.\n\nAnd water.\n")


# --- errors: PATH:LINE: FIELD: message, on the line of the thing that is wrong ----------------


def test_end_before_start_points_at_the_time_range_line():
    assert page_error(
        """\
        When should I prune roses?

        In late winter.

        Garden Hour

        01:41 - 01:20
        """
    ) == "page.txt:7: end: 01:20 is before start 01:41"


def test_end_equal_to_start():
    assert page_error(
        """\
        When should I prune roses?

        In late winter.

        01:41 - 01:41
        """
    ) == "page.txt:5: end: 01:41 equals start 01:41"


@pytest.mark.parametrize(
    "time_range, message",
    [
        ("01:75 - 02:00", "page.txt:5: start: '01:75' is not a valid time (minutes and seconds must be below 60)"),
        ("01:00 - 01:75", "page.txt:5: end: '01:75' is not a valid time (minutes and seconds must be below 60)"),
    ],
)
def test_invalid_time_names_the_bad_end_of_the_range(time_range, message):
    assert page_error(
        f"""\
        When should I prune roses?

        In late winter.

        {time_range}
        """
    ) == message


def test_missing_question():
    assert page_error(
        """\
        When should I prune roses?

        In late winter.

        00:30 - 01:00

        Roses like a sunny spot.

        Garden Hour

        01:10 - 01:30
        """
    ) == "page.txt:7: question: no question (a paragraph ending in '?') before this clip's time range"


def test_time_range_with_nothing_before_it():
    assert page_error("00:30 - 01:00\n") == (
        "page.txt:1: question: no question (a paragraph ending in '?') before this clip's time range"
    )


@pytest.mark.parametrize(
    "between",
    [
        "",  # the time range straight after the question
        "Watch clip answer (00:30m)\nThumbnail\n\nGarden Hour\n",  # the labels but no answer
    ],
)
def test_missing_answer(between):
    text = "Roses\n\nWhen should I prune roses?\n\n" + between + "\n00:30 - 01:00\n"
    with pytest.raises(CorpusError) as excinfo:
        parse_page(text, "page.txt")
    assert str(excinfo.value) == "page.txt:3: answer: no answer paragraph after the question"


def test_two_source_paragraphs():
    assert page_error(
        """\
        When should I prune roses?

        In late winter.

        Watch clip answer (00:30m)
        Thumbnail

        Garden Hour

        Sponsored by Rosa

        00:30 - 01:00
        """
    ) == "page.txt:8: source: expected one source line before the time range, found 2 paragraphs"


def test_text_after_the_last_time_range():
    assert page_error(
        """\
        When should I prune roses?

        In late winter.

        00:30 - 01:00

        How deep should I plant garlic?

        About five centimetres.
        """
    ) == (
        "page.txt:7: text after the last clip is not closed by a 'MM:SS - MM:SS' time range: "
        "'How deep should I plant garlic?'"
    )


def test_stray_long_paragraph_before_a_question():
    assert page_error(
        """\
        Roses

        Subscribe to our channel for weekly tips on roses, pruning, feeding,
        and everything else in the garden.

        When should I prune roses?

        In late winter.

        00:30 - 01:00
        """
    ) == (
        "page.txt:3: topic: a paragraph before the question is not a short topic line: "
        "'Subscribe to our channel for weekly tips on roses, pruning,…'"
    )


def test_page_without_clips():
    assert page_error("Roses\n\nPrune in late winter.\n") == (
        "page.txt:1: text after the last clip is not closed by a 'MM:SS - MM:SS' time range: 'Roses'"
    )
    assert page_error("") == (
        "page.txt: no clips found: a clip-answer page closes each clip with a 'MM:SS - MM:SS' line"
    )


def test_a_time_range_closes_its_clip_even_without_a_blank_line_before_it():
    page = "Why do tomatoes split?\n\nUneven watering makes the fruit swell faster than its skin grows.\n\nGreen Hour\n01:00 - 01:30\n"
    [(clip, line)] = parse_page(page, "page.txt")
    assert (clip.source, clip.start, clip.end, line) == ("Green Hour", 60, 90, 1)
    assert clip.answer == "Uneven watering makes the fruit swell faster than its skin grows."
