"""One `Settings` object for the whole project, read from `SAFELLM_*` environment variables.

Settings are created at the edges (CLI, web app, tests) and passed in; the core never reads the
environment itself. `apply_offline_switches()` is called once by each entry point so that no library
phones home (see the table in the module constant below).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from safellm import resources

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
    "RAY_USAGE_STATS_ENABLED": "0",
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
    synthetic_chartevents: Literal["none", "vitals", "full"] = Field(
        default="none",
        description="CHARTEVENTS of the synthetic hospital: none, vitals (vital signs and GCS, "
        "hourly in the ICU) or full (plus the bulk of other charted items: the real table's "
        "size).",
    )
    seed: int = Field(default=0, description="Seed for the synthetic hospital and model training.")
    duckdb_memory_limit: str = Field(
        default="2GB", description="DuckDB memory cap; larger work spills to disk."
    )
    duckdb_threads: int = Field(default=2, ge=1)
    llm_model: str = Field(
        default="local",
        description="Default model: local (packaged GGUF), fake, or any LiteLLM model string.",
    )
    llm_api_base: str | None = Field(
        default=None, description="API base for LiteLLM models (a vLLM / llama.cpp server...)."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="API key for LiteLLM models.")
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Per-call timeout of the LLM.")
    llm_max_retries: int = Field(default=2, ge=0, description="Retries of a failed LLM call.")
    local_model: str = Field(
        default="qwen2.5-coder-1.5b",
        description="Packaged local model (qwen2.5-coder-1.5b, qwen2.5-coder-0.5b).",
    )
    local_model_path: Path | None = Field(
        default=None,
        description="Any GGUF file to run locally instead of a packaged model (a Hugging Face "
        "model folder with SAFELLM_LOCAL_BACKEND=transformers).",
    )
    local_backend: Literal["llama.cpp", "transformers"] = Field(
        default="llama.cpp",
        description="What runs the local model: llama.cpp (a GGUF file: the packaged model or "
        "SAFELLM_LOCAL_MODEL_PATH) or transformers (SAFELLM_LOCAL_MODEL_PATH=a Hugging Face model "
        "folder, read offline; for a GPU or a model without a GGUF).",
    )
    local_device: str | None = Field(
        default=None,
        description="Device of the transformers backend (cpu, cuda, cuda:1...) [cuda when torch "
        "sees one, else cpu].",
    )
    local_timeout_s: float = Field(
        default=300.0, gt=0, description="Per-call timeout of the local model (CPU generation)."
    )
    local_n_ctx: int = Field(default=4096, ge=512, description="Context window of the local model.")
    local_threads: int = Field(default=2, ge=1, description="CPU threads of the local model.")
    local_kv_cache_mb: int = Field(
        default=512,
        ge=0,
        description="Memory for saved KV states of the local model (prefetched patients, fixed "
        "prompt prefixes), least recently used dropped first; 0 keeps none.",
    )
    local_draft_tokens: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Prompt-lookup drafting of the local model: up to this many tokens copied "
        "from the prompt are checked in one forward pass, keeping greedy decoding's output. Off "
        "by default: on 2 CPU cores a checked token costs most of a forward pass (the 152k-word "
        "output layer), so drafting is slower here (see bench/llm.py --part speed).",
    )
    model_cache: Path | None = Field(
        default=None,
        description="Where packaged models are assembled [$SAFELLM_HOME/cache/models].",
    )
    prompts_dir: Path = Field(
        default_factory=resources.prompts_dir,
        description="Folder of prompt files (one YAML per prompt and version) [packaged prompts/].",
    )
    evals_dir: Path = Field(
        default_factory=resources.evals_dir,
        description="Folder of eval suites and labelled sets (NAME.vN.yaml) [packaged evals/].",
    )
    risk_model: Literal["tabular", "temporal"] = Field(
        default="tabular",
        description="Which risk model predicts and is explained: the task's tabular bundle "
        "(SHAP) or its temporal model (event sequences, integrated gradients; classification "
        "tasks, trained with `safellm train --temporal`).",
    )
    explain_top_facts: int = Field(
        default=6, ge=1, le=30, description="Contributions shown to the LLM."
    )
    explain_notes: int = Field(default=3, ge=0, le=20, description="Note chunks shown to the LLM.")
    queue_max_waiting: int = Field(
        default=8,
        ge=0,
        description="Questions that may wait, first come first served, while the model answers "
        "another; beyond that a request is refused (HTTP 503 with Retry-After).",
    )
    queue_per_key: int = Field(
        default=4,
        ge=0,
        description="Places in the queue (waiting or being answered) one API key may hold; "
        "beyond that its requests are refused (503) so other keys still get in. 0: no limit.",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority (nice) of the threads that make Facts and run the model, below "
        "the server's event loop, so /health, predictions and refusals stay fast under load; "
        "0: unchanged.",
    )
    prefetch: bool = Field(
        default=True,
        description="When a patient is selected (chat) or predicted (API), prefill the model with "
        "that patient's prompt in the background while the model is idle (models that can).",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="API keys (comma-separated in SAFELLM_API_KEYS); every route but /health "
        "needs one as `Authorization: Bearer <key>`.",
    )
    api_rate_per_minute: int = Field(default=60, ge=1, description="Requests per key per minute.")
    api_max_body_bytes: int = Field(default=16_384, ge=256, description="Largest request body.")
    fhir_max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body of the FHIR and CDS Hooks routes (a patient's Bundle), "
        "and largest answer read from a CDS client's FHIR server.",
    )
    cds_fetch_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Timeout of each read from a CDS client's FHIR server (prefetch not sent).",
    )
    metrics: Literal["key", "open", "off"] = Field(
        default="key",
        description="Prometheus metrics at /metrics: key (an API key, as the other routes), "
        "open (no key: for a scraper inside the network) or off.",
    )
    cds_public_url: str | None = Field(
        default=None,
        description="Base URL of this service as clinicians' browsers reach it, for the links "
        "of CDS cards [default: the URL the CDS request came to].",
    )
    api_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are "
        "trusted (comma-separated) [default: none, the client's own address counts].",
    )
    api_deadline_s: float = Field(
        default=180.0,
        gt=0,
        description="An explanation request's LLM work stops after this long (503 "
        "deadline_exceeded); it also stops when its client leaves.",
    )
    api_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A connection whose request headers are not complete this long after it "
        "opened is closed.",
    )
    api_shutdown_s: int = Field(
        default=10, ge=1, le=600, description="At most this long to finish requests on shutdown."
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="Secret of the audit trail's hash chain (at least 32 characters) [default: a "
        "key file made beside the audit database]. Keep it off the host to guard against its "
        "administrators.",
        min_length=32,
    )
    audit_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/database: the audit trail and the "
        "per-key rate limits in PostgreSQL, shared by every API replica that names it (needs "
        "SAFELLM_AUDIT_KEY) [default: SQLite at $SAFELLM_HOME/audit.sqlite, limits in memory].",
    )

    @field_validator("audit_url", mode="before")
    @classmethod
    def _postgres_url(cls, v: object) -> object:
        text = v.get_secret_value() if isinstance(v, SecretStr) else v
        if isinstance(text, str):
            if not text.strip():
                return None
            if not text.startswith(("postgresql://", "postgres://")):
                # the value is not echoed: it may hold a password
                raise ValueError("must be a postgresql:// URL (leave it unset for SQLite)")
        return v

    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS (none by default)."
    )
    api_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Models a client may ask for by name (always the default model).",
    )

    @field_validator(
        "api_keys", "api_cors_origins", "api_models", "api_trusted_proxies", mode="before"
    )
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return [x.strip() for x in text.split(",") if x.strip()]
        return v

    guard_judge: bool = Field(
        default=True,
        description="Ask the local model whether a cited note supports a sentence (note grounding).",
    )
    drift_psi_alert: float = Field(
        default=0.25, gt=0, description="Drift: a feature alerts at this PSI or above."
    )
    drift_ks_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Drift: KS p-value below this (Bonferroni over the features) alerts...",
    )
    drift_ks_min_stat: float = Field(
        default=0.1, gt=0, le=1, description="... when the KS statistic is at least this."
    )
    drift_quality_rate_increase: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Drift: the latest window's fallback or guard-failure rate above the earlier "
        "windows' by more than this alerts.",
    )
    drift_auroc_drop: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Concept drift: a period whose AUROC is more than this below the model's "
        "validation AUROC, its CI wholly below it, alerts.",
    )
    drift_intercept_alert: float = Field(
        default=0.5,
        gt=0,
        description="Concept drift: a period whose calibration intercept is beyond ± this, its CI "
        "excluding 0, alerts.",
    )
    drift_brier_increase: float = Field(
        default=0.03,
        gt=0,
        lt=1,
        description="Concept drift: a period whose Brier score exceeds the validation Brier score "
        "by more than this, its CI wholly above it, alerts.",
    )
    drift_min_window_units: int = Field(
        default=30, ge=2, description="Concept drift: periods with fewer units are not judged."
    )
    guard_policy: Path = Field(
        default_factory=resources.policy_file,
        description="The guard policy file [packaged guardrails/clinical.yaml].",
    )

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def synthetic_dir(self) -> Path:
        return self.home / "synthetic"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def audit_path(self) -> Path:
        """The audit trail of explanations served (SQLite)."""
        return self.home / "audit.sqlite"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.home / "cache" / "models"


def apply_offline_switches(environ: dict[str, str] | None = None) -> None:
    """Set the offline switches in `environ` (default: the process environment), keeping user values."""
    env = os.environ if environ is None else environ
    for key, value in OFFLINE_SWITCHES.items():
        env.setdefault(key, value)
