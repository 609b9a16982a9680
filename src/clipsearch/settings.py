"""The one Settings object: every setting with its default and help, read from ``CLIPSEARCH_*`` env vars.

Precedence: defaults < environment (``CLIPSEARCH_<NAME>``) < command-line flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "CLIPSEARCH_"


class Settings(BaseSettings):
    """Settings of the index, the search and the HTTP service."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    index: Path = Field(
        Path("index/example"), description="Index directory to search and serve (its `current` version)."
    )
    model: str | None = Field(
        None,
        description="Model name or path; default: the one the index manifest records. "
        "When given for a query it must match the index's model fingerprint.",
    )
    cache_dir: Path | None = Field(
        None, description="Cache of builds (embeddings) and of the ONNX query encoder; default INDEX/cache."
    )
    query_encoder: Literal["onnx", "torch"] = Field(
        "onnx",
        description="What encodes questions: onnx (the index's model exported to ONNX Runtime, verified against "
        "torch, cached in the cache directory) or torch (sentence-transformers).",
    )
    onnx_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="Weights of the ONNX query encoder: fp32, or dynamic int8 (used only if it verifies)."
    )
    corpus_encoder: Literal["onnx", "torch"] = Field(
        "onnx",
        description="At build: what embeds the clips: onnx (the model's verified fp32 ONNX export, kept in the cache "
        "directory; faster than torch in batches) or torch (sentence-transformers). Either gives the same vectors "
        "(cosine >= 0.999, checked at export).",
    )
    encoder_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Intra-op threads of the ONNX query encoder (concurrent requests share them; the torch "
        "fallback always encodes on one thread per request).",
    )
    search_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="Threads a search uses when no other search is running: BM25 scores the question while it is "
        "encoded, and the vector searches and ranking are shared out; with others in flight (or 1) a search runs on "
        "its own thread.",
    )
    flat_max_vectors: int = Field(
        5_000,
        ge=0,
        description="At build: a field (question, answer, sentence or passage vectors) with more vectors than this "
        "gets an HNSW index instead of exact flat search.",
    )
    float_max_vectors: int = Field(
        50_000,
        ge=0,
        description="At build: a field with more vectors than this gets an IVF index over 8-bit codes, its float "
        "vectors kept as float16 on disk (memory-mapped) to re-rank what the codes find exactly.",
    )
    span_search_max_vectors: int = Field(
        2_000_000,
        ge=0,
        description="At build: sentence and passage fields with more vectors than this get no index: their vectors "
        "(float16, memory-mapped) rank the candidate clips the question and answer vectors and BM25 find.",
    )
    passage_search_max_vectors: int = Field(
        50_000,
        ge=0,
        description="At build: a passage field with more vectors than this gets no index: its vectors rank the "
        "candidates the other fields and BM25 find, which then read 1.4 times as deep.",
    )
    keep_versions: int = Field(3, ge=1, description="Index versions kept after a build, for rollback.")
    backend: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="At build: where the vectors go: faiss (files in the index directory) or milvus (a collection "
        "per version on a Milvus server or Milvus Lite file; readers take it from the manifest).",
    )
    milvus_uri: str | None = Field(
        None,
        description="At build, with --backend milvus: the Milvus server (http://host:19530) or a Milvus Lite .db "
        "file, relative to the index directory. Default: milvus.db in the index directory.",
    )
    milvus_token_env: str | None = Field(
        None,
        description="At build, with --backend milvus: the name of the env var that holds the Milvus token (the "
        "token itself is never written down; readers read the same variable).",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP service binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP service listens on.")
    log_level: str = Field(
        "info",
        pattern="^(critical|error|warning|info|debug)$",
        description="Log level: critical, error, warning, info or debug.",
    )
    default_k: int = Field(10, ge=1, le=50, description="Results per query when k is not given.")
    max_k: int = Field(50, ge=1, le=1000, description="Largest k a request may ask for.")
    max_query_chars: int = Field(
        512, ge=1, le=100_000, description="Longest question a request may ask, in characters after trimming."
    )
    max_body_bytes: int = Field(16 * 1024, ge=1, description="Largest request body, in bytes (larger: 413).")
    max_query_string_bytes: int = Field(
        8 * 1024, ge=1, description="Longest URL query string, in bytes as sent (longer: 414)."
    )
    max_in_flight: int = Field(
        64, ge=1, description="Requests handled at once; beyond it the service answers 503 with Retry-After."
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a whole request (head and body) once its connection is open or "
        "its previous response sent; a connection still sending then is closed (slowloris). The answer may take "
        "longer.",
    )
    reload_interval: float = Field(
        2.0, ge=0, description="Seconds between checks of INDEX/current for a new version; 0 turns them off."
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of POST /admin/reload; without one the admin routes do not exist."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (comma-separated); default none.",
    )

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        """An empty token (``CLIPSEARCH_ADMIN_TOKEN=``) means none, never "the empty token opens the door"."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _default_k_within_max_k(self) -> Settings:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) is larger than max_k ({self.max_k})")
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """``"a, b"`` and ``["a,b"]`` (a CLI option repeated or given once) both mean ``["a", "b"]``."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return value
        return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def settings_table() -> list[tuple[str, str, str, str]]:
    """(name, env var, default, help) of every setting, for --help and the docs."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None or default == [] else str(default)
        rows.append((name, ENV_PREFIX + name.upper(), shown, info.description or ""))
    return rows
