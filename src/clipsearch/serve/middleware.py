"""Pure ASGI middleware of the HTTP service: the access log, the in-flight limit and the request limits."""

import json
import logging
import time
from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers

from clipsearch.serve.prometheus import Metrics
from clipsearch.serve.schemas import error_response

access_log = logging.getLogger("clipsearch.access")
#: Probes and scrapes are answered even when the service is at max_in_flight.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class AccessLog:
    """One structured log line and one metrics observation per request: method, path, status, ms."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - began
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.metrics.observe_request(route, scope["method"], status, seconds)
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round(seconds * 1000, 1),
            }
            # The path is JSON-quoted: a %0A in it cannot forge a second log line. The query string is left
            # out (questions may be personal).
            access_log.info(
                "method=%s path=%s status=%d ms=%.1f",
                fields["method"],
                json.dumps(fields["path"]),
                status,
                fields["ms"],
                extra={"access": fields},
            )


class ConcurrencyLimit:
    """At most ``limit`` requests in the app at once; beyond that 503 ``overloaded`` with Retry-After.

    Probes and metrics (``UNLIMITED_PATHS``) are always answered.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit:
            response = error_response(
                503,
                f"the service is handling {self.limit} requests already; retry shortly",
                "overloaded",
                headers={"Retry-After": "1"},
            )
            return await response(scope, receive, send)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class RequestLimits:
    """Rejects, before the app sees them, query strings over ``max_query`` bytes (414), query strings that are
    not UTF-8 once percent-decoded (400), bodies over ``max_body`` bytes (413) and JSON bodies that are not
    UTF-8 (400).

    The body is counted as it arrives, so a chunked request (no Content-Length) cannot slip past the limit;
    bodies within it are buffered and handed on.
    """

    def __init__(self, app, max_body: int, max_query: int):
        self.app = app
        self.max_body = max_body
        self.max_query = max_query

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        query = scope.get("query_string", b"")
        if len(query) > self.max_query:
            msg = f"the query string is {len(query)} bytes; the limit is {self.max_query}"
            return await error_response(414, msg, "query_too_long")(scope, receive, send)
        bad = _not_utf8(query)
        if bad is not None:
            msg = f"query parameter {bad!r} is not valid UTF-8 once percent-decoded"
            return await error_response(400, msg, "invalid_encoding", ["query", bad])(scope, receive, send)
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            return await self.app(scope, receive, send)
        too_large = error_response(413, f"the request body is over {self.max_body} bytes", "body_too_large")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await too_large(scope, receive, send)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body:
                return await too_large(scope, receive, send)
            more = message.get("more_body", False)
        if _is_json(headers.get("content-type", "")) and not _is_utf8(body):
            msg = "the request body is not valid UTF-8 (JSON must be UTF-8)"
            return await error_response(400, msg, "invalid_encoding", ["body"])(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _is_utf8(data: bytes | bytearray) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _not_utf8(query: bytes) -> str | None:
    """The name of the first query parameter whose name or value is not UTF-8 once percent-decoded, if any.

    (Starlette would decode those bytes with replacement characters, silently changing the question.)
    """
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        for part in (name, value):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                return unquote_to_bytes(name).decode("utf-8", errors="replace")
    return None
