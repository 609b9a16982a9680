"""Cutting cues into clips: the rules as invariants (hypothesis) and hand-made cases for each preference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipsearch.ingest.segmentation import Segmentation, cut, segment
from clipsearch.ingest.transcripts import Chapter, Cue, Transcript


@st.composite
def cue_lists(draw) -> list[Cue]:
    """Monotonic cues as a normalised transcript has them: gaps and lengths of all sizes, some sentence ends."""
    cues, t = [], draw(st.floats(0, 100))
    for n in range(draw(st.integers(1, 40))):
        t += draw(st.sampled_from([0.0, 0.0, 0.2, 1.0, 3.0]))
        length = draw(st.one_of(st.floats(0.2, 8), st.floats(8, 150)))
        ending = draw(st.sampled_from(["", "", ".", "?"]))
        cues.append(Cue(round(t, 3), round(t + length, 3), f"words {n}{ending}", n + 1))
        t += length
    return cues


@st.composite
def segmentations(draw) -> Segmentation:
    low = draw(st.floats(0, 40))
    target = low + draw(st.floats(0.5, 40))
    high = target + draw(st.floats(0, 60))
    return Segmentation(low, high, target, draw(st.floats(0.1, 5)))


@settings(max_examples=120, deadline=None)
@given(cue_lists(), segmentations())
def test_cut_invariants(cues, bounds):
    groups = cut(cues, bounds)
    # every cue in exactly one clip, in order, never split (clip times are cue times)
    assert [cue for group in groups for cue in group] == cues
    assert all(group for group in groups)
    for before, after in zip(groups, groups[1:]):
        assert before[-1].end <= after[0].start  # times monotonic
    for i, group in enumerate(groups):
        length = group[-1].end - group[0].start
        assert length <= bounds.max_seconds or len(group) == 1
        if length < bounds.min_seconds and len(groups) > 1:
            # short only when it cannot join a neighbour within the maximum
            for j in (i - 1, i + 1):
                if 0 <= j < len(groups):
                    joined = group + groups[j] if j > i else groups[j] + group
                    assert joined[-1].end - joined[0].start > bounds.max_seconds


def tick(n: int, start: float = 0.0, length: float = 2.0, text: str = "and then we") -> list[Cue]:
    """``n`` back-to-back cues of ``length`` seconds, without punctuation."""
    return [Cue(start + i * length, start + (i + 1) * length, f"{text} {i}", i + 1) for i in range(n)]


def ends(groups: list[list[Cue]]) -> list[float]:
    return [group[-1].end for group in groups]


def test_auto_captions_without_punctuation_are_cut_at_the_pause():
    cues = tick(9) + tick(11, start=20.0)  # one 2 s silence after 18 s
    assert ends(cut(cues, Segmentation(10, 40, 20, pause_seconds=1.0))) == [18.0, 42.0]


def test_a_sentence_end_beats_a_gap_that_is_only_nearer_the_target():
    cues = tick(20)
    cues[6] = Cue(12.0, 14.0, "that is the first step.", 7)
    groups = cut(cues, Segmentation(10, 40, 20, pause_seconds=1.0))
    assert ends(groups) == [14.0, 40.0]


def test_a_cue_longer_than_the_maximum_is_a_clip_of_its_own():
    cues = [*tick(5), Cue(10.0, 200.0, "a very long monologue.", 6), *tick(5, start=200.0)]
    groups = cut(cues, Segmentation(5, 60, 20))
    assert [(g[0].start, g[-1].end) for g in groups] == [(0.0, 10.0), (10.0, 200.0), (200.0, 210.0)]


def test_chapters_are_hard_boundaries_and_their_titles_the_questions():
    cues = tick(30)  # 60 s of speech
    transcript = Transcript(
        "vid", tuple(cues), "vid.vtt", title="Clocks", url="https://example.org/v.mp4", source="Tick Talk",
        chapters=(Chapter("Opening the case", 10.0), Chapter("Oiling", 31.0)),
    )
    clips = [clip for clip, _ in segment(transcript, Segmentation(15, 60, 30))]
    assert [(c.question, c.start, c.end) for c in clips] == [
        ("", 0.0, 10.0),  # before the first chapter, shorter than the minimum: a chapter cannot be crossed
        ("Opening the case", 10.0, 32.0),  # the cue starting at 30 s belongs to the chapter it starts in
        ("Oiling", 32.0, 60.0),
    ]
    assert [c.id for c in clips] == ["vid@0-10000", "vid@10000-32000", "vid@32000-60000"]
    assert all(c.source == "Tick Talk" and c.video_title == "Clocks" for c in clips)


def test_segment_places_each_clip_at_its_first_cue():
    transcript = Transcript("vid", tuple(tick(30)), "vid.vtt")
    placed = segment(transcript, Segmentation(15, 30, 20))
    assert [line for _, line in placed] == [1 + round(clip.start / 2) for clip, _ in placed]


@pytest.mark.parametrize("low, high, target", [(30, 20, 25), (10, 60, 70), (10, 60, 5), (0, 0, 0)])
def test_inconsistent_bounds_are_refused(low, high, target):
    with pytest.raises(ValueError, match="clip lengths must satisfy"):
        Segmentation(low, high, target)


def test_overlap_adds_a_clip_across_each_cut_from_middle_to_middle():
    transcript = Transcript("v", tuple(tick(30)), "v.vtt")
    with_overlap = [(c.start, c.end) for c, _ in segment(transcript, Segmentation(10, 40, 20))]
    assert with_overlap == [(0.0, 30.0), (14.0, 46.0), (30.0, 60.0)]
    without = [(c.start, c.end) for c, _ in segment(transcript, Segmentation(10, 40, 20, overlap=False))]
    assert without == [(0.0, 30.0), (30.0, 60.0)]
    # a clip across the cut would be longer than the maximum: none
    assert [(c.start, c.end) for c, _ in segment(transcript, Segmentation(10, 30, 20))] == without


@settings(max_examples=60, deadline=None)
@given(cue_lists(), segmentations(), st.lists(st.floats(0, 400), max_size=3))
def test_segment_invariants_with_overlap_and_chapters(cues, bounds, chapter_starts):
    chapters = tuple(Chapter(f"part {n}", start) for n, start in enumerate(sorted(chapter_starts)))
    clips = [clip for clip, _ in segment(Transcript("v", tuple(cues), "v.vtt", chapters=chapters), bounds)]
    starts, ends = {c.start for c in cues}, {c.end for c in cues}
    assert len({c.id for c in clips}) == len(clips)
    assert all(c.start in starts and c.end in ends and c.start <= c.end for c in clips)  # never inside a cue
    for cue in cues:  # every cue in some clip
        assert any(c.start <= cue.start and cue.end <= c.end for c in clips)
    for clip in clips:  # a clip longer than the maximum is a single cue
        inside = [c for c in cues if clip.start <= c.start and c.end <= clip.end]
        assert clip.end - clip.start <= bounds.max_seconds or len(inside) == 1
        # chapters are hard boundaries: no clip starts before a chapter start and ends after it
        assert not any(clip.start < ch.start and any(c.start >= ch.start for c in inside) for ch in chapters)
    assert [c.start for c in clips] == sorted(c.start for c in clips)
