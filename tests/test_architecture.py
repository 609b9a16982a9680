"""The layout holds: stages import only downward, no import circles, small modules with distinct names.

The stages, from the top: ``cli`` -> ``serve`` and ``evaluate`` -> ``search`` -> ``index`` -> ``scoring``,
``encode`` and ``ingest`` (docs/architecture.md). ``settings``, ``errors`` and ``_version`` may be imported by
every stage and import none. Every import counts, at module level or inside a function, ``TYPE_CHECKING`` ones included.
"""

from __future__ import annotations

import ast
from itertools import combinations
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "src" / "clipsearch"
#: A stage may import the stages of a lower rank, and itself; never one of its own rank or above.
RANKS = {
    "ingest": 0, "encode": 0, "scoring": 0, "index": 1, "search": 2, "serve": 3, "evaluate": 3, "cli": 4, "__main__": 5,
}
SHARED = {"settings", "errors", "_version"}
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The clipsearch modules ``name`` imports (``from clipsearch.x import y`` counts y when y is a module)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("clipsearch"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("clipsearch"):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
    return {target for target in found if target in MODULES}


def stage(name: str) -> str | None:
    """The stage a module belongs to (``ingest``, ..., ``cli``), ``shared``, or None for the package itself."""
    parts = name.split(".")
    if len(parts) == 1:
        return None
    return "shared" if parts[1] in SHARED else parts[1] if parts[1] in RANKS else "other"


def allowed(importer: str, imported: str) -> bool:
    if imported == "clipsearch":  # the package face is for users: no module of the package imports it
        return False
    source, target = stage(importer), stage(imported)
    if target == "shared":
        return source != "shared"
    if source is None or source == "shared" or target is None:
        return source is None  # the package face re-exports the public API; shared modules import no stage
    return source == target or RANKS[target] < RANKS[source]


def test_every_module_belongs_to_a_stage():
    assert [name for name in MODULES if stage(name) == "other"] == [], "a module outside the stages"


def test_stages_import_only_downward():
    upward = [
        f"{importer} -> {imported}"
        for importer in MODULES for imported in sorted(imports_of(importer))
        if not allowed(importer, imported)
    ]
    assert upward == []


def test_no_module_imports_the_package_face():
    """``clipsearch/__init__.py`` re-exports the public API for users; inside the package, imports name modules."""
    offenders = [
        name for name, path in MODULES.items() if name != "clipsearch"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module == "clipsearch" and not node.level
    ]
    assert offenders == []


def test_there_is_no_import_circle():
    graph = {name: imports_of(name) for name in MODULES}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                circles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_the_walker_sees_an_upward_import():
    """The rules above can fail: an index module importing the searcher would be refused."""
    assert not allowed("clipsearch.index.build", "clipsearch.search.searcher")
    assert not allowed("clipsearch.serve.app", "clipsearch.evaluate.metrics")
    assert not allowed("clipsearch.errors", "clipsearch.ingest.clip_record")
    assert allowed("clipsearch.search.searcher", "clipsearch.index.clip_index")
    assert "clipsearch.index.clip_index" in imports_of("clipsearch.search.searcher")


@pytest.mark.parametrize("folder", ["src", "scripts"])
def test_no_module_is_over_500_lines(folder):
    long = {
        str(path.relative_to(REPO)): lines for path in sorted((REPO / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_two_module_names_differ_by_one_letter():
    stems = sorted({path.stem for path in MODULES.values() if path.stem != "__init__"})
    close = [(a, b) for a, b in combinations(stems, 2) if _distance(a, b) <= 1]
    assert close == []


def test_every_stage_says_what_it_owns_and_may_import():
    for name in RANKS:
        if name in ("cli", "__main__"):
            continue
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "Owns" in doc and "May import" in doc, name


def test_the_public_api_is_importable_from_the_package():
    import clipsearch

    for name in clipsearch.__all__:
        assert getattr(clipsearch, name) is not None, name
    from clipsearch import Searcher, build_index, read_clips  # noqa: F401 - the README's import line


def _distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]
