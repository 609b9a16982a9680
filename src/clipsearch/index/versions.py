"""The versions of an index directory, for the operator: list them, and roll ``current`` back to one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clipsearch.errors import ClipsearchError, IndexNotFound
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.layout import MANIFEST, VERSIONS, build_lock, current_version_id


@dataclass(frozen=True)
class VersionInfo:
    """One version as ``clipsearch index versions`` lists it."""

    id: str
    built_at: str
    clips: int
    model: str
    backend: str
    current: bool
    derived_from: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def list_versions(root: str | Path) -> list[VersionInfo]:
    """Every complete version under ``root``, oldest first (unreadable manifests are left out).

    Raises:
        IndexNotFound: ``root`` has no versions.
    """
    root = Path(root)
    if not (root / VERSIONS).is_dir():
        raise IndexNotFound(f"no index at {root}: {VERSIONS}/ is missing (build one with `clipsearch index build`)")
    current = current_version_id(root)
    found = []
    for path in sorted(p for p in (root / VERSIONS).iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            found.append(VersionInfo(
                path.name, manifest["built_at"], int(manifest["clips"]), manifest["model"],
                manifest.get("backend", "faiss"), path.name == current, (manifest.get("derived") or {}).get("from"),
            ))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def rollback(root: str | Path, to: str | None = None) -> ClipIndex:
    """Make version ``to`` current (default: the newest version older than the current one), once it verifies.

    Raises:
        ClipsearchError: no such version, or none older than the current one.
        IndexCorrupt: the version fails verification (its files, or its Milvus collection); nothing is switched.
        IndexBusy: a build of ``root`` is running.
    """
    from clipsearch.index.build import make_current

    root = Path(root)
    versions = list_versions(root)
    ids = [v.id for v in versions]
    current = next((v.id for v in versions if v.current), None)
    if to is None:
        older = [v for v in ids if current is None or v < current]
        if not older:
            raise ClipsearchError(f"{root}: no version older than the current one ({current}) to roll back to")
        to = older[-1]
    elif to not in ids:
        raise ClipsearchError(f"{root}: no version {to!r}; the versions are {', '.join(ids) or 'none'}")
    with build_lock(root):
        index = ClipIndex.load_version(root, root / VERSIONS / to)
        make_current(root, index, keep_versions=len(ids))
    return index
