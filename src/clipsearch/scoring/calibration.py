"""Calibrated abstention: a confidence (0-1) for each result, and a threshold below which the answer is
"nothing here answers that" (``answered: false``), the results still listed as the closest, not confident.

The confidence is a logistic model over retrieval features of a result: its fused score, its lead over the next
result, its component scores, the mean fused score of the top five (how crowded the neighbourhood is) and, since
issue 18, ``coverage``: the share of the question's terms (stemmed, stopwords left out) found in the result's text.
A calibration that names no ``coverage`` (every one written before issue 18) is applied as it was. The
default ships with clipsearch (``default_calibration.json``), fitted by ``scripts/fit_calibration.py`` on
train-side data only: TutorialVQA train questions over an index that leaves ten videos out (their questions are the
unanswerable side), plus our own example/seed paraphrase and off-topic sets. Its threshold keeps 90 % of the
answerable train questions answered. Each index manifest records the calibration in force.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

FEATURES = ("score", "gap", "question", "passage", "sentence", "answer", "mean5", "coverage")
#: The features a calibration without ``coverage`` used (before issue 18); still loadable.
FEATURES_V1 = FEATURES[:7]


@dataclass(frozen=True)
class Calibration:
    """``confidence = sigmoid(intercept + sum(coefficient * feature))``; answered when the top confidence is at
    least ``threshold``."""

    coefficients: dict[str, float]
    intercept: float
    threshold: float

    def to_dict(self) -> dict:
        return {"form": "logistic", "features": dict(self.coefficients), "intercept": self.intercept,
                "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        if data.get("form") != "logistic":
            raise ValueError(f"unknown calibration form {data.get('form')!r}")
        unknown = set(data["features"]) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown calibration feature(s) {', '.join(sorted(unknown))}")
        return cls(dict(data["features"]), float(data["intercept"]), float(data["threshold"]))

    @property
    def uses_coverage(self) -> bool:
        """Whether the model reads ``coverage`` (then the caller has to measure it for each result)."""
        return bool(self.coefficients.get("coverage"))

    def confidences(self, scores: list[float], components: list[dict[str, float | None]],
                    coverage: list[float] | None = None) -> list[float]:
        """Confidence of each result of one answer, given the results' fused scores (best first), components and,
        when :attr:`uses_coverage`, the share of the question's terms each result's text has."""
        out: list[float] = []
        for features in result_features(scores, components, coverage):
            # A result is never more confident than one ranked above it: people read the list top down.
            out.append(min(self.confidence(features), out[-1] if out else 1.0))
        return out

    def confidence(self, features: Mapping[str, float]) -> float:
        """The logistic model's confidence for one result's features (:func:`result_features`)."""
        z = self.intercept + sum(w * features.get(name, 0.0) for name, w in self.coefficients.items() if w)
        return 1.0 / (1.0 + math.exp(-z))


def result_features(scores: list[float], components: list[dict[str, float | None]],
                    coverage: list[float] | None = None) -> list[dict[str, float]]:
    """The calibration features (:data:`FEATURES`) of each result of one answer (``coverage`` 0 when not given)."""
    mean5 = sum(scores[:5]) / min(len(scores), 5) if scores else 0.0
    rows = []
    for i, (score, parts) in enumerate(zip(scores, components)):
        following = scores[i + 1] if i + 1 < len(scores) else 0.0
        rows.append({
            "score": score,
            "gap": score - following,
            "question": parts.get("question") if parts.get("question") is not None else score,
            "passage": parts.get("passage") or 0.0,
            "sentence": parts.get("sentence") or 0.0,
            "answer": parts.get("answer") or 0.0,
            "mean5": mean5,
            "coverage": float(coverage[i]) if coverage is not None else 0.0,
        })
    return rows


def default_calibration() -> Calibration:
    """The calibration that ships with clipsearch, for the packaged model."""
    text = resources.files("clipsearch.scoring").joinpath("default_calibration.json").read_text(encoding="utf-8")
    return Calibration.from_dict(json.loads(text))
