"""Crash tests (issue 19): a build is SIGKILLed at random points of its file operations, in the middle of the
switch of ``current``, and at random moments; each time the served version still answers, `clipsearch index
verify` passes, and the next build succeeds (and removes what the dead one left).

The builds run in children of ``build_killer.py`` (clipsearch imported once, a fork per build), the real CLI
over the example corpus plus one new clip each (so each build embeds and writes the embedding cache too); a live
server watches the index throughout. ``pytest tests/test_crash.py --crash-kills 20`` kills at 20 random points.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLE_CORPUS, LiveServer
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.index.build import build_index
from clipsearch.index.layout import current_version_id

HERE = Path(__file__).resolve().parent
SEED = 19
#: Kills at moments (seconds after the build starts) rather than at file operations: inside the embedding, the
#: index building, wherever the build is then.
TIMER_KILLS = (0.3, 1.2)


class Killer:
    """The build_killer.py process: one command a line in, one answer a line out."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, str(HERE / "build_killer.py")], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd=HERE)

    def build(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"build_killer.py exited with {self.process.poll()}"
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(30)


@pytest.fixture(scope="module")
def crash(tmp_path_factory, example_index, request):
    """An index of the example corpus (its embedding cache and ONNX export copied from the example index), the
    killer, the events of one whole build, and a live server watching the index."""
    work = tmp_path_factory.mktemp("crash")
    root = work / "index"
    cache = work / "cache"
    shutil.copytree(example_index / "cache", cache)
    build_index(EXAMPLE_CORPUS, root, cache_dir=cache)
    killer = Killer()
    state = {"root": root, "work": work, "killer": killer, "n": 0, "count": request.config.getoption("crash_kills"),
             "options": ["--keep-versions", "2", "--cache-dir", str(cache)]}
    dry = killer.build(args=[*map(str, corpus(state)), *state["options"]], out=str(root))
    assert (dry["signal"], dry["exit"]) == (None, 0), dry
    state["events"] = dry["events"]
    server = LiveServer(root, "--reload-interval", "0.2", "--cache-dir", str(cache))
    state["server"] = server
    yield state
    server.stop()
    killer.close()


def corpus(state: dict) -> list[Path]:
    """The example corpus and one clip no earlier build had (its texts are embedded and cached by the build)."""
    state["n"] += 1
    extra = state["work"] / f"extra-{state['n']}.jsonl"
    extra.write_text(json.dumps({
        "id": f"extra-{state['n']}", "question": f"What does test build number {state['n']} add?",
        "answer": f"Build number {state['n']} adds this one clip about crash number {state['n']}.",
        "start": 0, "end": 10, "source": "Crash Lab"}) + "\n")
    return [*EXAMPLE_CORPUS, extra]


def kill_points(events: list, count: int) -> list[tuple[str, int]]:
    """(name, event number): ``count`` random file operations of a build, and the switch of ``current``: just
    before its temporary link is made, once it is made (not yet renamed over ``current``), and once renamed (the
    directory not yet synced)."""
    link = next(i for i, (event, path) in enumerate(events, 1) if event == "os.symlink" and path.startswith(".current"))
    rename = next(i for i, (event, path) in enumerate(events, 1) if event == "os.rename" and path.startswith(".current"))
    points = sorted(random.Random(SEED).sample(range(1, len(events) + 1), min(count, len(events))))
    chosen = [(f"random {n}/{len(events)} {events[n - 1][0]} {events[n - 1][1]}", n) for n in points]
    return chosen + [("switch: before the link", link), ("switch: link made, not renamed", rename),
                     ("switch: renamed, directory not synced", rename + 1)]


def pytest_generate_tests(metafunc):
    if "kill" in metafunc.fixturenames:
        count = metafunc.config.getoption("crash_kills")
        cases = [("event", i) for i in range(count)] + [("switch", i) for i in range(3)]
        cases += [("timer", s) for s in TIMER_KILLS]
        metafunc.parametrize("kill", cases, ids=[f"{kind}-{n}" for kind, n in cases])


def test_a_killed_build_leaves_the_served_version_answering_a_verified_index_and_a_next_build_that_works(
    crash, kill
):
    root, killer, server = crash["root"], crash["killer"], crash["server"]
    before = current_version_id(root)
    kind, n = kill
    args = [*map(str, corpus(crash)), *crash["options"]]
    if kind == "timer":
        done = killer.build(args=args, out=str(root), kill_after=n)
    else:
        chosen = kill_points(crash["events"], crash["count"])[n if kind == "event" else crash["count"] + n]
        done = killer.build(args=args, out=str(root), kill_at=chosen[1])
    if kind != "timer":
        assert done["signal"] == 9, f"the build was not killed at {chosen[0]}: {done}"

    # The version current names is whole: it is the old one, or (killed after the rename) the new one.
    after = current_version_id(root)
    assert after is not None
    if kind == "switch" and n < 2:
        assert after == before
    published = [p for p in (root / "versions").iterdir() if not p.name.startswith(".")]
    assert all((p / "manifest.json").is_file() for p in published), "a version was published incomplete"
    verified = CliRunner().invoke(app, ["index", "verify", str(root), "--all"])
    assert verified.exit_code == 0, verified.output
    assert len(verified.output.splitlines()) == len(published)
    answers(server, after)

    rebuilt = build_index(corpus(crash), root, keep_versions=2, cache_dir=crash["work"] / "cache").index.version
    assert not list((root / "versions").glob(".tmp-*")) and not list(root.glob(".current.*"))
    assert CliRunner().invoke(app, ["index", "verify", str(root)]).exit_code == 0
    answers(server, rebuilt)


def answers(server: LiveServer, version: str, timeout: float = 30) -> None:
    """The server serves ``version`` (it follows ``current``) with no refusal, and a search answers from it."""
    deadline = time.monotonic() + timeout
    while True:
        ready = httpx.get(server.url + "/readyz", timeout=10).json()
        if ready.get("version") == version or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (ready.get("version"), ready.get("last_reload_error")) == (version, None), ready
    response = httpx.get(server.url + "/search", params={"q": "my chain squeaks", "k": 1}, timeout=30)
    assert response.status_code == 200 and response.headers["x-index-version"] == version
    assert response.json()["results"][0]["id"] == "bike-04"
