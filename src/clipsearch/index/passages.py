"""Cut a clip's answer into sentences and short overlapping passages of consecutive sentences.

Answers are long spoken transcripts while questions ask about one thing said in them: the passage that matches a
question best is stronger evidence than the whole answer's single vector, and it is what a result highlights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Sentences per passage (measured on TutorialVQA train: 3 beats 2; single sentences are a component of their own).
WINDOW = 3
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")


@dataclass(frozen=True)
class Span:
    """A piece of an answer: ``text == answer[char_start:char_end]``."""

    text: str
    char_start: int
    char_end: int


def sentences(answer: str) -> list[Span]:
    """The sentences of ``answer`` with their character offsets (the whole answer when it has no sentence end)."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(answer):
        spans.append(_span(answer, start, match.start()))
        start = match.end()
    spans.append(_span(answer, start, len(answer)))
    return [s for s in spans if s.text] or [_span(answer, 0, len(answer))]


def passages(answer: str, window: int = WINDOW) -> list[Span]:
    """Windows of ``window`` consecutive sentences, one starting at each sentence (at least one passage)."""
    parts = sentences(answer)
    windows = []
    for i in range(max(1, len(parts) - window + 1)):
        start, end = parts[i].char_start, parts[min(i + window, len(parts)) - 1].char_end
        windows.append(Span(answer[start:end], start, end))
    return windows


def _span(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(text[start:end], start, end)
