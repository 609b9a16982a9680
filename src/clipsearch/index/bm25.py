"""BM25 over clip text (video title, question and answer) with bm25s: English stemming and stopwords.

Up to ``EXACT_MAX_CLIPS`` clips a query scores every clip (bm25s's sum over the query terms' postings). Above it
that sum costs more than the rest of a search (at a million clips, 5 ms for the sum and 6 ms to find its top:
issue 7), so a query finds its lexical candidates with its rarest terms only, at most ``CANDIDATE_POSTINGS``
postings, and then scores exactly, with every term, just the clips worth ranking (see :class:`LexicalMatch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from clipsearch.errors import IndexCorrupt
from clipsearch.ingest.clip_record import Clip

STOPWORDS = "en"
#: Above this many clips, lexical candidates come from the rarest query terms (see the module docstring).
EXACT_MAX_CLIPS = 200_000
#: Postings a query reads to find its lexical candidates above EXACT_MAX_CLIPS (its rarest term always).
CANDIDATE_POSTINGS = 100_000
#: The word every clip of a corpus without any other indexable word gets (see ``BM25Index.build``).
EMPTY_VOCABULARY_WORD = "clipsearchnowordsindexed"


def top_positive(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest positive scores, best first, ties by position.

    The same as ``np.argsort(-scores[positive], kind="stable")[:k]`` mapped back to positions, but only the scores
    at or above the k-th best are sorted: at 100k clips sorting every clip a query term occurs in took 7 ms of a
    14 ms search (issue 7).
    """
    positive = np.flatnonzero(scores > 0)
    values = scores[positive]
    if 0 < k < len(positive):
        kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th highest score
        keep = np.flatnonzero(values >= kth)
        positive, values = positive[keep], values[keep]
    return positive[np.argsort(-values, kind="stable")[: max(k, 0)]]


@dataclass(frozen=True)
class LexicalMatch:
    """BM25 for one query: ``top``, its best clip rows (best first), and ``scores_of(rows)``, the exact BM25 score
    of any rows. ``best`` is the highest score of any clip, known when every clip was scored (None when only the
    rarest terms were: then the best of the rows ranked stands in for it)."""

    top: np.ndarray
    scores_of: Callable[[np.ndarray], np.ndarray]
    best: float | None


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
        tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(), show_progress=False)
        if not tokens.vocab:
            # No clip has a word BM25 keeps (only stopwords or punctuation): bm25s cannot index an empty vocabulary
            # (issue 19, found by fuzzing), so every clip gets one word no question has; BM25 then scores 0.
            texts = [f"{text} {EMPTY_VOCABULARY_WORD}" for text in texts]
            tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(), show_progress=False)
        retriever.index(tokens, show_progress=False)
        return cls(retriever, len(clips))

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory))

    @classmethod
    def load(cls, directory: Path, size: int) -> BM25Index:
        import bm25s

        # Memory-mapped: at a million clips the postings are hundreds of MB, of which a query reads its terms'. As
        # plain ndarrays over the mappings: every slice of a np.memmap is wrapped in a memmap again.
        try:
            retriever = bm25s.BM25.load(str(directory), mmap=True)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise IndexCorrupt(f"{directory}: not a readable BM25 index ({exc!r})") from None
        documents = retriever.scores.get("num_docs")
        if documents != size:
            raise IndexCorrupt(f"{directory / 'params.index.json'}: {documents} documents, the index has {size} clips")
        retriever.scores = {
            key: np.asarray(value) if isinstance(value, np.ndarray) else value
            for key, value in retriever.scores.items()
        }
        return cls(retriever, size)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of each clip row (0 where no query term occurs)."""
        tokens = tokenize([query])[0]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def match(self, query: str, fetch: int, allowed: np.ndarray | None = None) -> LexicalMatch:
        """The ``fetch`` best clips for ``query`` among the ``allowed`` rows (all when None) and the exact score of
        any clip, by every clip's score up to EXACT_MAX_CLIPS clips, above it by the rarest terms' (module
        docstring)."""
        if self.size <= EXACT_MAX_CLIPS or self.retriever.nonoccurrence_array is not None:
            scores = self.scores(query)
            if allowed is not None:
                scores = np.where(_mask(allowed, self.size), scores, np.float32(0))
            best = float(scores.max()) if len(scores) else 0.0
            return LexicalMatch(top_positive(scores, fetch), lambda rows: scores[rows], best)
        terms = self._term_ids(query)
        postings = self.retriever.scores
        indptr = postings["indptr"]
        lengths = indptr[terms + 1] - indptr[terms]
        chosen, read = [], 0
        for term, length in sorted(zip(terms.tolist(), lengths.tolist()), key=lambda pair: pair[1]):
            if chosen and read + length > CANDIDATE_POSTINGS:
                break
            chosen.append(term)
            read += length
        partial = self._sum(np.array(chosen, dtype=np.int64), np.zeros(self.size, dtype=np.float32))
        if allowed is not None:
            partial = np.where(_mask(allowed, self.size), partial, np.float32(0))
        return LexicalMatch(top_positive(partial, fetch), lambda rows: self._scores_of(terms, rows), None)

    def coverage(self, query: str, rows: np.ndarray) -> np.ndarray:
        """The share of the query's distinct terms (stemmed, stopwords left out) that occur in each of ``rows``'
        text; a term no clip has counts as missing (0 for every row of a query with no term). Evidence that the
        clip is about what was asked: the abstention calibration's ``coverage`` feature (issue 18)."""
        rows = np.asarray(rows, dtype=np.int64)
        tokens = set(tokenize([query])[0])
        if not tokens:
            return np.zeros(len(rows), dtype=np.float64)
        postings = self.retriever.scores
        indices, indptr = postings["indices"], postings["indptr"]
        found = np.zeros(len(rows), dtype=np.float64)
        for term in self.retriever.get_tokens_ids(sorted(tokens)):
            docs = indices[indptr[term] : indptr[term + 1]]
            if len(docs):
                at = np.minimum(np.searchsorted(docs, rows), len(docs) - 1)
                found += docs[at] == rows
        return found / len(tokens)

    def _term_ids(self, query: str) -> np.ndarray:
        tokens = tokenize([query])[0]
        return np.asarray(self.retriever.get_tokens_ids(tokens) if tokens else [], dtype=np.int64)

    def _sum(self, terms: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Add each term's scores into ``scores`` (per clip row), in the order bm25s adds them."""
        postings = self.retriever.scores
        data, indices, indptr = postings["data"], postings["indices"], postings["indptr"]
        for term in terms.tolist():
            np.add.at(scores, indices[indptr[term] : indptr[term + 1]], data[indptr[term] : indptr[term + 1]])
        return scores

    def _scores_of(self, terms: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The exact BM25 score of each of ``rows``: each term's posting of the row, found by binary search (a
        term's postings are sorted by row), added in the order bm25s adds them."""
        postings = self.retriever.scores
        data, indices, indptr = postings["data"], postings["indices"], postings["indptr"]
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float32)
        for term in terms.tolist():
            docs = indices[indptr[term] : indptr[term + 1]]
            if not len(docs):
                continue
            at = np.minimum(np.searchsorted(docs, rows), len(docs) - 1)
            hit = docs[at] == rows
            out[hit] += data[indptr[term] : indptr[term + 1]][at[hit]]
        return out


def _mask(rows: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask
