"""One `Settings` object for the whole project, read from `SAFELLM_*` environment variables.

Settings are created at the edges (CLI, web app, tests) and passed in; the core never reads the
environment itself. `apply_offline_switches()` is called once by each entry point so that no library
phones home (see the table in the module constant below).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Environment switches that keep every third-party library off the network. They are only set when
# the user has not set them already.
OFFLINE_SWITCHES: dict[str, str] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "OTEL_SDK_DISABLED": "true",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


class Settings(BaseSettings):
    """Everything configurable, with sensible defaults for a laptop."""

    model_config = SettingsConfigDict(env_prefix="SAFELLM_", extra="ignore")

    home: Path = Field(
        default=Path(".safellm"),
        description="Root of every artifact: built data, models, MLflow store, audit DB, caches.",
    )
    mimic_dir: Path | None = Field(
        default=None, description="A MIMIC-III folder (demo or full release) to build from."
    )
    synthetic_patients: int = Field(
        default=1000, ge=1, description="Size of the embedded synthetic hospital."
    )
    seed: int = Field(default=0, description="Seed for the synthetic hospital and model training.")
    duckdb_memory_limit: str = Field(
        default="2GB", description="DuckDB memory cap; larger work spills to disk."
    )
    duckdb_threads: int = Field(default=2, ge=1)
    llm_model: str = Field(default="local", description="Default model for explanations.")

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def synthetic_dir(self) -> Path:
        return self.home / "synthetic"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"


def apply_offline_switches(environ: dict[str, str] | None = None) -> None:
    """Set the offline switches in `environ` (default: the process environment), keeping user values."""
    env = os.environ if environ is None else environ
    for key, value in OFFLINE_SWITCHES.items():
        env.setdefault(key, value)
