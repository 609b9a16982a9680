"""Fine-tune the encoder on labelled questions, refit the ranking weights for it, and measure before and after.

``tune`` trains with sentence-transformers' ``MultipleNegativesRankingLoss`` (in-batch negatives: each question
against every other clip text of its batch) on pairs of a question and the answer of a clip it names (optionally
also that clip's question), plus the corpus' own question -> answer pairs. When no labelled questions are given it trains on the corpus' own
question -> answer pairs. Then:

1. ranking weights are refitted for the tuned model (a weight grid, :func:`clipsearch.evaluate.fitting.fit_fusion`) on a
   slice of the training videos that was kept out of training, and written into the model directory as
   ``clipsearch_ranking.json``, which ``index build --model DIR`` records in the manifest;
2. the default model (with the shipped weights) and the tuned one (with its weights) are benchmarked on the dev
   questions, which never take part in training or fitting.

The model directory loads with ``--model DIR`` everywhere. An index built with it is uncalibrated until
``clipsearch calibrate`` fits its abstention on questions of that corpus (``answered`` is then true whenever there are
results).

Example usage::

    result = tune(["clips.jsonl"], ["queries-train.jsonl"], "models/tuned", dev_files=["queries-dev.jsonl"])
    print(result.before["mrr@10"], "->", result.after["mrr@10"])
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clipsearch.encode.torch_encoder import Encoder
from clipsearch.errors import ClipsearchError
from clipsearch.evaluate import metrics
from clipsearch.evaluate.benchmark import LabelledQuery, read_queries
from clipsearch.evaluate.fitting import collect, fit_fusion
from clipsearch.index.build import RANKING_FILE, build_index
from clipsearch.ingest.clip_record import Clip
from clipsearch.ingest.corpus import read_clips
from clipsearch.search.searcher import Searcher

#: Share of the training videos held out of training to fit the ranking weights, and, without ``dev_files``,
#: share held out as the dev set.
HELD_OUT_SHARE = 0.1
SEED = 13

#: say(message) reports progress.
Say = Callable[[str], None]


@dataclass
class TuneOptions:
    """Training settings. Two epochs over the 3.7k TutorialVQA training questions took 25 minutes on 2 cores; they
    gave dev MRR@10 0.633 against 0.614 after one epoch (0.585 untuned), and transcript moment Hit@1 0.312 against
    0.300 (0.282 untuned)."""

    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.1
    max_seq_length: int = 128
    #: Also pair each question with the question of the clip it names (not only its answer): twice the steps.
    question_pairs: bool = False
    seed: int = SEED


@dataclass
class TuneResult:
    """What ``tune`` wrote and measured."""

    out: Path
    train_pairs: int
    train_questions: int
    fit_questions: int
    dev_questions: int
    fusion: dict
    before: dict
    after: dict
    seconds: dict = field(default_factory=dict)


def tune(
    clip_files: Sequence[str | Path],
    query_files: Sequence[str | Path],
    out: str | Path,
    *,
    dev_files: Sequence[str | Path] = (),
    model: str | Path | None = None,
    options: TuneOptions | None = None,
    work: str | Path | None = None,
    say: Say = lambda message: None,
) -> TuneResult:
    """Fine-tune ``model`` (default: the packaged one) and write it to ``out``, with ranking weights fitted for it.

    Args:
        clip_files: the clips the questions name (any corpus format).
        query_files: labelled questions (``{"qid", "query", "relevant"}``); none: the clips' own questions.
        out: the model directory to write; must not exist or be empty. Written whole or not at all.
        dev_files: questions measured before and after; default a seeded ~10 % of the questions, by video.
        work: scratch directory for the benchmark indexes and their embedding cache (default a temporary one).

    Raises:
        CorpusError: an input is malformed. ClipsearchError: ``out`` is not empty, or nothing to train on.
    """
    began = time.perf_counter()
    options = options or TuneOptions()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ClipsearchError(f"{out} exists and is not empty; tune writes a new model directory")
    clips = read_clips(clip_files)
    by_id = {clip.id: clip for clip in clips}
    labelled = read_queries(query_files) if query_files else _own_questions(clips)
    dev = read_queries(dev_files) if dev_files else []
    if not dev:
        labelled, dev = split_by_video(labelled, by_id, HELD_OUT_SHARE, options.seed)
    dev_text = {q.query.strip().lower() for q in dev}
    train, fit = split_by_video(labelled, by_id, HELD_OUT_SHARE, options.seed + 1)
    pairs = training_pairs(train, by_id, options.question_pairs) + ([] if not query_files else _corpus_pairs(clips))
    if not pairs:
        raise ClipsearchError("no training pairs: no question names a clip of the corpus")
    seconds: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="clipsearch-tune-") as scratch:
        work = Path(work) if work is not None else Path(scratch)
        base = Encoder.load(model)
        say(f"benchmarking {base.name} on {len(dev)} dev questions")
        started = time.perf_counter()
        base_searcher = _searcher(clip_files, work / "base", model, work / "cache")
        before = evaluate(base_searcher, dev)
        seconds["before"] = time.perf_counter() - started

        say(f"training on {len(pairs)} pairs from {len(train)} questions ({options.epochs:g} epoch(s))")
        started = time.perf_counter()
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # beside out: one rename at the end
        try:
            fine_tune(base, pairs, staging, options, say)
            seconds["train"] = time.perf_counter() - started

            say(f"fitting ranking weights on {len(fit)} held-out training questions")
            started = time.perf_counter()
            tuned = _searcher(clip_files, work / "tuned", staging, work / "cache")
            fusion, _ = fit_fusion(collect(tuned, fit), tuned.fusion)
            (staging / RANKING_FILE).write_text(json.dumps(fusion.to_dict(), indent=2) + "\n", encoding="utf-8")
            seconds["fit"] = time.perf_counter() - started

            say(f"benchmarking the tuned model on {len(dev)} dev questions")
            started = time.perf_counter()
            tuned.fusion = fusion
            after = evaluate(tuned, dev)
            seconds["after"] = time.perf_counter() - started
            if out.exists():
                out.rmdir()  # empty, checked above
            os.replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    seconds["total"] = time.perf_counter() - began
    repeated = sum(1 for q in train if q.query.strip().lower() in dev_text)
    if repeated:
        say(f"note: {repeated} training question(s) repeat a dev question word for word")
    return TuneResult(out, len(pairs), len(train), len(fit), len(dev), fusion.to_dict(), before, after, seconds)


def evaluate(searcher: Searcher, queries: Sequence[LabelledQuery], k: int = 10) -> dict[str, float | None]:
    """The ranking metrics of ``bench`` (Recall@1/5/10, MRR@10, nDCG@10, Hit@1), questions encoded in batches."""
    known = {clip.id for clip in searcher.index.clips}
    vectors = searcher.encoder.encode([q.query for q in queries], batch_size=64)
    rankings = {}
    for query, vector in zip(queries, vectors):
        answer = searcher.search_encoded(query.query, vector[None], k)
        rankings[query.qid] = [[hit.clip.id, *hit.overlapping] for hit in answer.results]
    return metrics.ranking_metrics({q.qid: [i for i in q.relevant if i in known] for q in queries}, rankings)


def split_by_video(
    queries: Sequence[LabelledQuery], clips: dict[str, Clip], share: float, seed: int
) -> tuple[list[LabelledQuery], list[LabelledQuery]]:
    """(kept, held out): the questions about a seeded ``share`` of the videos are held out (a clip without a video
    id is its own "video"), so held-out questions are about clips training never saw."""
    def videos_of(query: LabelledQuery) -> set[str]:
        return {clips[i].video_id or i for i in query.relevant if i in clips}

    videos = sorted({v for q in queries for v in videos_of(q)})
    if len(videos) < 2:
        raise ClipsearchError("the questions name clips of fewer than two videos: cannot hold any out")
    held = set(random.Random(seed).sample(videos, max(1, round(len(videos) * share))))
    kept = [q for q in queries if not (videos_of(q) & held)]
    out = [q for q in queries if videos_of(q) & held]
    return kept, out


def training_pairs(
    queries: Sequence[LabelledQuery], clips: dict[str, Clip], with_questions: bool = False
) -> list[tuple[str, str]]:
    """(question, clip text) for each relevant clip of each question: its answer, and with ``with_questions`` its
    question too (when it has one)."""
    pairs = []
    for query in queries:
        for clip_id in query.relevant:
            clip = clips.get(clip_id)
            if clip is None:
                continue
            pairs.append((query.query, clip.answer))
            if with_questions and clip.question.strip() and clip.question != query.query:
                pairs.append((query.query, clip.question))
    return pairs


def fine_tune(
    encoder: Encoder, pairs: Sequence[tuple[str, str]], out: Path, options: TuneOptions, say: Say = lambda m: None
) -> None:
    """Train a copy of ``encoder``'s model on (anchor, positive) pairs with in-batch negatives; save it to ``out``."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from sentence_transformers.training_args import BatchSamplers
    from transformers import TrainerCallback

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                say(f"  step {state.global_step}/{state.max_steps}, loss {logs['loss']:.3f}")

    model = SentenceTransformer(str(encoder.ref.path), device="cpu")
    model.max_seq_length = options.max_seq_length
    shuffled = list(pairs)
    random.Random(options.seed).shuffle(shuffled)
    data = Dataset.from_dict({"anchor": [a for a, _ in shuffled], "positive": [p for _, p in shuffled]})
    with tempfile.TemporaryDirectory(prefix="clipsearch-trainer-") as checkpoints:
        args = SentenceTransformerTrainingArguments(
            output_dir=checkpoints,
            num_train_epochs=options.epochs,
            per_device_train_batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            warmup_steps=options.warmup,  # a float: a share of the steps
            seed=options.seed,
            # The same clip twice in a batch would be its own negative.
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to="none",
            logging_steps=25,
            disable_tqdm=True,
            use_cpu=True,
        )
        loss = losses.MultipleNegativesRankingLoss(model)
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=data, loss=loss, callbacks=[Report()]
        )
        trainer.train()
    model.max_seq_length = encoder.model.max_seq_length  # serve with the base model's limit
    model.save(str(out))


def _searcher(clip_files, index_dir: Path, model, cache: Path) -> Searcher:
    result = build_index(clip_files, index_dir, model=model, cache_dir=cache, keep_versions=1)
    return Searcher(result.index, Encoder.load(model))


def _own_questions(clips: Sequence[Clip]) -> list[LabelledQuery]:
    """Without labelled questions: each clip's own question names the clip."""
    return [LabelledQuery(f"own-{c.id}", c.question, (c.id,)) for c in clips if c.question.strip()]


def _corpus_pairs(clips: Sequence[Clip]) -> list[tuple[str, str]]:
    """The corpus' own question -> answer pairs, added to the labelled ones."""
    return [(c.question, c.answer) for c in clips if c.question.strip()]
