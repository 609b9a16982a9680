"""Builds on the 408 real TutorialVQA clips: raw batched encoding of the build's texts, then ``clipsearch index
build`` (the CLI, in a subprocess) into a fresh directory with an empty cache, and a rebuild with 1 % of the clips
changed. The index it leaves in ``WORK/tutorialvqa`` is the one the agreement, scale, floor and txtai stages use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tutorialvqa import TutorialVQA

from clipsearch.encode.factory import load_query_encoder
from clipsearch.encode.torch_encoder import Encoder
from clipsearch.index.build import _pieces
from clipsearch.ingest.clip_record import Clip


def tutorialvqa_builds(encoder: Encoder, work: Path) -> tuple[Path, dict]:
    """Raw batched encode of the build's texts, then the whole CLI: a full build into a fresh directory (empty
    cache), and a rebuild of the same directory with 1 % of the clips changed."""
    data = TutorialVQA.open()
    clips_file = data.clips_path()
    clips = data.clips()
    texts = sorted({text for items in _pieces(clips).values() for *_, text in items}, key=len, reverse=True)
    began = time.perf_counter()
    encoder.model.encode(texts, batch_size=32, normalize_embeddings=True)
    raw_s = time.perf_counter() - began
    out = work / "tutorialvqa"
    shutil.rmtree(out, ignore_errors=True)
    changed = work / "tutorialvqa-1pct.jsonl"
    write_changed(clips, changed, fraction=0.01)
    cli_full, full = cli_build(clips_file, out)
    began = time.perf_counter()
    load_query_encoder(encoder.ref, out / "cache")  # exported by the build: a cache hit
    cached_export_s = time.perf_counter() - began
    cli_rebuild, rebuild = cli_build(changed, out)
    return out, {
        "clips": len(clips),
        "texts": len(texts),
        "raw_encode_texts_per_s": len(texts) / raw_s,
        "full_build_s": full["seconds"],
        "full_build_texts_per_s": full["encoded"] / full["seconds"],
        "full_build_encoded": full["encoded"],
        # the build's seconds by phase: "encoder" is loading the model and exporting it to ONNX (once per index
        # directory: a later build finds the export in its cache), "embed" the encoding of the texts
        "full_build_phases_s": full["phases"],
        "full_build_embed_texts_per_s": full["encoded"] / full["phases"]["embed"],
        "rebuild_1pct_s": rebuild["seconds"],
        "rebuild_1pct_encoded": rebuild["encoded"],
        "rebuild_1pct_cached": rebuild["cached"],
        "cli_full_s": cli_full,
        "cli_rebuild_1pct_s": cli_rebuild,
        "onnx_load_cached_s": cached_export_s,
    }


def cli_build(source: Path, out: Path) -> tuple[float, dict]:
    """Wall time of ``clipsearch index build`` and what it printed: build seconds (the library's own timing,
    ONNX export included), texts encoded and taken from the cache."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "clipsearch", "index", "build", str(source), "--out", str(out),
                           "--quiet"], check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - began
    found = re.search(r"clips/s in ([\d.]+) s \((\d+) texts encoded, (\d+) from cache\)", done.stdout)
    phases = re.search(r"seconds: reading ([\d.]+), model and ONNX exports ([\d.]+), embedding ([\d.]+), "
                       r"indexing ([\d.]+)", done.stdout)
    return wall, {"seconds": float(found[1]), "encoded": int(found[2]), "cached": int(found[3]),
                  "phases": dict(zip(("read", "encoder", "embed", "index"), map(float, phases.groups())))}


def write_changed(clips: list[Clip], path: Path, fraction: float, edit: str = "edit") -> int:
    """The clips with ``fraction`` of their answers changed (one sentence added, naming ``edit``), as JSON lines."""
    step = max(1, round(1 / fraction))
    with open(path, "w", encoding="utf-8") as handle:
        for row, clip in enumerate(clips):
            record = clip.to_dict()
            if row % step == 0:
                record["answer"] += f" This part was revised in {edit} {row}."
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(clips[::step])
