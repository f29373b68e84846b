"""Versioned model bundles under `<SAFELLM_HOME>/models/<task>/<version>/`, written atomically.

A bundle holds the fitted pipelines of every model trained for the task (the `default` one explains
predictions), the feature list, a background sample for linear SHAP, the training-data hash, the
metrics with CIs and the code version. `LATEST` names the newest version.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.pipeline import Pipeline

from safellm import __version__
from safellm.errors import ArtifactError
from safellm.fsutil import atomic_write_text, staged_dir
from safellm.risk.evaluate import Estimate

BUNDLE_FILE = "bundle.joblib"
META_FILE = "bundle.json"


class VersionMeta(BaseModel):
    """What every model bundle (tabular or temporal) records about itself in `bundle.json`."""

    task: str
    version: str
    created: str
    kind: str
    target: str
    bands: tuple[float, float]
    data_hash: str
    data_source: str
    code_version: str
    n_units: int
    n_patients: int


class BundleMeta(VersionMeta):
    default_model: str
    models: list[str]
    params: dict[str, dict[str, Any]]
    numeric: list[str]
    categorical: list[str]
    metrics: dict[str, dict[str, Estimate]]
    baseline: dict[str, Estimate] | None = None
    # Per classifier: log-odds added to the model's output so that the mean predicted risk
    # matches the observed rate (class weighting shifts it); fitted on out-of-fold predictions.
    offsets: dict[str, float] = Field(default_factory=dict)


@dataclass
class Bundle:
    meta: BundleMeta
    pipelines: dict[str, Pipeline]
    background: pd.DataFrame
    path: Path


def code_version() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        ).stdout.strip()
    except OSError:
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def new_version(task: str, data_hash: str) -> str:
    return f"{task}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{data_hash[:8]}"


def save_bundle(
    models_dir: Path,
    meta: BundleMeta,
    pipelines: dict[str, Pipeline],
    background: pd.DataFrame,
    extra: dict[str, Path] | None = None,
) -> Path:
    """Write the bundle to a temporary folder, rename it into place, then move LATEST."""

    def write(tmp: Path) -> None:
        joblib.dump({"pipelines": pipelines, "background": background}, tmp / BUNDLE_FILE)
        (tmp / META_FILE).write_text(meta.model_dump_json(indent=2))

    return write_version(Path(models_dir) / meta.task, meta.version, write, extra)


def write_version(
    task_dir: Path,
    version: str,
    write: Callable[[Path], None],
    extra: dict[str, Path] | None = None,
) -> Path:
    """A bundle folder `task_dir/version`: `write` fills a temporary folder, the `extra` files
    are copied in, the folder is renamed into place, then LATEST names it."""
    task_dir.mkdir(parents=True, exist_ok=True)
    final = task_dir / version
    with staged_dir(final) as tmp:
        write(tmp)
        for name, src in (extra or {}).items():
            shutil.copy(src, tmp / name)
    atomic_write_text(task_dir / "LATEST", version + "\n")
    return final


def version_dir(task_dir: Path, version: str | None, missing: str) -> Path:
    """The folder of `version`, or of the version LATEST names (`missing`: the error when there
    is none)."""
    if version is None:
        latest = task_dir / "LATEST"
        if not latest.exists():
            raise ArtifactError(missing)
        version = latest.read_text().strip()
    return task_dir / version


def load_bundle(models_dir: Path, task: str, version: str | None = None) -> Bundle:
    path = version_dir(
        Path(models_dir) / task,
        version,
        f"no trained model for task {task!r} under {models_dir}: run `safellm train --task {task}`",
    )
    if not (path / META_FILE).exists():
        raise ArtifactError(f"model bundle {path} not found or incomplete")
    meta = BundleMeta.model_validate(json.loads((path / META_FILE).read_text()))
    payload = joblib.load(path / BUNDLE_FILE)
    return Bundle(
        meta=meta, pipelines=payload["pipelines"], background=payload["background"], path=path
    )
