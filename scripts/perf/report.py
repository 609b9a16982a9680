"""The report of a run: the machine it ran on (``machine``), each issue-7 target against its reference from the same
run (``targets``), and perf.json / perf.md as far as the run has got (``save``, ``markdown``)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def save(result: dict, out: Path) -> None:
    """perf.json and perf.md as far as the run has got."""
    try:
        result["targets"] = targets(result)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        result["targets"] = [{"target": "(incomplete run)", "value": float("nan"), "goal": repr(exc), "met": False}]
    (out / "perf.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "perf.md").write_text(markdown(result), encoding="utf-8")


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def targets(result: dict) -> list[dict]:
    """Each issue-7 target with the figure and its reference from this run (those the run got to)."""
    rows: list[dict] = []
    scale = {row["clips"]: row for row in result.get("scale", []) if "http" in row}
    at100k = scale.get(100_000) or (scale[max(scale)] if scale else None)

    def http_targets():
        torch_p50 = result["encoders"]["torch"]["p50"]
        one, many = at100k["http"]["one_client"], at100k["http"]["clients"]
        rows.append(target(f"HTTP p50 at {at100k['clips']} clips, 1 client / raw torch encode p50",
                           one["p50"] / torch_p50, "<= 0.5"))
        rows.append(target("p99 / p50, same run", one["p99"] / one["p50"], "<= 2"))
        rows.append(target(f"req/s, {many['clients']} clients / 1 client", many["req_per_s"] / one["req_per_s"],
                           ">= 1.6"))
        if "floor" in result:
            floor = result["floor"]["floor"]["p50"]
            rows.append(target("floor: HTTP p50 of encoding alone (no search) / raw torch encode p50",
                               floor / torch_p50, "<= 0.5"))
        if "txtai" in result:
            rows.append(target(f"req/s, {many['clients']} clients / txtai's, same clients",
                               many["req_per_s"] / result["txtai"]["clients"]["req_per_s"], ">= 3"))
        if "txtai" in result and "ours_408" in result:
            rows.append(target(f"req/s, {many['clients']} clients, both serving the 408 clips: ours / txtai's",
                               result["ours_408"]["clients"]["req_per_s"]
                               / result["txtai"]["clients"]["req_per_s"], ">= 3"))

    def scale_targets():
        if 1_000_000 in scale and 100_000 in scale:
            rows.append(target("1M p50 / 100k p50", scale[1_000_000]["http"]["one_client"]["p50"]
                               / scale[100_000]["http"]["one_client"]["p50"], "<= 1.5"))
        for row in scale.values():
            worst = min((v["recall@10"] for v in row["recall"].values() if "recall@10" in v), default=None)
            if worst is not None:
                rows.append(target(f"worst HNSW field recall@10 at {row['clips']} clips", worst, ">= 0.98"))
            rows.append(target(f"index RAM at {row['clips']} clips, MB", row["index_ram_mb"], "<= 2500 (at 1M)"))

    def build_targets():
        build = result["tutorialvqa"]
        rows.append(target("full build / raw batched encode, texts/s",
                           build["full_build_texts_per_s"] / build["raw_encode_texts_per_s"], ">= 0.9"))
        rows.append(target("full build's embedding phase / raw batched encode, texts/s (model load and ONNX "
                           f"export, {build['full_build_phases_s']['encoder']:.1f} s, left out)",
                           build["full_build_embed_texts_per_s"] / build["raw_encode_texts_per_s"], ">= 0.9"))
        rows.append(target("1 % rebuild / full build, 408 clips (build time)",
                           build["rebuild_1pct_s"] / build["full_build_s"], "<= 0.05 (at scale)"))
        rows.append(target("1 % rebuild / full build, 408 clips, CLI wall",
                           build["cli_rebuild_1pct_s"] / build["cli_full_s"], "<= 0.35"))

    def agreement_target():
        rows.append(target("ONNX top-10 = torch top-10, dev questions", result["agreement"]["share"], ">= 0.99"))

    for part in (http_targets if at100k else None, scale_targets, build_targets, agreement_target):
        try:
            if part:
                part()
        except (KeyError, TypeError, ZeroDivisionError):
            pass  # that stage did not run or failed; its error is in the JSON
    return rows


def target(name: str, value: float, goal: str) -> dict:
    bound = float(goal.split()[1])
    met = value <= bound if goal.startswith("<=") else value >= bound
    return {"target": name, "value": round(value, 4), "goal": goal, "met": met}


def http_row(row: dict, http: dict) -> str:
    one, many = http["one_client"], http["clients"]
    after = http.get("server_rss_after_mb", {})
    encoder = " ".join([str(http["query_encoder"]), *http.get("serve_args", [])])
    return (
        f"| {row['clips']} | {encoder} | {one['p50']:.1f} / {one['p95']:.1f} / {one['p99']:.1f} | "
        f"{one['req_per_s']:.1f} | {many['p50']:.1f} / {many['p99']:.1f} ({many['clients']}) | "
        f"{many['req_per_s']:.1f} | {one['server_cpu_s'] + many['server_cpu_s']:.1f} | "
        f"{one['client_cpu_s'] + many['client_cpu_s']:.1f} | {row['index_ram_mb']:.0f} "
        f"({row.get('index_ram_anon_mb', float('nan')):.0f} / {row.get('index_ram_file_mb', float('nan')):.0f}) | "
        f"{http['server_peak_rss_mb']:.0f} ({after.get('RssAnon', float('nan')):.0f} / "
        f"{after.get('RssFile', float('nan')):.0f}) |"
    )


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# clipsearch performance (scripts/bench_perf.py)", "",
        f"{m['cpus']} CPUs ({m['processor']}), Python {m['python']}, started {m['started']}; load average "
        f"{m['load_before'][0]:.2f} before, {m.get('load_after', [float('nan')])[0]:.2f} after (the machine is "
        "shared: figures are medians and ratios within this run).", "",
        "## Targets", "", "| target | value | goal | met |", "|---|---:|---|---|",
    ]
    lines += [f"| {t['target']} | {t['value']} | {t['goal']} | {'yes' if t['met'] else 'NO'} |"
              for t in result["targets"]]
    lines += ["", "## Query encoders (one question at a time, ms)", "", "| encoder | p50 | p95 | p99 |",
              "|---|---:|---:|---:|"]
    for name, value in result.get("encoders", {}).items():
        if isinstance(value, dict):
            lines.append(f"| {name} | {value['p50']:.2f} | {value['p95']:.2f} | {value['p99']:.2f} |")
        elif name != "torch_threads":
            lines.append(f"| {name} | {value} | | |")
    lines += ["", f"torch ran with {result.get('encoders', {}).get('torch_threads')} threads.", "",
              "## Builds (408 TutorialVQA clips)", "", "```", json.dumps(result.get("tutorialvqa"), indent=1), "```", "",
              "## ONNX vs torch", "", "```", json.dumps(result.get("agreement")), "```", "", "## Scale", ""]
    lines += ["| clips | encoder | 1 client p50 / p95 / p99 ms | 1 client req/s | "
              "N clients p50 / p99 ms | N clients req/s | server CPU s | client CPU s | index RAM MB (anon / file) | "
              "server peak RSS MB (at the end: anon / file) |",
              "|---:|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in result.get("scale", []):
        if "skipped" in row or "error" in row:
            lines.append(f"| {row.get('clips', '?')} | {row.get('skipped') or row.get('error')} | | | | | | | | |")
            continue
        for key in ("http", "http_1_thread", "http_2_threads"):
            if key in row:
                lines.append(http_row(row, row[key]))
    for row in result.get("scale", []):
        if "recall" in row:
            lines += ["", f"HNSW recall against exact at {row['clips']} clips: `{json.dumps(row['recall'])}`"]
    stages = [row for row in result.get("scale", []) if "search_stages_ms" in row]
    if stages:
        names = list(stages[0]["search_stages_ms"])
        lines += ["", "## Where a search's time goes (p50 ms, in process; `candidates`: clips ranked)", "",
                  "| stage | " + " | ".join(f"{row['clips']} clips" for row in stages) + " |",
                  "|---|" + "---:|" * len(stages)]
        lines += [f"| {name} | " + " | ".join(str(row["search_stages_ms"].get(name, "")) for row in stages) + " |"
                  for name in names]
    if result.get("verify", {}).get("rows"):
        lines += ["", "## Checking a version against its manifest at load (issue 19)", "",
                  verify_table(result["verify"]["rows"])]
    if "floor" in result:
        lines += ["", "## Floor of an HTTP search (1 client: encoding only / HTTP only)", "", "```",
                  json.dumps(result["floor"], indent=1), "```"]
    if "ours_408" in result:
        lines += ["", "## clipsearch on the 408 clips (as txtai below)", "", "```",
                  json.dumps(result["ours_408"], indent=1), "```"]
    if "milvus" in result:
        lines += milvus_markdown(result["milvus"])
    if "txtai" in result:
        t = result["txtai"]
        lines += ["", "## txtai API (408 clips, hybrid)", "", "```", json.dumps(t, indent=1), "```"]
    lines += ["", "Scale corpora: real clips first, then real questions with answers recombined from real "
              "sentences; vectors are real vectors mixed with other real vectors plus Gaussian noise (see the "
              "script's docstring).", ""]
    return "\n".join(lines)


def milvus_markdown(found: dict) -> list[str]:
    """The Milvus stage: both backends under the same load at each size, build and alias-switch time, and a 1 %
    upsert against a full rebuild."""
    lines = ["", f"## FAISS and Milvus ({found.get('uri', 'error')})", ""]
    if "error" in found:
        return lines + [f"failed: {found['error']}"]
    lines += ["| clips | backend | 1 client p50 / p95 / p99 ms | 1 client req/s | N clients p50 / p99 ms | "
              "N clients req/s | build s | alias switch ms |", "|---:|---|---|---:|---|---:|---:|---:|"]
    for row in found["sizes"]:
        if "skipped" in row or "error" in row:
            lines.append(f"| {row['clips']} | {row.get('skipped') or row.get('error')} | | | | | | |")
            continue
        for backend, http in row["http"].items():
            one, many = http["one_client"], http["clients"]
            built = (f"{row['build_s']:.1f} | {row['alias_switch_ms']:.2f}" if backend == "milvus" else " | ")
            lines.append(f"| {row['clips']} | {backend} | {one['p50']:.1f} / {one['p95']:.1f} / {one['p99']:.1f} | "
                         f"{one['req_per_s']:.1f} | {many['p50']:.1f} / {many['p99']:.1f} ({many['clients']}) | "
                         f"{many['req_per_s']:.1f} | {built} |")
    lines += ["", "Upsert of 1 % of the 408 TutorialVQA clips against a full rebuild (warm embedding cache):", "",
              "```", json.dumps(found.get("upsert_1pct"), indent=1), "```"]
    return lines


def verify_table(rows: list[dict]) -> str:
    """The figures as a markdown table."""
    lines = ["| clips | files, GB (memory-mapped GB) | load, fast checks: cold / warm s | load, full verification: "
             "cold / warm s | hashing alone, fast / full (warm) s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['clips']:,} | {r['files']}, {r['bytes'] / 1e9:.2f} ({r['mapped_bytes'] / 1e9:.2f}) | "
            f"{r['open_fast_cold_s']:.2f} / {r['open_fast_warm_s']:.2f} | {r['open_full_cold_s']:.2f} / "
            f"{r['open_full_warm_s']:.2f} | {r['hash_fast_warm_s']:.2f} / {r['hash_full_warm_s']:.2f} |"
        )
    return "\n".join(lines)
