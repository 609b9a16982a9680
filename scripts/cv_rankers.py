#!/usr/bin/env python
"""Learned rankers against the shipped weighted mean, under grouped cross-validation on the TutorialVQA train
questions (issue 18, lever 1). Dev is never read.

Every train question's candidates (as `clipsearch calibrate` collects them) get extra features beside the five
ranking components: raw BM25, BM25 of the title, question and answer apart, the cosine of the question and the
video title, the share of the question's terms the clip has, each component's rank and z-score among the
candidates, its distance to the best, and context (the best and mean of each component over the candidate clips of
the same video). A linear model per feature set is fitted with a listwise softmax loss (the log-probability of the
relevant clips among the candidates, L2-regularised) on four folds of whole videos and measured on the fifth;
`--lightgbm` adds LambdaMART (`pip install lightgbm`). Figures: the folds' mean ± spread.

Example usage:

    python scripts/cv_rankers.py --index index/tutorialvqa
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from tutorialvqa import DATA_DIR, TRAIN, TutorialVQA

from clipsearch import Searcher, build_index
from clipsearch.evaluate.crossval import Figure, group_folds
from clipsearch.evaluate.fitting import collect
from clipsearch.index.bm25 import STOPWORDS, _stemmer, tokenize
from clipsearch.scoring.fusion import COMPONENTS, Fusion

SETS = {
    "components": ("base",), "+ paraphrase excess": ("base", "para"), "+ raw BM25": ("base", "bm25raw"),
    "+ BM25 per field": ("base", "bm25f"), "+ video title cosine": ("base", "title"),
    "+ term coverage": ("base", "cov"), "+ ranks": ("base", "rank"), "+ z-scores": ("base", "z"),
    "+ distance to the best": ("base", "gap"), "+ video context": ("base", "ctx"),
    "all": ("base", "para", "bm25raw", "bm25f", "title", "cov", "rank", "z", "gap", "ctx"),
}


def extras(searcher, samples, queries) -> list[dict]:
    """Per question, the candidate arrays the features are made of."""
    import bm25s

    clips = list(searcher.index.clips)
    fields = {"title": [c.video_title or "" for c in clips], "question": [c.question or "" for c in clips],
              "answer": [c.answer or "" for c in clips]}
    per_field = {}
    for name, texts in fields.items():
        per_field[name] = bm25s.BM25()
        per_field[name].index(bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(), show_progress=False),
                              show_progress=False)
    titles = sorted(set(fields["title"]))
    title_vectors = searcher.encoder.encode(titles)
    title_of = np.array([titles.index(t) for t in fields["title"]])
    query_vectors = searcher.encoder.encode([q.query for q in queries], batch_size=64)
    video = np.asarray(searcher.index.clips.columns.video_id.codes)
    out = []
    for sample, vector in zip(samples, query_vectors):
        rows, terms = sample.rows, tokenize([sample.query])[0]
        row = {"video": video[rows], "coverage": sample.coverage, "bm25raw": searcher.index.bm25.scores(sample.query)[rows],
               "title": title_vectors[title_of[rows]] @ vector}
        for name, retriever in per_field.items():
            row["bm25_" + name] = np.asarray(retriever.get_scores(terms), dtype=np.float64)[rows] if terms else np.zeros(len(rows))
        out.append(row)
    return out


def features(sample, extra, groups) -> np.ndarray:
    c = {k: sample.components[k] for k in COMPONENTS}
    q = np.where(np.isnan(c["question"]), (c["answer"] + c["sentence"] + c["passage"]) / 3, c["question"])
    a, s, p, b = c["answer"], c["sentence"], c["passage"], c["bm25"]
    named = {"q": q, "a": a, "s": s, "p": p}
    f = []
    if "base" in groups:
        f += [q, a, s, p, b]
    if "para" in groups:
        f.append(np.maximum(0, q - 0.8))
    if "bm25raw" in groups:
        f.append(np.log1p(extra["bm25raw"]))
    if "bm25f" in groups:
        f += [x / x.max() if x.max() > 0 else x for x in (extra["bm25_title"], extra["bm25_question"], extra["bm25_answer"])]
    if "title" in groups:
        f.append(extra["title"])
    if "cov" in groups:
        f.append(extra["coverage"])
    if "rank" in groups:
        for x in (*named.values(), b):
            order = np.argsort(-x, kind="stable")
            rank = np.empty(len(x))
            rank[order] = np.arange(len(x))
            f.append(1 / (1 + rank))
    if "z" in groups:
        f += [(x - x.mean()) / (x.std() or 1) for x in named.values()]
    if "gap" in groups:
        f += [x - x.max() for x in named.values()]
    if "ctx" in groups:
        _, inverse = np.unique(extra["video"], return_inverse=True)
        for x in (s, p, q, b, Fusion().score_many(c)):
            best = np.full(inverse.max() + 1, -np.inf)
            np.maximum.at(best, inverse, x)
            total = np.bincount(inverse, weights=x)
            f += [best[inverse], (total / np.bincount(inverse))[inverse]]
        f.append(np.log(np.bincount(inverse)[inverse]))
    return np.column_stack(f)


def fit_listwise(X: list[np.ndarray], Y: list[np.ndarray], l2: float = 1e-3) -> np.ndarray:
    """Weights minimising the mean of -log(sum of softmax over the relevant candidates) + l2 |w|^2."""
    stacked = np.vstack(X)
    mu, sd = stacked.mean(0), stacked.std(0)
    sd[sd == 0] = 1
    X = [(x - mu) / sd for x in X]

    def loss(w):
        total, grad = 0.0, np.zeros(len(w))
        for x, y in zip(X, Y):
            z = x @ w
            e = np.exp(z - z.max())
            p_all, p_rel = e / e.sum(), e[y] / e[y].sum()
            total -= np.log(e[y].sum() / e.sum())
            grad -= p_rel @ x[y] - p_all @ x
        return total / len(X) + l2 * w @ w, grad / len(X) + 2 * l2 * w

    return minimize(loss, np.zeros(X[0].shape[1]), jac=True, method="L-BFGS-B").x / sd


def figures(scores: list[np.ndarray], samples) -> dict[str, float]:
    mrr, hit, recall = [], [], []
    for z, sample in zip(scores, samples):
        ranked = sample.relevant[np.lexsort((sample.rows, -z))]
        found = np.flatnonzero(ranked[:10])
        mrr.append(1 / (found[0] + 1) if len(found) else 0.0)
        hit.append(float(ranked[:1].any()))
        recall.append(ranked[:10].sum() / max(sample.relevant.sum(), 1))
    return {"mrr@10": float(np.mean(mrr)), "hit@1": float(np.mean(hit)), "recall@10": float(np.mean(recall))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"), help="index directory to (re)build")
    parser.add_argument("--lightgbm", action="store_true", help="also LambdaMART (needs lightgbm installed)")
    args = parser.parse_args()
    data = TutorialVQA.open(args.data)
    build_index([data.clips_path()], args.index)
    searcher = Searcher.open(args.index, query_encoder="torch")
    queries = data.queries(TRAIN)
    samples = collect(searcher, queries)
    extra = extras(searcher, samples, queries)
    folds = group_folds([s.group for s in samples])
    methods = {"shipped weighted mean": None, **{f"linear, {name}": groups for name, groups in SETS.items()}}
    if args.lightgbm:
        methods["LambdaMART, all"] = ("lgb", *SETS["all"])
    for name, groups in methods.items():
        per_fold = []
        for fold in range(folds.max() + 1):
            train = [i for i, f in enumerate(folds) if f != fold and samples[i].relevant.any()]
            test = [i for i, f in enumerate(folds) if f == fold and samples[i].answerable]
            if groups is None:
                scores = [Fusion().score_many(samples[i].components) for i in test]
            else:
                X = {i: features(samples[i], extra[i], groups) for i in train + test}
                if groups[0] == "lgb":
                    import lightgbm

                    model = lightgbm.LGBMRanker(n_estimators=300, learning_rate=0.05, num_leaves=15, verbose=-1).fit(
                        np.vstack([X[i] for i in train]), np.concatenate([samples[i].relevant for i in train]),
                        group=[len(samples[i].rows) for i in train])
                    scores = [model.predict(X[i]) for i in test]
                else:
                    w = fit_listwise([X[i] for i in train], [samples[i].relevant for i in train])
                    scores = [X[i] @ w for i in test]
            per_fold.append(figures(scores, [samples[i] for i in test]))
        print(f"{name:<40} " + "  ".join(f"{k} {Figure.of([p[k] for p in per_fold])}" for k in per_fold[0]), flush=True)


if __name__ == "__main__":
    main()
