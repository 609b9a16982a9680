"""Metrics, logs, CORS, OpenAPI and the serving settings, on live servers (see ``test_api``)."""

from __future__ import annotations

import httpx
import pytest
from api_client import (
    HIT_FIELDS,
    OPTIONAL_FIELDS,
    metrics,
    search,
    wait_until,
)
from conftest import ALLOWED_ORIGIN
from typer.testing import CliRunner

from clipsearch.cli import app
from clipsearch.settings import Settings, settings_table

# admin_server and watched_server start beside live_server, so their models load while it loads its own.
pytestmark = pytest.mark.usefixtures("started_servers")


# --- metrics, logs, CORS, OpenAPI ---------------------------------------------------------------------------


def test_metrics_count_requests_answers_and_describe_the_index(live_server):
    # answered (the README's example), then one not answered: the test does not lean on tests run before it
    assert search(live_server, q="my chain squeaks, what should I put on it?", k=3).json()["answered"]
    search(live_server, q="my chain squeaks", k=3)
    search(live_server, q="bike chain", source="No such channel")
    search(live_server, q="bike", k=0)

    seen = metrics(live_server)

    def requests(status: str) -> float:
        return seen[
            ("clipsearch_http_requests_total", (("method", "GET"), ("route", "/search"), ("status", status)))
        ]

    assert requests("200") >= 2 and requests("422") >= 1
    assert seen[("clipsearch_http_request_duration_seconds_count", (("route", "/search"),))] >= 3
    assert seen[("clipsearch_answers_total", (("answered", "true"),))] >= 1
    assert seen[("clipsearch_answers_total", (("answered", "false"),))] >= 1
    assert seen[("clipsearch_index_clips", ())] == 20
    assert seen[("clipsearch_index_loaded", ())] == 1
    assert 0 < seen[("clipsearch_index_age_seconds", ())] < 24 * 3600
    assert seen[("clipsearch_index_reloads_total", ())] == 0
    assert seen[("clipsearch_index_reload_failures_total", ())] == 0
    assert seen[("clipsearch_index_reload_error", ())] == 0


def test_metrics_label_unmatched_paths_by_one_name(live_server):
    httpx.get(live_server.url + "/no/such/path/3f9a")

    text = httpx.get(live_server.url + "/metrics").text

    assert "3f9a" not in text
    assert 'route="(unmatched)"' in text


def test_every_request_gets_one_access_log_line_without_the_question(live_server):
    search(live_server, q="access-log-canary question", k=1)
    httpx.get(live_server.url + "/nope%0Aforged")

    wait_until(lambda: 'path="/nope\\nforged"' in live_server.output(), message="the access log line")
    log = live_server.output()

    assert 'method=GET path="/search" status=200 ms=' in log
    assert 'method=GET path="/nope\\nforged" status=404 ms=' in log
    assert "access-log-canary" not in log
    assert '"GET /search' not in log  # uvicorn's own access log is off: one line per request


def test_cors_allows_only_the_configured_origins(admin_server, live_server):
    allowed = httpx.get(admin_server.url + "/healthz", headers={"Origin": ALLOWED_ORIGIN})
    other = httpx.get(admin_server.url + "/healthz", headers={"Origin": "https://elsewhere.example"})
    preflight = httpx.options(
        admin_server.url + "/ask",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    default = httpx.get(live_server.url + "/healthz", headers={"Origin": ALLOWED_ORIGIN})

    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in default.headers


def test_openapi_documents_every_endpoint_and_model(live_server, admin_server):
    schema = httpx.get(live_server.url + "/openapi.json").json()

    assert {"/", "/search", "/ask", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    parameters = {p["name"]: p for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert parameters["q"]["required"] is True
    assert parameters["q"]["schema"]["maxLength"] == 512
    assert (parameters["k"]["schema"]["minimum"], parameters["k"]["schema"]["maximum"]) == (1, 50)
    assert parameters["source"]["schema"]["type"] == "array"
    components = schema["components"]["schemas"]
    result = components["Result"]["properties"]
    assert HIT_FIELDS | OPTIONAL_FIELDS <= set(result)
    ask_schema = components["AskRequest"]
    assert ask_schema["additionalProperties"] is False and ask_schema["required"] == ["question"]
    assert components["Filters"]["additionalProperties"] is False
    assert {"ErrorBody", "Readiness", "Health", "AnswerBody"} <= set(components)
    for path in ("/search", "/ask"):
        responses = next(iter(schema["paths"][path].values()))["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AnswerBody"
        }
        assert responses["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    admin = httpx.get(admin_server.url + "/openapi.json").json()
    assert "/admin/reload" in admin["paths"]
    assert {"ReloadBody"} <= set(admin["components"]["schemas"])


# --- settings -----------------------------------------------------------------------------------------------

BUILD_ONLY = {"keep_versions", "flat_max_vectors", "float_max_vectors", "span_search_max_vectors",
              "passage_search_max_vectors", "corpus_encoder", "backend", "milvus_uri", "milvus_token_env"}


def test_serve_help_lists_every_serving_setting_with_its_env_var():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    missing = [
        env for name, env, _, _ in settings_table() if name not in BUILD_ONLY and env not in result.output
    ]
    assert missing == []


def test_settings_read_the_environment_and_check_their_values(monkeypatch):
    monkeypatch.setenv("CLIPSEARCH_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("CLIPSEARCH_ADMIN_TOKEN", "")
    monkeypatch.setenv("CLIPSEARCH_RELOAD_INTERVAL", "0.5")

    settings = Settings()

    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.admin_token is None  # empty means none, never "the empty token opens the door"
    assert settings.reload_interval == 0.5
    assert "s3cret" not in repr(Settings(admin_token="s3cret"))
    with pytest.raises(ValueError, match="default_k"):
        Settings(default_k=20, max_k=10)


def test_serve_refuses_a_bad_setting_with_exit_status_2():
    result = CliRunner().invoke(app, ["serve", "--port", "70000"])

    assert result.exit_code == 2
    assert "port" in result.output
