"""The served index: the Searcher a long-running server answers from, swapped for new versions as it serves.

A ``Service`` watches ``DIR/current``. When it names a new version, the service loads and verifies that
version in full, every byte hashed (and loads the model its manifest names, when that differs), beside the one in
use, then switches one reference. Callers take ``service.searcher`` once per request, so requests in flight
finish on the version they started with.
A version that fails to load or verify is refused: the previous one keeps serving and ``status()`` says what went
wrong. The first version (nothing served yet) serves after the fast checks of a load, and is hashed in full in
the background; if that fails it is withdrawn (issue 19: a start-up at a million clips is not held up by hashing
gigabytes of memory-mapped vectors).
Nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from clipsearch.encode.factory import load_query_encoder
from clipsearch.encode.models import resolve_model
from clipsearch.errors import ClipsearchError, IndexNotFound, IndexUnavailable
from clipsearch.index.clip_index import ClipIndex
from clipsearch.index.integrity import FAST, FULL, check_files
from clipsearch.index.layout import current_version_path
from clipsearch.search.searcher import Searcher

log = logging.getLogger("clipsearch.service")


class IndexNotLoaded(ClipsearchError):
    """The service has no index to answer from; the message says why."""


class ReloadRefused(ClipsearchError):
    """The version ``current`` names failed to load or verify; the version loaded before keeps serving."""


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload: the version now serving, and whether it was swapped in by this reload."""

    version: str | None
    reloaded: bool


class Service:
    """The index a server answers from, kept current with ``DIR/current``.

    Example usage::

        service = Service("index/example")
        service.reload()                       # load the current version
        service.watch(2.0)                     # and check for a new one every 2 s
        service.searcher.search("how do I fix a flat tyre?", k=3)

    Args:
        root: the index directory.
        model: optional model name or path; every version must be built with it (checked by fingerprint).
        query_encoder, onnx_precision, encoder_threads, cache_dir: how questions are encoded, as for
            :meth:`Searcher.open`.
        search_threads: as for :meth:`Searcher.open`.
    """

    def __init__(
        self,
        root: str | Path,
        model: str | None = None,
        *,
        query_encoder: str = "onnx",
        onnx_precision: str = "fp32",
        encoder_threads: int = 2,
        search_threads: int = 2,
        cache_dir: str | Path | None = None,
    ):
        self.root = Path(root)
        self.model = model
        self.encoding = {"backend": query_encoder, "precision": onnx_precision, "threads": encoder_threads}
        self.search_threads = search_threads
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / "cache"
        self.reloads = 0
        self.failed_reloads = 0
        self._searcher: Searcher | None = None
        self._error: str | None = "not loaded yet"
        self._refused: str | None = None  # the version id last refused, not retried until it changes
        self._verified: str | None = None  # the version id whose every byte was hashed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def searcher(self) -> Searcher:
        """The searcher of the version in use. Take it once per request.

        Raises:
            IndexNotLoaded: nothing is loaded (the message says why).
        """
        searcher = self._searcher
        if searcher is None:
            raise IndexNotLoaded(self._error or f"no index loaded from {self.root}")
        return searcher

    @property
    def error(self) -> str | None:
        """Why nothing is loaded, or why the version ``current`` names was refused; None when all is well."""
        return self._error

    def status(self) -> dict:
        """What is served: ``index``, ``version``, ``built_at``, ``model``, ``clips``, ``query_encoder``,
        ``verified`` (every byte of the version hashed), ``last_reload_error``.

        Raises:
            IndexNotLoaded: nothing is loaded.
        """
        searcher = self.searcher
        index = searcher.index
        encoder = searcher.encoder
        return {
            "index": str(self.root),
            "version": index.version,
            "built_at": index.manifest["built_at"],
            "model": index.manifest["model"],
            "clips": len(index),
            "query_encoder": f"onnx {encoder.precision}" if getattr(encoder, "backend", "torch") == "onnx" else "torch",
            "verified": self._verified == index.path.name,
            "last_reload_error": self._error,
        }

    def reload(self, *, retry_refused: bool = False) -> Reload:
        """Swap in the version ``DIR/current`` names if it is not the one in use.

        Args:
            retry_refused: try again a version refused before (a background check does not, an operator may).

        Raises:
            IndexNotLoaded: there is no index and nothing is loaded.
            ReloadRefused: the new version failed to load or verify; the one in use keeps serving.
        """
        with self._lock:
            serving = self._searcher
            loaded = serving.index.path.name if serving else None
            try:
                path = current_version_path(self.root)
            except IndexNotFound as exc:
                if serving is None:
                    self._set_error(str(exc))
                    raise IndexNotLoaded(str(exc)) from None
                self._refuse("-", f"{exc}; still serving version {loaded}", count=self._refused != "-")
            if path.name == loaded:
                self._refused = None
                self._set_error(None)
                return Reload(loaded, False)
            if path.name == self._refused and not retry_refused:
                raise ReloadRefused(self._error)
            # A new version beside a serving one is hashed in full before it serves; the first one after the
            # fast checks, then in full in the background (see the module docstring).
            verify = FULL if serving is not None else FAST
            try:
                searcher = self._open(path, verify)
            except IndexUnavailable as exc:  # not the version's fault: the next check tries it again
                keeping = f"; still serving version {loaded}" if loaded else ""
                self._set_error(f"version {path.name} of {self.root} cannot load now: {exc}{keeping}")
                if serving is None:
                    raise IndexNotLoaded(self._error) from None
                raise ReloadRefused(self._error) from None
            except Exception as exc:  # noqa: BLE001 - whatever breaks the loader, the version is refused
                keeping = f"; still serving version {loaded}" if loaded else ""
                self._refuse(path.name, f"version {path.name} of {self.root} refused: {exc}{keeping}")
            # The one switch: requests that took the old searcher finish on it.
            self._searcher = searcher
            self._refused = None
            self._set_error(None)
            if verify == FULL:
                self._verified = path.name
            else:
                self._verify_later(searcher)
            if serving is not None:
                self.reloads += 1
            log.info(
                "serving %s version %s (%d clips, model %s)",
                self.root,
                path.name,
                len(searcher.index),
                searcher.index.manifest["model"],
            )
            return Reload(path.name, True)

    def _open(self, path: Path, verify: str) -> Searcher:
        index = ClipIndex.load_version(self.root, path, verify)
        serving = self._searcher
        if serving is not None and serving.encoder.fingerprint == index.manifest["model_fingerprint"]:
            encoder = serving.encoder
        else:
            ref = resolve_model(self.model) if self.model is not None else index.model_ref()
            encoder = load_query_encoder(ref, self.cache_dir, **self.encoding)
        index.check_encoder(encoder)
        return Searcher(index, encoder, search_threads=self.search_threads)

    def _verify_later(self, searcher: Searcher) -> None:
        """Hash every byte of the version ``searcher`` serves, in a background thread; withdraw it if that fails."""
        index = searcher.index

        def run() -> None:
            try:
                check_files(index.path, index.manifest, FULL)
            except Exception as exc:  # noqa: BLE001 - whatever the check meets, the version is not trusted
                if not index.path.is_dir():  # pruned by later builds: the next check of current moves on
                    log.warning("version %s of %s was removed before its full check", index.path.name, self.root)
                    return
                with self._lock:
                    if self._searcher is searcher:
                        self._searcher = None
                        self.failed_reloads += 1
                        self._refused = index.path.name
                        self._set_error(f"version {index.path.name} of {self.root} withdrawn: {exc}; no version "
                                        "is served until a good one is current")
                return
            with self._lock:
                if self._searcher is searcher:
                    self._verified = index.path.name
                    log.info("version %s of %s verified in full", index.path.name, self.root)

        threading.Thread(target=run, name="clipsearch-verify", daemon=True).start()

    def _refuse(self, version: str, message: str, count: bool = True) -> NoReturn:
        if count:
            self.failed_reloads += 1
        self._refused = version
        self._set_error(message)
        raise ReloadRefused(message)

    def _set_error(self, message: str | None) -> None:
        if message and message != self._error:
            log.error("%s", message)
        self._error = message

    def watch(self, interval: float) -> None:
        """Check ``DIR/current`` every ``interval`` seconds in a background thread (0: never)."""
        if interval <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(interval,), name="clipsearch-reload", daemon=True
        )
        self._thread.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reload()
            except (IndexNotLoaded, ReloadRefused):
                pass  # recorded in self.error, logged once
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failed check
                log.exception("index check failed")

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
