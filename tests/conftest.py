"""Shared fixtures: the real packaged model (loaded once), real indexes built in tmp dirs, live uvicorn servers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clipsearch.encode.torch_encoder import Encoder
from clipsearch.index.build import build_index

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEED_PAGE = SHARED / "seeds" / "000_54ed5500dd6f44a6.txt"
TUTORIALVQA = SHARED / "data" / "tutorialvqa"
EXAMPLES = REPO / "examples"
EXAMPLE_CORPUS = [EXAMPLES / "clips.jsonl", EXAMPLES / "page.txt"]
DATA = Path(__file__).resolve().parent / "data"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pytest_addoption(parser):
    parser.addoption("--crash-kills", type=int, default=10,
                     help="random points at which tests/test_crash.py kills a build (default 10)")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch):
    """No test sees the developer's CLIPSEARCH_* settings or reaches a model hub."""
    for name in list(os.environ):
        if name.startswith("CLIPSEARCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The packaged all-MiniLM-L6-v2, loaded once per test run."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Encoder.load()


@pytest.fixture(scope="session")
def example_index(tmp_path_factory, encoder) -> Path:
    """An index of the example corpus that ships in the repo (do not modify it in a test: build your own)."""
    out = tmp_path_factory.mktemp("example") / "index"
    build_index(EXAMPLE_CORPUS, out)
    return out


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, encoder) -> Path:
    """An index of the real seed page (six WION clips), read from ../shared."""
    out = tmp_path_factory.mktemp("seed") / "index"
    build_index([SEED_PAGE], out)
    return out


#: Three of the shared TutorialVQA videos, whose transcripts the transcript tests index.
TRANSCRIPT_VIDEOS = ("14643", "14644", "14645")


@pytest.fixture(scope="session")
def transcript_index(tmp_path_factory, encoder) -> Path:
    """An index cut from three shared TutorialVQA transcripts by `clipsearch index build LIST`, through a video list
    whose transcript paths are relative to it (do not modify it in a test: build your own)."""
    from typer.testing import CliRunner

    from clipsearch.cli import app

    folder = tmp_path_factory.mktemp("transcripts")
    rows = [r for r in read_jsonl(TUTORIALVQA / "videos.jsonl") if r["video_id"] in TRANSCRIPT_VIDEOS]
    for row in rows:
        row["transcript"] = os.path.relpath(TUTORIALVQA / row["transcript"], folder)
    videos = folder / "videos.jsonl"
    videos.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["index", "build", str(videos), "--out", str(folder / "index")])
    assert result.exit_code == 0, result.output
    return folder / "index"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``clipsearch serve`` in a subprocess on a free 127.0.0.1 port; its log is shown when a test fails.

    ``extra`` are more ``serve`` arguments, ``env`` more environment variables (e.g. ``CLIPSEARCH_*`` settings).
    With ``wait=False`` the constructor returns at once (start several servers, then ``wait_started()`` each).
    """

    def __init__(self, index: Path, *extra: str, env: dict | None = None, wait: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"clipsearch-serve-{self.port}.log"
        cmd = [sys.executable, "-m", "clipsearch", "serve", "--index", str(index), "--port", str(self.port), *extra]
        self._log_handle = open(self.log, "w")
        self.process = subprocess.Popen(
            cmd, stdout=self._log_handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        if wait:
            self.wait_started()

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        if not self._log_handle.closed:
            self._log_handle.flush()
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log_handle.close()


@pytest.fixture(scope="session")
def live_server(example_index):
    """A real uvicorn serving the example index."""
    server = LiveServer(example_index)
    yield server
    server.stop()


#: The admin server's token and limits (the HTTP tests).
TOKEN = "s3cret-admin-token"
ADMIN_MAX_QUERY_CHARS = 40
ADMIN_MAX_IN_FLIGHT = 2
ALLOWED_ORIGIN = "https://clips.example.org"


@pytest.fixture(scope="session")
def started_servers(example_index, tmp_path_factory):
    """The HTTP tests' other two servers, started together before any test waits for one (``live_server``
    included): loading the model in parallel is one wait instead of three. They serve until the session ends."""
    admin_dir = tmp_path_factory.mktemp("admin") / "index"
    shutil.copytree(example_index, admin_dir, symlinks=True)
    watched_dir = tmp_path_factory.mktemp("watched") / "index"
    started = {
        "admin": LiveServer(
            admin_dir,
            "--reload-interval",
            "0",
            "--max-in-flight",
            str(ADMIN_MAX_IN_FLIGHT),
            "--cors-origin",
            ALLOWED_ORIGIN,
            env={"CLIPSEARCH_ADMIN_TOKEN": TOKEN, "CLIPSEARCH_MAX_QUERY_CHARS": str(ADMIN_MAX_QUERY_CHARS)},
            wait=False,
        ),
        "watched": LiveServer(watched_dir, "--reload-interval", "0.3", wait=False),
    }
    started["admin"].index_dir = admin_dir
    started["watched"].index_dir = watched_dir
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def admin_server(started_servers) -> LiveServer:
    started_servers["admin"].wait_started()
    return started_servers["admin"]


@pytest.fixture(scope="session")
def watched_server(started_servers) -> LiveServer:
    started_servers["watched"].wait_started()
    return started_servers["watched"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log of every live server a failing test used."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in (getattr(item, "funcargs", None) or {}).items():
            if isinstance(value, LiveServer):
                report.sections.append((f"clipsearch serve log ({name})", value.output()[-5000:]))
