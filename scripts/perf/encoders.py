"""The query encoders, one question at a time: raw ``SentenceTransformer.encode`` against the ONNX encoder (fp32 and
int8, 1 and 2 threads); and how often a search with the ONNX encoder finds torch's top 10 (``agreement``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tutorialvqa import DEV, TutorialVQA

from clipsearch.encode.factory import load_query_encoder
from clipsearch.encode.torch_encoder import Encoder
from clipsearch.evaluate.metrics import percentiles
from clipsearch.search.searcher import Searcher


def timed_ms(function, items) -> list[float]:
    times = []
    for item in items:
        began = time.perf_counter()
        function(item)
        times.append((time.perf_counter() - began) * 1000)
    return times


def encoder_latency(encoder: Encoder, questions: list[str], work: Path) -> dict:
    """One question at a time: raw SentenceTransformer.encode (default threads) and the ONNX encoder."""
    import torch

    model = encoder.model
    for question in questions[:20]:
        model.encode(question)
    found = {"torch_threads": torch.get_num_threads(),
             "torch": percentiles(timed_ms(lambda q: model.encode(q), questions))}
    for precision in ("fp32", "int8"):
        for threads in (1, 2):
            onnx = load_query_encoder(encoder.ref, work / "cache", precision=precision, threads=threads)
            if getattr(onnx, "precision", None) != precision:  # refused: torch, or fp32 in place of int8
                found[f"onnx_{precision}"] = "refused: " + json.dumps(_record(work / "cache", precision))
                break
            for question in questions[:20]:
                onnx.encode([question])
            found[f"onnx_{precision}_{threads}t"] = percentiles(timed_ms(lambda q: onnx.encode([q]), questions))
    return found


def _record(cache: Path, precision: str) -> dict:
    files = sorted((cache / "onnx").glob(f"*-{precision}-*.json"))
    return json.loads(files[-1].read_text()) if files else {}


def agreement(index_dir: Path, encoder: Encoder) -> dict:
    """Share of the dev questions whose top-10 clip ids with the ONNX encoder equal torch's: the shipped fp32
    export (``share``), and the int8 one (``int8``) when it verifies on this machine."""
    import torch

    torch.set_num_threads(1)  # as the service runs it; the vectors do not depend on it
    queries = [q.query for q in TutorialVQA.open().queries(DEV)]
    onnx = Searcher.open(index_dir)
    torch_searcher = Searcher(onnx.index, encoder)
    reference = [[h.clip.id for h in torch_searcher.search(q).results] for q in queries]

    def same_as_torch(searcher: Searcher) -> dict:
        same = sum([h.clip.id for h in searcher.search(q).results] == ids for q, ids in zip(queries, reference))
        return {"encoder": type(searcher.encoder).__name__, "precision": getattr(searcher.encoder, "precision", None),
                "queries": len(queries), "same_top10": same, "share": same / len(queries)}

    found = same_as_torch(onnx)
    int8 = Searcher(onnx.index, load_query_encoder(encoder.ref, index_dir / "cache", precision="int8"))
    if getattr(int8.encoder, "precision", None) == "int8":
        found["int8"] = same_as_torch(int8)
    else:
        found["int8"] = "refused: " + json.dumps(_record(index_dir / "cache", "int8"))
    return found
