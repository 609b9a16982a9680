"""The HTTP service: ``create_app(settings)`` returns a FastAPI app whose routes are thin calls into the core."""

# No `from __future__ import annotations` here: FastAPI evaluates route signatures at runtime, and the bounds of
# /search's `k` name `settings`, a local of create_app that a string annotation cannot see (every search was a 500).

import logging
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from clipsearch import __version__
from clipsearch.errors import ClipsearchError
from clipsearch.search import Searcher
from clipsearch.settings import Settings

log = logging.getLogger("clipsearch.api")


class IndexNotLoaded(Exception):
    """The service has no index to answer from (503)."""

    def __init__(self, reason: str):
        self.reason = reason


def error_body(msg: str, type_: str, loc: list | None = None) -> dict:
    """The one error shape of the service (FastAPI's list form)."""
    return {"detail": [{"loc": loc or [], "msg": msg, "type": type_}]}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The clipsearch HTTP app serving ``settings.index``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            app.state.searcher = Searcher.open(settings.index, model=settings.model)
            app.state.load_error = None
            log.info("serving %s version %s", settings.index, app.state.searcher.index.version)
        except ClipsearchError as exc:
            app.state.searcher = None
            app.state.load_error = str(exc)
            log.error("no index loaded: %s", exc)
        yield

    app = FastAPI(
        title="clipsearch",
        version=__version__,
        description="Ask a question, get the video clips that answer it, with timestamps.",
        lifespan=lifespan,
    )

    @app.exception_handler(IndexNotLoaded)
    async def not_loaded(request: Request, exc: IndexNotLoaded):
        return JSONResponse(error_body(exc.reason, "index_not_loaded"), status_code=503)

    @app.get("/healthz", summary="Liveness: 200 while the process lives")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/search", summary="The clips closest to a question")
    def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=512, description="The question.")],
        k: Annotated[int, Query(ge=1, le=settings.max_k, description="How many clips at most.")] = settings.default_k,
    ) -> dict:
        searcher: Searcher | None = request.app.state.searcher
        if searcher is None:
            raise IndexNotLoaded(f"no index loaded from {settings.index}: {request.app.state.load_error}")
        return searcher.search(q, k=k).to_dict()

    return app
