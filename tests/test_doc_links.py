"""The README is the front door: short, linking every docs page; no page links to a file or heading that is gone."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 200

#: `[text](target)` or `[text](target "title")`; images (`![alt](src)`) match too, and are checked the same way.
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def doc_files() -> list[Path]:
    """Every Markdown file the links are checked in."""
    return [README, *sorted(DOCS.glob("*.md")), REPO / "index" / "README.md"]


def prose_lines(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans blanked unless ``blank_code`` is false."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(
                (number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line) if blank_code else line)
            )
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code."""
    return [(number, match.group(1)) for number, line in prose_lines(text) for match in _LINK.finditer(line)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every `#anchor` a heading of ``path`` defines, with GitHub's -1, -2 ... for repeated headings."""
    result, seen = set(), {}
    for _, line in prose_lines(path.read_text(encoding="utf-8"), blank_code=False):
        match = _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            result.add(f"{base}-{count}" if count else base)
            seen[base] = count + 1
    return result


def dead_links(path: Path) -> list[str]:
    """``FILE:LINE: target (why)`` for every relative link in ``path`` that leads nowhere."""
    dead = []
    for number, target in links(path.read_text(encoding="utf-8")):
        if not target or _EXTERNAL.match(target) or target.startswith("//"):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path.resolve()
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        if not resolved.exists():
            dead.append(f"{where} (no such file)")
        elif REPO.resolve() not in resolved.parents and resolved != REPO.resolve():
            dead.append(f"{where} (outside the repository)")
        elif anchor and resolved.suffix == ".md" and unquote(anchor).lower() not in anchors(resolved):
            dead.append(f"{where} (no heading #{anchor})")
    return dead


def test_the_readme_is_at_most_200_lines():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move sections to docs/"


def test_there_are_docs_pages():
    assert len(list(DOCS.glob("*.md"))) >= 8


def test_every_docs_page_is_linked_from_the_readme():
    linked = set()
    for _, target in links(README.read_text(encoding="utf-8")):
        file_part = target.partition("#")[0]
        if file_part and not _EXTERNAL.match(file_part):
            linked.add((REPO / unquote(file_part)).resolve())
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert unlinked == []


def test_every_docs_page_has_a_title_a_summary_and_a_way_back():
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), f"{page.name}: the first line is not a `# Title`"
        assert lines[1] == "" and lines[2].strip(), f"{page.name}: no summary under the title"
        back = [target for _, target in links("\n".join(lines)) if target.partition("#")[0] == "../README.md"]
        assert back, f"{page.name}: no link back to ../README.md"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_dead_relative_links(path):
    assert path.exists()
    assert dead_links(path) == []


def test_the_link_check_finds_dead_links(tmp_path, monkeypatch):
    """The checker itself: a missing file, a missing heading and a link out of the repository are dead; external
    links, links in code, and existing files, folders and headings are not."""
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "page.md").write_text(
        "# A page\n\n## Errors and limits\n\n## Errors and limits\n\n## Layout of `DIR`\n", "utf-8"
    )
    (tmp_path / "outside.md").write_text("# Outside\n", encoding="utf-8")
    readme = repo / "README.md"
    readme.write_text(
        "# The title\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#errors-and-limits-1) [ok](docs/page.md#layout-of-dir) [ok](#the-title) "
        "[ok](docs/) "
        "[web](https://example.com/x.md)\n"
        "[mail](mailto:a@example.com) `[code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n"
        "[gone](docs/gone.md)\n"
        "[no heading](docs/page.md#no-such-heading)\n"
        "[out](../outside.md)\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", repo)
    assert dead_links(readme) == [
        "README.md:8: docs/gone.md (no such file)",
        "README.md:9: docs/page.md#no-such-heading (no heading #no-such-heading)",
        "README.md:10: ../outside.md (outside the repository)",
    ]


def test_slugs_follow_github():
    assert (
        slug("Moments: benching an index cut from transcripts")
        == "moments-benching-an-index-cut-from-transcripts"
    )
    assert slug('"Nothing here answers that"') == "nothing-here-answers-that"
    assert slug("Layout of an index directory `DIR`") == "layout-of-an-index-directory-dir"
    assert slug("Benchmarking, calibrating and fine-tuning") == "benchmarking-calibrating-and-fine-tuning"
