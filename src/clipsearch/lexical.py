"""BM25 over clip text (video title, question and answer) with bm25s: English stemming and stopwords."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from clipsearch.clips import Clip

STOPWORDS = "en"


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def clip_text(clip: Clip) -> str:
    """The text BM25 indexes for a clip."""
    return " ".join(part for part in (clip.video_title, clip.question, clip.answer) if part)


def tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(), return_ids=False, show_progress=False)


class BM25Index:
    """BM25 scores of every clip row for a query.

    Example usage::

        bm25 = BM25Index.build(clips)
        bm25.scores("flat tyre")   # one float per clip row
    """

    def __init__(self, retriever, size: int):
        self.retriever = retriever
        self.size = size

    @classmethod
    def build(cls, clips: list[Clip]) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25()
        texts = [clip_text(c) for c in clips]
        retriever.index(
            bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(), show_progress=False), show_progress=False
        )
        return cls(retriever, len(clips))

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory))

    @classmethod
    def load(cls, directory: Path, size: int) -> BM25Index:
        import bm25s

        # Memory-mapped: at a million clips the postings are hundreds of MB, of which a query reads its terms'.
        return cls(bm25s.BM25.load(str(directory), mmap=True), size)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of each clip row (0 where no query term occurs)."""
        tokens = tokenize([query])[0]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
