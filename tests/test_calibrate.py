"""``clipsearch calibrate``: ranking weights and the "no answer" threshold fitted on labelled questions, written as a
new version of the index (hard links, nothing re-embedded), the old one kept for rollback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE_CORPUS, EXAMPLES
from typer.testing import CliRunner

from clipsearch.errors import IndexBusy
from clipsearch.evaluate.benchmark import read_queries
from clipsearch.evaluate.fitting import collect, fit_calibration, fit_fusion, mrr_at_10
from clipsearch.evaluate.metrics import abstention
from clipsearch.index.build import build_index
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.layout import current_version_id
from clipsearch.scoring.calibration import Calibration
from clipsearch.scoring.fusion import Fusion
from clipsearch.search.searcher import Searcher

QUESTIONS = EXAMPLES / "questions.jsonl"
OFFTOPIC = EXAMPLES / "offtopic.jsonl"


def invoke(*args):
    from clipsearch.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def own_index(tmp_path, example_index) -> Path:
    """A fresh example index this test may change (embeddings come from the session index's cache)."""
    out = tmp_path / "index"
    build_index(EXAMPLE_CORPUS, out, cache_dir=example_index / "cache")
    return out


def manifest(index: Path) -> dict:
    return json.loads((index / "current" / "manifest.json").read_text())


def test_calibrate_writes_a_new_version_with_fitted_weights_and_threshold(own_index):
    before = manifest(own_index)

    result = invoke("calibrate", "--index", own_index, "--queries", QUESTIONS, "--queries", OFFTOPIC)

    assert result.exit_code == 0, result.output
    after = manifest(own_index)
    assert after["version"] != before["version"]
    assert after["derived"]["from"] == before["version"]
    assert after["derived"]["answerable"] == 40 and after["derived"]["unanswerable"] == 30
    assert after["derived"]["query_files"] == ["questions.jsonl", "offtopic.jsonl"]
    assert after["calibration"] != before["calibration"]
    assert "MRR@10" in result.output and "abstention F1" in result.output
    # The data files are the old version's, linked not copied; the old version stays for rollback.
    old, new = own_index / "versions" / before["version"], own_index / "current"
    assert os.path.samefile(old / "answers.faiss", new / "answers.faiss")
    assert after["files"] == before["files"]
    searcher = Searcher.open(own_index, query_encoder="torch")
    assert searcher.calibration == Calibration.from_dict(after["calibration"])
    queries = read_queries([QUESTIONS, OFFTOPIC])
    figures = abstention([bool(q.relevant) for q in queries], [searcher.search(q.query).answered for q in queries])
    assert figures["answered_rate"] >= 0.9  # the default --answered-rate
    assert figures["f1"] >= 0.9


def test_the_threshold_keeps_the_asked_share_of_answerable_questions_answered(own_index):
    searcher = Searcher.open(own_index, query_encoder="torch")
    samples = collect(searcher, read_queries([QUESTIONS, OFFTOPIC]))

    for rate in (0.8, 0.95):
        calibration = fit_calibration(samples, searcher.fusion, answered_rate=rate)
        answered = [calibration.confidence(f) >= calibration.threshold
                    for f, s in zip(_top(samples, searcher.fusion), samples) if s.answerable]
        assert sum(answered) / len(answered) >= rate


def test_fitted_weights_never_rank_worse_than_the_starting_ones(own_index):
    searcher = Searcher.open(own_index, query_encoder="torch")
    samples = collect(searcher, read_queries([QUESTIONS]))
    start = Fusion(question=0.0, answer=0.0, sentence=0.0, passage=0.0, bm25=1.0)  # BM25 only

    fusion, mrr = fit_fusion(samples, start)

    assert mrr == mrr_at_10(samples, fusion) >= mrr_at_10(samples, start)
    assert mrr > mrr_at_10(samples, start)  # dense evidence helps paraphrases
    assert fusion.paraphrase == start.paraphrase


def test_only_answerable_questions_move_only_the_threshold(own_index):
    before = manifest(own_index)["calibration"]

    result = invoke("calibrate", "--index", own_index, "--queries", QUESTIONS, "--answered-rate", "1.0")

    assert result.exit_code == 0, result.output
    after = manifest(own_index)["calibration"]
    assert after["features"] == before["features"] and after["intercept"] == before["intercept"]
    searcher = Searcher.open(own_index, query_encoder="torch")
    assert all(searcher.search(q.query).answered for q in read_queries([QUESTIONS]))


def test_questions_naming_no_clip_of_the_index_are_refused_and_nothing_changes(own_index, tmp_path):
    version = current_version_id(own_index)
    offtopic_only = tmp_path / "offtopic.jsonl"
    offtopic_only.write_text(OFFTOPIC.read_text())

    result = invoke("calibrate", "--index", own_index, "--queries", offtopic_only)

    assert result.exit_code == 2
    assert "nothing to calibrate on" in result.output
    assert current_version_id(own_index) == version


def test_a_malformed_questions_file_names_file_and_line_and_changes_nothing(own_index, tmp_path):
    version = current_version_id(own_index)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "a", "query": "how do I fix a puncture?", "relevant": []}\n{"qid": "b", "query": ""}\n')

    result = invoke("calibrate", "--index", own_index, "--queries", bad)

    assert result.exit_code == 2
    assert f"{bad}:2: query:" in result.output
    assert current_version_id(own_index) == version


def test_calibrate_refuses_while_a_build_holds_the_index(own_index):
    import fcntl

    from clipsearch.evaluate.calibrate import calibrate

    with open(own_index / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(IndexBusy):
            calibrate(own_index, read_queries([QUESTIONS, OFFTOPIC]))
    assert ClipIndex.open(own_index).manifest.get("derived") is None


def _top(samples, fusion):
    from clipsearch.evaluate.fitting import top_features

    return top_features(samples, fusion)


def test_the_threshold_takes_the_best_f1_the_answered_rate_allows():
    import numpy as np

    from clipsearch.evaluate.fitting import choose_threshold

    confidence = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1])
    answerable = np.array([True, True, True, True, False, False, False])
    everyone = answerable.copy()

    # 0.7 answers 3 of 4 answerable and none of the unanswerable: halfway to the next confidence down (0.6).
    assert choose_threshold(confidence, answerable, everyone, 0.75) == pytest.approx(0.65)
    # Keeping all four answered forces the threshold down to 0.3: the best F1 there is at the bottom of the gap.
    assert choose_threshold(confidence, answerable, everyone, 1.0) == pytest.approx(0.25)
    # Without unanswerable questions: the highest threshold that keeps the rate.
    assert choose_threshold(confidence[:4], answerable[:4], everyone[:4], 0.75) == pytest.approx(0.7)


def test_calibrate_prints_figures_cross_validated_by_video(own_index):
    result = invoke("calibrate", "--index", own_index, "--queries", QUESTIONS, "--queries", OFFTOPIC, "--folds", "4")

    assert result.exit_code == 0, result.output
    assert "cross-validated by video, 4 folds" in result.output
    cross_validated = result.output.split("cross-validated by video")[1].splitlines()
    ranking = next(line for line in cross_validated if line.strip().startswith("ranking"))
    abstaining = next(line for line in cross_validated if line.strip().startswith("abstention"))
    assert "mrr@10" in ranking and "±" in ranking
    assert "auroc" in abstaining and "f1" in abstaining
    assert "cross-validated" not in invoke("calibrate", "--index", own_index, "--queries", QUESTIONS,
                                           "--queries", OFFTOPIC, "--folds", "0").output


def test_folds_keep_each_video_whole_and_deal_questions_without_one_apart():
    from clipsearch.evaluate.crossval import group_folds

    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 4 + ["d"] * 2 + ["e"] + [None] * 6

    folds = group_folds(groups, 3)

    for video in "abcde":
        assert len({int(f) for f, g in zip(folds, groups) if g == video}) == 1
    assert len({int(f) for f, g in zip(folds, groups) if g is not None}) == 3  # five videos over three folds
    assert sorted(np.bincount(folds[[g is None for g in groups]], minlength=3).tolist()) == [2, 2, 2]
    assert group_folds(groups, 3).tolist() == folds.tolist()  # seeded


def test_cross_validated_figures_are_measured_out_of_fold(own_index):
    from clipsearch.evaluate.crossval import cross_validate_calibration, cross_validate_fusion, group_folds
    from clipsearch.evaluate.fitting import ranking_figures

    searcher = Searcher.open(own_index, query_encoder="torch")
    samples = collect(searcher, read_queries([QUESTIONS, OFFTOPIC]))
    folds = group_folds([s.group for s in samples], 4)

    fixed = cross_validate_fusion(samples, folds, fit=lambda _: searcher.fusion)
    by_hand = [ranking_figures([s for s, f in zip(samples, folds) if f == fold], searcher.fusion)["mrr@10"]
               for fold in range(4)]
    assert fixed["mrr@10"].folds == pytest.approx(tuple(by_hand))
    assert fixed["mrr@10"].mean == pytest.approx(np.mean(by_hand))
    fitted = cross_validate_fusion(samples, folds)  # the grid fitted on three folds, measured on the fourth
    assert set(fitted) == {"mrr@10", "hit@1", "recall@10"} and len(fitted["mrr@10"].folds) == 4
    abstaining = cross_validate_calibration(samples, folds, searcher.fusion)
    assert set(abstaining) == {"auroc", "f1", "answered_rate"}
    assert 0.5 < abstaining["auroc"].mean <= 1.0  # off-topic questions are easy to tell apart, even out of fold


def test_a_calibration_without_coverage_loads_and_scores_as_before():
    old = {"form": "logistic", "intercept": -1.0, "threshold": 0.5,
           "features": {"score": 2.0, "gap": 1.0, "question": 0.0, "passage": 0.5, "sentence": 0.5, "answer": 0.0,
                        "mean5": 0.0}}
    calibration = Calibration.from_dict(old)
    parts = {"question": 0.6, "answer": 0.4, "sentence": 0.5, "passage": 0.7, "bm25": 1.0}

    assert not calibration.uses_coverage
    [confidence] = calibration.confidences([0.55], [parts])
    assert confidence == pytest.approx(1 / (1 + np.exp(-(-1.0 + 2.0 * 0.55 + 1.0 * 0.55 + 0.5 * 0.7 + 0.5 * 0.5))))
    assert calibration.to_dict() == old


def test_a_search_feeds_the_calibration_the_coverage_of_each_result(own_index):
    from clipsearch.index import bm25 as lexical

    searcher = Searcher.open(own_index, query_encoder="torch")
    assert searcher.calibration.uses_coverage  # the shipped calibration reads it
    query = "how often should I lubricate my bike chain"
    answer = searcher.search(query, k=3)

    terms = set(lexical.tokenize([query])[0])
    coverage = [len(terms & set(lexical.tokenize([lexical.clip_text(hit.clip)])[0])) / len(terms)
                for hit in answer.results]
    expected = searcher.calibration.confidences([h.score for h in answer.results], [h.scores for h in answer.results],
                                                coverage)
    assert [h.confidence for h in answer.results] == pytest.approx([round(c, 4) for c in expected])
    without = searcher.calibration.confidences([h.score for h in answer.results], [h.scores for h in answer.results])
    assert answer.results[0].confidence != pytest.approx(round(without[0], 4))  # coverage moved it
