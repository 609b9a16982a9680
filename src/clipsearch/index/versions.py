"""The versions of an index directory, for the operator: list them, verify them in full, and roll ``current``
back to one."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from clipsearch.encode.models import fingerprint
from clipsearch.errors import ClipsearchError, IndexCorrupt, IndexNotFound, ModelMismatch
from clipsearch.index.clip_index import ClipIndex, model_ref_from_manifest
from clipsearch.index.integrity import FULL
from clipsearch.index.layout import MANIFEST, VERSIONS, build_lock, current_version_id, current_version_path


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
    names = version_dirs(root)
    current = current_version_id(root)
    found = []
    for path in (root / VERSIONS / name for name in names):
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            found.append(VersionInfo(
                path.name, manifest["built_at"], int(manifest["clips"]), manifest["model"],
                manifest.get("backend", "faiss"), path.name == current, (manifest.get("derived") or {}).get("from"),
            ))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def version_dirs(root: str | Path) -> list[str]:
    """The id of every published version directory under ``root``, oldest first, whether or not it loads.

    Raises:
        IndexNotFound: ``root`` has no versions.
    """
    root = Path(root)
    if not (root / VERSIONS).is_dir():
        raise IndexNotFound(f"no index at {root}: {VERSIONS}/ is missing (build one with `clipsearch index build`)")
    return sorted(p.name for p in (root / VERSIONS).iterdir() if p.is_dir() and not p.name.startswith("."))


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
        index = ClipIndex.load_version(root, root / VERSIONS / to, FULL)
        make_current(root, index, keep_versions=len(ids))
    return index


@dataclass(frozen=True)
class Verified:
    """What ``clipsearch index verify`` checked of one version."""

    version: str
    current: bool
    files: int
    bytes: int
    seconds: float
    model: str
    dim: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def verify(root: str | Path, version: str | None = None) -> Verified:
    """Check one version (default: the current one) in full: every file's size and sha256 against the manifest,
    the manifest's counts and dimension against the files, and the model it names against its fingerprint and
    dimension.

    Raises:
        IndexNotFound: no such index or version.
        IndexCorrupt, ModelMismatch: the version is damaged or disagrees with its model; the message names the file.
    """
    root = Path(root)
    if version is None:
        path = current_version_path(root)
    else:
        path = root / VERSIONS / version
        if not path.is_dir():
            raise IndexNotFound(f"{root}: no version {version!r} under {VERSIONS}/")
    began = time.perf_counter()
    index = ClipIndex.load_version(root, path, FULL)
    check_model(index)
    return Verified(index.version, index.version == current_version_id(root), len(index.manifest["files"]),
                    sum(entry["bytes"] for entry in index.manifest["files"].values()),
                    time.perf_counter() - began, index.manifest["model"], index.dim)


def check_model(index: ClipIndex) -> None:
    """The model the manifest names must resolve here, have the recorded fingerprint and make vectors of ``dim``
    (read from its pooling configuration, without loading it).

    Raises:
        ModelNotFound, ModelMismatch, IndexCorrupt: naming the manifest.
    """
    manifest_file = index.path / MANIFEST
    ref = model_ref_from_manifest(index.root, index.manifest)
    found = fingerprint(ref.path)
    if found != index.manifest["model_fingerprint"]:
        raise ModelMismatch(f"{manifest_file}: model_fingerprint {index.manifest['model_fingerprint'][:12]}, the "
                            f"model {index.manifest['model']!r} here has {found[:12]}")
    pooling = ref.path / "1_Pooling" / "config.json"
    if pooling.is_file():
        dim = json.loads(pooling.read_text(encoding="utf-8")).get("word_embedding_dimension")
        if dim is not None and dim != index.dim:
            raise IndexCorrupt(f"{manifest_file}: dim {index.dim}, the model {index.manifest['model']!r} makes {dim}")
