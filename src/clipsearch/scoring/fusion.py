"""How a clip's evidence becomes one ranking score: a weighted mean of its component scores.

Components, each per clip:

- ``question``: cosine of the query and the clip's question (absent for clips without one);
- ``answer``: cosine of the query and the whole answer;
- ``sentence``: the best cosine of the query and one sentence of the answer;
- ``passage``: the best cosine of the query and a passage (three consecutive sentences) of the answer;
- ``bm25``: BM25 over title, question and answer, divided by the best BM25 score of the query, so 0..1.

The weights of absent components drop out of the mean, so clips without a question (transcript cuts) are ranked on
the same scale as the others. A question closer to the query than ``paraphrase`` is taken as the same question
asked in other words: its excess over that cosine is added in full (it costs 0.001 MRR@10 on TutorialVQA train,
whose clip "questions" are short titles, and fixes paraphrases of real questions that share few words). The default weights were fitted on TutorialVQA train questions (grid search on MRR@10)
and are recorded in each index manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

COMPONENTS = ("question", "answer", "sentence", "passage", "bm25")


@dataclass(frozen=True)
class Fusion:
    """Weights of the component scores."""

    question: float = 0.25
    answer: float = 0.25
    sentence: float = 1.0
    passage: float = 1.0
    bm25: float = 0.5
    paraphrase: float = 0.8

    def to_dict(self) -> dict:
        weights = asdict(self)
        return {"form": "weighted_mean", "paraphrase": weights.pop("paraphrase"), "weights": weights}

    @classmethod
    def from_dict(cls, data: dict) -> Fusion:
        if data.get("form") != "weighted_mean":
            raise ValueError(f"unknown fusion form {data.get('form')!r}")
        return cls(**data["weights"], paraphrase=data.get("paraphrase", cls.paraphrase))

    def score(self, components: dict[str, float | None]) -> float:
        """The fused score of one clip's components (``None`` = absent)."""
        arrays = {k: np.array([np.nan if v is None else v], dtype=np.float64) for k, v in components.items()}
        return float(self.score_many(arrays)[0])

    def score_many(self, components: dict[str, np.ndarray]) -> np.ndarray:
        """Fused scores of many clips at once: arrays of component scores (any one shape), NaN = absent."""
        shape = np.shape(next(iter(components.values())))
        total, weight = np.zeros(shape), np.zeros(shape)
        for name in COMPONENTS:
            w = getattr(self, name)
            values = components.get(name)
            if values is None or not w:
                continue
            present = ~np.isnan(values)
            total += w * np.where(present, values, 0.0)
            weight += w * present
        mean = np.divide(total, weight, out=np.zeros(shape), where=weight > 0)
        question = components.get("question")
        if question is None:
            return mean
        return mean + np.where(np.isnan(question), 0.0, np.maximum(0.0, question - self.paraphrase))
