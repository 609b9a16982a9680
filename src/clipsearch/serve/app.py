"""The HTTP service: ``create_app(settings)`` returns a FastAPI app whose routes are thin calls into the core.

Every error the service produces has one shape, FastAPI's list form:
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``. Field errors name the field in ``loc``; the
others have ``loc: []`` and a ``type`` from ``ERROR_TYPES`` (or ``index_not_loaded``, ``overloaded``, ...).
"""

# No `from __future__ import annotations` here: FastAPI evaluates route signatures at runtime, and the request
# models are built inside create_app from the settings (their bounds are settings).

import hmac
import logging
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipsearch._version import __version__
from clipsearch.errors import IndexUnavailable
from clipsearch.search.threads import one_omp_thread_here, one_thread_per_search
from clipsearch.serve.middleware import AccessLog, ConcurrencyLimit, RequestLimits
from clipsearch.serve.prometheus import Metrics
from clipsearch.serve.schemas import (
    AnswerBody,
    ErrorBody,
    Health,
    Readiness,
    ReloadBody,
    error_response,
    request_models,
)
from clipsearch.serve.service import IndexNotLoaded, ReloadRefused, Service
from clipsearch.settings import Settings

log = logging.getLogger("clipsearch.api")

#: The ``type`` of errors that are not about one field, by status.
ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    414: "query_too_long",
    500: "internal_error",
    503: "unavailable",
}


class ServiceError(StarletteHTTPException):
    """An HTTP error with a machine-readable ``type``."""

    def __init__(
        self, status: int, type_: str, msg: str, headers: dict | None = None, loc: list | None = None
    ):
        super().__init__(status, msg, headers)
        self.type = type_
        self.loc = loc or []


ERRORS = {status: {"model": ErrorBody} for status in (400, 413, 414, 422, 503)}
#: The search page answers a refused question (422) and an index not loaded (503) as HTML; the request limits
#: (400, 414) answer before it, in the one JSON shape.
_HTML = {"text/html": {"schema": {"type": "string"}}}
PAGE_ERRORS = {
    400: {"model": ErrorBody}, 414: {"model": ErrorBody},
    422: {"description": "The question or k is refused: the page, saying why", "content": _HTML},
    503: {"description": "No index is loaded: the page, saying why", "content": _HTML},
}


# --- the app ------------------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """The clipsearch HTTP app serving ``settings.index``.

    The index (and its model) is loaded once at startup, then swapped when ``INDEX/current`` moves (checked
    every ``settings.reload_interval`` seconds) or on POST /admin/reload.
    """
    settings = settings or Settings()
    service = Service(
        settings.index, model=settings.model, query_encoder=settings.query_encoder,
        onnx_precision=settings.onnx_precision, encoder_threads=settings.encoder_threads,
        search_threads=settings.search_threads, cache_dir=settings.cache_dir,
    )
    metrics = Metrics(service)
    SearchParams, AskRequest = request_models(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        one_thread_per_search()
        try:
            service.reload()
        except (IndexNotLoaded, ReloadRefused) as exc:
            log.error("no index loaded: %s", exc)
        service.watch(settings.reload_interval)
        yield
        service.close()

    app = FastAPI(
        title="clipsearch",
        version=__version__,
        description="Ask a question, get the video clips that answer it, with timestamps.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.metrics = metrics
    # Added innermost first: the access log sees every response, including the limits' own.
    app.add_middleware(
        RequestLimits, max_body=settings.max_body_bytes, max_query=settings.max_query_string_bytes
    )
    app.add_middleware(ConcurrencyLimit, limit=settings.max_in_flight)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(AccessLog, metrics=metrics)
    add_error_handlers(app)

    def answer(
        query: str, k: int, source: list[str], video_id: list[str], collapse: bool = True, group_by: str | None = None
    ) -> tuple[dict, str]:
        """The answer JSON, and the index version that gave it."""
        one_omp_thread_here()
        searcher = service.searcher  # once: a reload during this request does not change what answers it
        result = searcher.search(
            query, k=k, filters={"source": source, "video_id": video_id}, collapse=collapse, group_by=group_by
        )
        metrics.observe_answer(result.answered)
        return result.to_dict(), searcher.index.version

    def answer_response(body: dict, version: str) -> JSONResponse:
        """The answer as JSON, rendered on the worker thread that searched. Returned as a response, it skips
        FastAPI's check of the body against ``AnswerBody`` (which documents it in the OpenAPI schema, and which
        ``tests/test_api.py`` holds answers to): that check is a second thread-pool hop and ~1 ms a request."""
        return JSONResponse(body, headers={"X-Index-Version": version})

    # The probes and the scrape are async on purpose: they never block, and must answer even when every
    # thread of the pool is busy with searches (a probe queued behind them would time out and get the process
    # restarted).
    @app.get("/healthz", summary="Liveness: 200 while the process lives")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", summary="Readiness: what is served, or 503 with the reason", responses=ERRORS)
    async def readyz() -> Readiness:
        return Readiness(**service.status())

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_() -> Response:
        return Response(metrics.exposition(), media_type=Metrics.content_type)

    @app.get(
        "/search",
        summary="The clips that answer a question",
        response_model=AnswerBody,
        response_model_exclude_unset=True,
        responses=ERRORS,
    )
    def search(params: Annotated[SearchParams, Query()]):
        body, version = answer(params.q, params.k, params.source, params.video_id, params.collapse, params.group_by)
        return answer_response(body, version)

    @app.post(
        "/ask",
        summary="The clips that answer a question (JSON body)",
        response_model=AnswerBody,
        response_model_exclude_unset=True,
        responses=ERRORS,
    )
    def ask(request: AskRequest):
        filters = request.filters
        body, version = answer(
            request.question, request.k, filters.source, filters.video_id, request.collapse, request.group_by
        )
        return answer_response(body, version)

    @app.get("/", summary="The search page", response_class=HTMLResponse, responses=PAGE_ERRORS)
    def page(
        q: Annotated[str | None, Query(description="The question; without it, the empty page.")] = None,
        k: Annotated[str | None, Query(description="How many clips at most.")] = None,
        source: Annotated[list[str], Query(description="As for /search.")] = [],  # noqa: B006 - FastAPI copies it
        video_id: Annotated[list[str], Query(description="As for /search.")] = [],  # noqa: B006
    ) -> HTMLResponse:
        """The search page, rendered on the server: ``/?q=...`` shows the answer, so it works without
        JavaScript and is bookmarkable. A refused query answers 422, an index not loaded 503: HTML that says
        why."""
        from clipsearch.serve.search_page import render_search_page

        shown_k = int(k) if k and k.isdigit() and 1 <= int(k) <= settings.max_k else settings.default_k
        if q is None:
            return HTMLResponse(render_search_page(query=None, answer=None, error=None, k=shown_k))
        try:
            params = SearchParams.model_validate(
                {"q": q, "source": source, "video_id": video_id} | ({"k": k} if k else {})
            )
        except ValidationError as exc:
            html = render_search_page(query=q, answer=None, error=page_error(exc, settings), k=shown_k)
            return HTMLResponse(html, status_code=422)
        try:
            result, version = answer(params.q, params.k, params.source, params.video_id)
        except (IndexNotLoaded, IndexUnavailable) as exc:
            html = render_search_page(
                query=q, answer=None, error=f"The search is not ready: {exc}", k=params.k
            )
            return HTMLResponse(html, status_code=503, headers={"Retry-After": "5"})
        html = render_search_page(query=params.q, answer=result, error=None, k=params.k)
        return HTMLResponse(html, headers={"X-Index-Version": version})

    if settings.admin_token is not None:
        add_admin_routes(app, service, settings.admin_token.get_secret_value())
    return app


def add_admin_routes(app: FastAPI, service: Service, token: str) -> None:
    """POST /admin/reload, behind ``Authorization: Bearer <token>``."""
    expected = token.encode("utf-8")
    bearer = HTTPBearer(auto_error=False, description="The token set by CLIPSEARCH_ADMIN_TOKEN.")

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        given = credentials.credentials.encode("utf-8") if credentials else b""
        # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
        if not credentials or not hmac.compare_digest(given, expected):
            raise ServiceError(
                401, "unauthorized", "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    @app.post(
        "/admin/reload",
        summary="Swap in the version INDEX/current names, now",
        dependencies=[Depends(require_token)],
        responses={401: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    def admin_reload() -> ReloadBody:
        outcome = service.reload(retry_refused=True)
        return ReloadBody(version=outcome.version, reloaded=outcome.reloaded)


def page_error(exc: ValidationError, settings: Settings) -> str:
    """A validation error of the page's form, for people."""
    field = exc.errors()[0]["loc"][0]
    if field == "k":
        return f"The number of results must be a whole number from 1 to {settings.max_k}."
    return f"Type a question of 1 to {settings.max_query_chars} characters."


def add_error_handlers(app: FastAPI) -> None:
    """Every error, whoever raises it, answers in the one shape."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        status = exc.status_code
        type_ = getattr(exc, "type", None) or ERROR_TYPES.get(status, f"http_{status}")
        if status == 404 and exc.detail == "Not Found":
            msg = f"nothing at {request.url.path}"
        elif status == 405 and exc.detail == "Method Not Allowed":
            msg = f"{request.method} is not allowed on {request.url.path}"
        else:
            msg = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        return error_response(status, msg, type_, getattr(exc, "loc", None), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # Only loc, msg and type: echoing the input back could be large, or not encodable (a lone surrogate).
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(IndexNotLoaded)
    async def not_loaded(request: Request, exc: IndexNotLoaded):
        return error_response(503, str(exc), "index_not_loaded", headers={"Retry-After": "5"})

    @app.exception_handler(IndexUnavailable)
    async def unavailable(request: Request, exc: IndexUnavailable):
        return error_response(503, str(exc), "index_unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(ReloadRefused)
    async def refused(request: Request, exc: ReloadRefused):
        return error_response(409, str(exc), "reload_refused")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return error_response(500, "internal error; the server log has the details", "internal_error")


def uvicorn_log_config(level: str) -> dict:
    """uvicorn's logging config, plus the ``clipsearch`` loggers (the access log among them) at ``level``."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["clipsearch"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
