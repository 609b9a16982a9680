"""The HTTP API fuzzed from its own OpenAPI schema (issue 19): schemathesis generates requests for every route,
valid ones and invalid ones, against a live uvicorn server; no response is a server error, and every response is
one the schema describes (status code, content type, headers, body).

At least 1,000 generated requests in all (derandomized: the same requests every run); the counts by route and
status are printed with ``-s``.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import requests
import schemathesis
from conftest import LiveServer
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

TOKEN = "fuzz-admin-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
#: Generated requests per route and mode (a route without parameters has few distinct ones: hypothesis stops
#: when it has made them all).
EXAMPLES = {"GET /search": 200, "POST /ask": 200, "GET /": 100, "POST /admin/reload": 40}
DEFAULT_EXAMPLES = 10
TOTAL = 1000


@pytest.fixture(scope="module")
def server(example_index, tmp_path_factory):
    """A live server of a copy of the example index, with the admin route (reloading nothing new is harmless)."""
    index = tmp_path_factory.mktemp("fuzz-api") / "index"
    shutil.copytree(example_index, index, symlinks=True)
    live = LiveServer(index, "--reload-interval", "0", env={"CLIPSEARCH_ADMIN_TOKEN": TOKEN})
    yield live
    live.stop()


def test_every_route_answers_generated_requests_as_its_schema_says_and_never_with_a_server_error(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /search", "POST /ask", "GET /", "GET /healthz", "GET /readyz",
                                               "GET /metrics", "POST /admin/reload"}
    seen: Counter = Counter()
    session = requests.Session()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, server.url, session, seen)
    total = sum(n for key, n in seen.items() if isinstance(key, str))
    print(f"{total} generated requests:", dict(sorted((str(k), n) for k, n in seen.items())))
    assert total >= TOTAL
    assert not [key for key in seen if isinstance(key, tuple) and key[1] >= 500]


def fuzz(operation, mode: GenerationMode, url: str, session: requests.Session, seen: Counter) -> None:
    """Send the generated requests of one route and mode, each response checked against the schema."""
    label = operation.label

    @settings(max_examples=EXAMPLES.get(label, DEFAULT_EXAMPLES), deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case):
        # The admin route: half the requests with the right token (a reload with nothing new), half with what
        # was generated.
        headers = {"Authorization": f"Bearer {TOKEN}"} if label == "POST /admin/reload" and seen[label] % 2 else None
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        seen[label] += 1
        seen[(label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        call()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, label  # a route without parameters has no invalid request
