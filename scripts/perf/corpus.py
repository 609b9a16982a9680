"""What the benchmark asks and indexes: the pool of real TutorialVQA questions, and the synthetic scale corpus.

A scale corpus is the 408 real clips with their real vectors, then clips recombined from real answer sentences
whose vectors are real ones mixed with other real ones plus noise (``MIX``, ``NOISE``, ``REPLACE``; the whole
recipe, and why, is in the docstring of scripts/bench_perf.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from tutorialvqa import DEV, TRAIN, TutorialVQA

from clipsearch.index import ann
from clipsearch.index.build import _pieces
from clipsearch.ingest.clip_record import Clip

NOISE = 0.02  # per dimension: |noise| ~ 0.39, cosine to the real vector ~ 0.93
REPLACE = 0.0  # of a real answer's sentences, this share (at least one) is replaced by other answers' sentences
MIX = 0.4  # a synthetic vector is (1 - w) * a real one + w * another real one, w uniform in [0, MIX], plus noise


def question_pool() -> list[str]:
    """Distinct TutorialVQA questions, dev first then train, in a fixed shuffled order."""
    data = TutorialVQA.open()
    seen: dict[str, None] = {}
    for name in (DEV, TRAIN):
        for query in data.queries(name):
            seen.setdefault(query.query.strip(), None)
    pool = list(seen)
    random.Random(7).shuffle(pool)
    return pool


def scale_corpus(size: int, real: list[Clip], vectors_of: dict[str, np.ndarray], work: Path, seed: int = 0):
    """``size`` clips (the real ones first) and their vectors by kind, as ``_write_version`` takes them.

    Sentence and passage vectors are written to float16 files in ``work`` (memory-mapped: at a million clips they
    are 10 million vectors); question and answer vectors are float32 in RAM.
    """
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    real_pieces = _pieces(real)
    dim = next(iter(vectors_of.values())).shape[0]
    # every real sentence, its text and vector; the sentence ids of each real clip
    sentence_text = [text for *_, text in real_pieces["sentence"]]
    sentence_vec = np.stack([vectors_of[t] for t in sentence_text])
    own_ids: list[list[int]] = [[] for _ in real]
    for i, (row, *_rest) in enumerate(real_pieces["sentence"]):
        own_ids[row].append(i)
    question_vec = np.stack([vectors_of[c.question] if c.question.strip() else vectors_of[c.answer] for c in real])
    answer_vec = np.stack([vectors_of[c.answer] for c in real])

    clips = list(real)
    ids_of: list[list[int]] = []
    for j in range(len(real), size):
        base = real[j % len(real)]
        own = list(own_ids[j % len(real)])
        for at in pick.sample(range(len(own)), max(1, round(len(own) * REPLACE))):
            own[at] = pick.randrange(len(sentence_text))
        if len(own) > 2:
            pick.shuffle(own)
        ids_of.append(own)
        start = 30.0 * (j % 7)
        clips.append(Clip(id=f"syn-{j}", question=base.question, answer=" ".join(sentence_text[i] for i in own),
                          start=start, end=start + 25.0, source=base.source, video_id=f"syn-{j // 7}",
                          video_title=base.video_title, url=base.url))

    def mixed(vectors: np.ndarray, partners: np.ndarray) -> np.ndarray:
        """Each vector moved towards another real one (weight 0-0.4) plus noise: a continuum, not clusters."""
        weight = rng.uniform(0.0, MIX, size=(len(vectors), 1)).astype(np.float32)
        out = (1 - weight) * vectors + weight * partners
        out += NOISE * rng.standard_normal(out.shape, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    counts = np.array([len(ids) for ids in ids_of], dtype=np.int64)
    windows = np.maximum(1, counts - passages_window() + 1)
    real_counts = {kind: len(items) for kind, items in real_pieces.items()}
    totals = {"sentence": real_counts["sentence"] + int(counts.sum()),
              "passage": real_counts["passage"] + int(windows.sum())}
    span_matrix = {kind: np.lib.format.open_memmap(work / f"scale-{size}-{kind}.f16.npy", mode="w+",
                                                   dtype=np.float16, shape=(totals[kind], dim)) for kind in totals}
    tables = {kind: np.zeros((totals[kind], 3), dtype=np.int64) for kind in totals}
    dense = {kind: np.zeros((size if kind == "answer" else len(real_pieces["question"]) + size - len(real), dim),
                            dtype=np.float32) for kind in ("question", "answer")}
    question_rows = []
    # the real clips: their real vectors
    for kind, items in real_pieces.items():
        for i, (row, start, end, text) in enumerate(items):
            target = span_matrix[kind] if kind in totals else dense[kind]
            target[i] = vectors_of[text]
            if kind in totals:
                tables[kind][i] = (row, start, end)
            elif kind == "question":
                question_rows.append(row)
    # the synthetic clips, a chunk at a time
    at = {kind: real_counts[kind] for kind in real_counts}
    for first in range(0, len(ids_of), 50_000):
        chunk = ids_of[first : first + 50_000]
        rows = np.arange(len(real) + first, len(real) + first + len(chunk))
        flat = np.fromiter((i for ids in chunk for i in ids), dtype=np.int64)
        lengths = np.array([len(sentence_text[i]) for i in flat], dtype=np.int64)
        n = counts[first : first + len(chunk)]
        owner = np.repeat(np.arange(len(chunk)), n)
        begins = np.concatenate(([0], np.cumsum(n)[:-1]))
        # character offsets: sentences joined by one space
        ends_cum = np.cumsum(lengths + 1)
        clip_base = (ends_cum - lengths - 1)[begins][owner]
        char_start = ends_cum - lengths - 1 - clip_base
        char_end = char_start + lengths
        vecs = mixed(sentence_vec[flat], sentence_vec[rng.integers(0, len(sentence_vec), len(flat))])
        span_matrix["sentence"][at["sentence"] : at["sentence"] + len(flat)] = vecs
        tables["sentence"][at["sentence"] : at["sentence"] + len(flat)] = np.stack(
            [rows[owner], char_start, char_end], axis=1)
        at["sentence"] += len(flat)
        # passages: windows of consecutive sentences (mean vector plus noise)
        cum = np.concatenate([np.zeros((1, dim), np.float32), np.cumsum(vecs, axis=0, dtype=np.float32)])
        w = windows[first : first + len(chunk)]
        p_owner = np.repeat(np.arange(len(chunk)), w)
        p_first = begins[p_owner] + (np.arange(int(w.sum())) - np.repeat(np.cumsum(w) - w, w))
        p_last = np.minimum(p_first + passages_window(), begins[p_owner] + n[p_owner])  # exclusive
        means = (cum[p_last] - cum[p_first]) / (p_last - p_first)[:, None]
        means += NOISE * rng.standard_normal(means.shape, dtype=np.float32)
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        span_matrix["passage"][at["passage"] : at["passage"] + len(means)] = means
        tables["passage"][at["passage"] : at["passage"] + len(means)] = np.stack(
            [rows[p_owner], char_start[p_first], char_end[p_last - 1]], axis=1)
        at["passage"] += len(means)
        # answers and questions: their real clip's vectors mixed with another real clip's (the mean of an answer's
        # sentence vectors is far blurrier than the vector of its text: every answer ends up near every other)
        base = rows % len(real)
        dense["answer"][rows] = mixed(answer_vec[base], answer_vec[rng.integers(0, len(real), len(chunk))])
        q_at = len(real_pieces["question"]) + first
        dense["question"][q_at : q_at + len(chunk)] = mixed(
            question_vec[base], question_vec[rng.integers(0, len(real), len(chunk))])
    question_rows = np.concatenate([np.array(question_rows, dtype=np.int64), np.arange(len(real), size)])
    vectors = {
        "question": (dense["question"], np.stack([question_rows, np.zeros_like(question_rows),
                                                  np.array([len(clips[r].question) for r in question_rows])], 1)),
        "answer": (dense["answer"], np.stack([np.arange(size), np.zeros(size, np.int64),
                                              np.array([len(c.answer) for c in clips])], 1)),
        "sentence": (span_matrix["sentence"], tables["sentence"]),
        "passage": (span_matrix["passage"], tables["passage"]),
    }
    return clips, vectors


def passages_window() -> int:
    from clipsearch.index.passages import WINDOW

    return WINDOW


def estimated_index_gb(size: int, per_kind: dict[str, float]) -> float:
    """RAM of the vectors and HNSW links at ``size`` clips, by the type each field gets (float16 files and
    rank-only fields are on disk)."""
    limits, links = ann.Limits(), 2 * ann.HNSW_PARAMS["M"] * 4 + 40
    per_type = {ann.FLAT: 384 * 4, ann.HNSW: 384 * 4 + links, ann.IVF_SQ8: 384 + 16, ann.RANK_ONLY: 0}
    total = 0.0
    for kind, per_clip in per_kind.items():
        count = int(size * per_clip)
        total += count * per_type[limits.type_for(count, span=kind in ("sentence", "passage"))]
    return total / 1e9
