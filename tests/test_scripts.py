"""The scripts start: each of scripts/*.py answers ``--help`` with its usage, every module of the benchmark package
scripts/perf/ imports, and the package stays small (no module over 500 lines) and without import circles.

The scripts run as their README and docstrings run them, ``python scripts/X.py`` in a subprocess (scripts/ is then
first on ``sys.path``: that is how they find ``perf`` and ``tutorialvqa``). All subprocesses start at once, in
threads, since each spends a second or two importing clipsearch.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest
from conftest import REPO

SCRIPTS = REPO / "scripts"
PERF = SCRIPTS / "perf"
SCRIPT_FILES = sorted(SCRIPTS.glob("*.py"))
PERF_MODULES = sorted(f"perf.{p.stem}" if p.stem != "__init__" else "perf" for p in PERF.glob("*.py"))
MAX_LINES = 500
TIMEOUT = 120

#: Imports each named module in a fresh interpreter with scripts/ first on sys.path, and prints {module: error}.
IMPORT_CODE = """
import importlib, json, sys, traceback
sys.path.insert(0, sys.argv[1])
failed = {}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc()
print(json.dumps(failed))
"""


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT)


@cache
def results() -> dict[str, subprocess.CompletedProcess]:
    """Every script's ``--help`` and the import of the perf modules, run in parallel once per test session."""
    jobs = {path.name: [sys.executable, str(path), "--help"] for path in SCRIPT_FILES}
    jobs["import perf"] = [sys.executable, "-c", IMPORT_CODE, str(SCRIPTS), *PERF_MODULES]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(run, cmd) for name, cmd in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_the_scripts_are_found():
    names = {path.name for path in SCRIPT_FILES}
    assert {"bench_perf.py", "bench_http.py", "eval_tutorialvqa.py", "tutorialvqa.py"} <= names
    assert {"perf.corpus", "perf.encoders", "perf.builds", "perf.scale", "perf.http_load", "perf.txtai",
            "perf.report"} <= set(PERF_MODULES)


@pytest.mark.parametrize("script", [path.name for path in SCRIPT_FILES])
def test_script_help(script):
    done = results()[script]
    assert done.returncode == 0, f"{script} --help exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert done.stdout.startswith(f"usage: {script}"), done.stdout[:500]


def test_every_perf_module_imports():
    done = results()["import perf"]
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{error}" for name, error in failed.items())


@pytest.mark.parametrize("path", [*SCRIPT_FILES, *sorted(PERF.glob("*.py"))], ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_no_module_over_500_lines(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)}: {lines} lines"


def perf_imports(module: str) -> set[str]:
    """The perf modules ``module`` imports, at module level or inside a function."""
    path = PERF / ("__init__.py" if module == "perf" else f"{module.split('.', 1)[1]}.py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.ImportFrom):  # relative: from . import x, from .x import y
            base = ".".join(["perf", *([node.module] if node.module else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        found.update(name for name in names if name in PERF_MODULES and name != module)
    return found


def test_no_import_circle_in_perf():
    graph = {module: perf_imports(module) for module in PERF_MODULES}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            pytest.fail("import circle: " + " -> ".join([*path[path.index(module):], module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, (*path, module))
        done.add(module)

    for module in PERF_MODULES:
        visit(module, ())
