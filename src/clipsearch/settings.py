"""The one Settings object: every setting with its default and help, read from ``CLIPSEARCH_*`` env vars.

Precedence: defaults < environment (``CLIPSEARCH_<NAME>``) < command-line flags.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CLIPSEARCH_"


class Settings(BaseSettings):
    """Settings of the index, the search and the HTTP service."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    index: Path = Field(Path("index/example"), description="Index directory to search and serve (its `current` version).")
    model: str | None = Field(
        None,
        description="Model name or path; default: the one the index manifest records. "
        "When given for a query it must match the index's model fingerprint.",
    )
    cache_dir: Path | None = Field(None, description="Embedding cache for builds; default INDEX/cache.")
    keep_versions: int = Field(3, ge=1, description="Index versions kept after a build, for rollback.")
    host: str = Field("127.0.0.1", description="Address the HTTP service binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP service listens on.")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$", description="Log level.")
    default_k: int = Field(10, ge=1, le=50, description="Results per query when k is not given.")
    max_k: int = Field(50, ge=1, le=1000, description="Largest k a request may ask for.")


def settings_table() -> list[tuple[str, str, str, str]]:
    """(name, env var, default, help) of every setting, for --help and the docs."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = "" if info.default is None else str(info.default)
        rows.append((name, ENV_PREFIX + name.upper(), default, info.description or ""))
    return rows
