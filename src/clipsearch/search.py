"""Searcher: a question in, the closest clips out, as an Answer with per-clip scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipsearch.clips import Clip
from clipsearch.encoder import Encoder, resolve_model
from clipsearch.errors import ModelMismatch
from clipsearch.index import ClipIndex

VECTOR_FIELDS = ("question", "answer")
#: The clip fields a search may be filtered on (exact match, any of the given values).
FILTER_FIELDS = ("source", "video_id")


@dataclass(frozen=True)
class Hit:
    """One clip in an answer.

    ``score`` is the number the ranking used; ``scores`` its components (``None`` where absent); ``matched`` the
    field whose vectors matched best (``question`` or ``answer``); ``highlight`` the answer sentence that matches
    the query best, with its character offsets in the answer.
    """

    clip: Clip
    score: float
    matched: str
    scores: dict[str, float | None]
    highlight: dict | None = None

    def to_dict(self) -> dict:
        return {
            **self.clip.to_dict(),
            "score": self.score,
            "matched": self.matched,
            "scores": self.scores,
            "highlight": self.highlight,
        }


@dataclass(frozen=True)
class Answer:
    """The answer to one query: the closest clips, best first."""

    query: str
    answered: bool
    results: list[Hit] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"query": self.query, "answered": self.answered, "results": [h.to_dict() for h in self.results]}


class Searcher:
    """Answers questions from one index version with the encoder it was built with.

    Example usage::

        searcher = Searcher.open("index/example")
        answer = searcher.search("how do I fix a flat tyre?", k=3)
        answer.results[0].clip.start
    """

    def __init__(self, index: ClipIndex, encoder: Encoder):
        if encoder.fingerprint != index.manifest["model_fingerprint"]:
            raise ModelMismatch(
                f"model {encoder.name!r} (fingerprint {encoder.fingerprint[:12]}) is not the model the index "
                f"{index.root} was built with: {index.manifest['model']!r} "
                f"(fingerprint {index.manifest['model_fingerprint'][:12]})"
            )
        self.index = index
        self.encoder = encoder
        self.fusion = index.fusion
        self._filter_values = {
            name: np.array([getattr(c, name) or "" for c in index.clips], dtype=object) for name in FILTER_FIELDS
        }

    @classmethod
    def open(cls, index_dir: str | Path, model: str | Path | None = None) -> Searcher:
        """Open the current version of ``index_dir`` with the model its manifest records.

        Args:
            model: optional; when given it must be the same model (by fingerprint) the index was built with.

        Raises:
            IndexNotFound, IndexCorrupt, ModelNotFound, ModelMismatch.
        """
        index = ClipIndex.open(index_dir)
        return cls(index, Encoder.load(resolve_model(model) if model is not None else index.model_ref()))

    def search(self, query: str, k: int = 10, filters: Mapping[str, Sequence[str]] | None = None) -> Answer:
        """The ``k`` clips closest to ``query``, best first, among those matching ``filters``.

        Args:
            query: free text.
            k: how many clips at most.
            filters: ``{"source": [...], "video_id": [...]}``; a clip matches when each named field equals one of
                its values. Filters apply before the top k is cut.
        """
        rows = self._rows_matching(filters)
        if k <= 0 or (rows is not None and len(rows) == 0) or not self.index.clips:
            return Answer(query, False, [])
        vector = self.encoder.encode([query])
        bm25 = self.index.bm25.scores(query)
        if rows is not None:
            allowed = np.zeros(len(bm25), dtype=bool)
            allowed[rows] = True
            bm25 = np.where(allowed, bm25, 0.0)
        candidates = self._candidates(vector, bm25, max(k * 4, 50), rows)
        top_bm25 = float(bm25.max()) if len(bm25) else 0.0
        scored = [(row, self._components(row, vector[0], bm25, top_bm25)) for row in candidates]
        fusion = self.fusion
        ranked = sorted(((fusion.score(c), row, c) for row, c in scored), key=lambda t: (-t[0], t[1]))[:k]
        hits = [self._hit(row, score, components) for score, row, components in ranked]
        return Answer(query, bool(hits), hits)

    def _rows_matching(self, filters: Mapping[str, Sequence[str]] | None) -> np.ndarray | None:
        if not filters:
            return None
        mask = np.ones(len(self.index.clips), dtype=bool)
        active = False
        for name, values in filters.items():
            if name not in FILTER_FIELDS:
                raise ValueError(f"unknown filter {name!r}; filters are: {', '.join(FILTER_FIELDS)}")
            if values:
                mask &= np.isin(self._filter_values[name], list(values))
                active = True
        return np.flatnonzero(mask) if active else None

    def _candidates(self, vector: np.ndarray, bm25: np.ndarray, fetch: int, rows: np.ndarray | None) -> set[int]:
        """Clip rows worth scoring: the top of every component."""
        candidates: set[int] = set()
        for name in VECTOR_FIELDS:
            _, ids = self.index.search(name, vector, fetch, rows)
            candidates.update(int(i) for i in ids[0] if i >= 0)
        for kind, spans in self.index.spans.items():
            positions = None if rows is None else np.flatnonzero(np.isin(spans.spans[:, 0], rows))
            _, ids = self.index.search(kind, vector, fetch * 2, positions)
            candidates.update(int(spans.spans[i, 0]) for i in ids[0] if i >= 0)
        positive = np.flatnonzero(bm25 > 0)
        if len(positive):
            top = positive[np.argsort(-bm25[positive], kind="stable")[:fetch]]
            candidates.update(int(i) for i in top)
        return candidates

    def _components(self, row: int, vector: np.ndarray, bm25: np.ndarray, top_bm25: float) -> dict:
        clip = self.index.clips[row]
        components: dict = {"question": None, "answer": None, "sentence": None, "passage": None, "bm25": None}
        if clip.question.strip():
            components["question"] = float(self.index.vectors["question"].reconstruct(row) @ vector)
        components["answer"] = float(self.index.vectors["answer"].reconstruct(row) @ vector)
        for kind, spans in self.index.spans.items():
            best = spans.best(row, vector)
            if best is not None:
                components[kind] = best[0]
                if kind == "sentence":
                    components["_sentence_at"] = best[1]
        components["bm25"] = float(bm25[row]) / top_bm25 if top_bm25 > 0 else 0.0
        return components

    def _hit(self, row: int, score: float, components: dict) -> Hit:
        at = components.pop("_sentence_at", None)
        highlight = None
        if at is not None:
            _, start, end = (int(x) for x in self.index.spans["sentence"].spans[at])
            highlight = {"text": self.index.clips[row].answer[start:end], "char_start": start, "char_end": end}
        answer_side = max(v for k, v in components.items() if k in ("answer", "sentence", "passage") and v is not None)
        question = components["question"]
        matched = "question" if question is not None and question >= answer_side else "answer"
        scores = {name: (None if value is None else round(value, 6)) for name, value in components.items()}
        return Hit(self.index.clips[row], round(score, 6), matched, scores, highlight)
