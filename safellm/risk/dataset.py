"""A built task table (from `safellm data build`) as model inputs: X, y, patient groups."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safellm.data.catalogue import FEATURES, Feature
from safellm.errors import ArtifactError
from safellm.tasks import task_spec

KEY_COLUMNS = ("unit_id", "subject_id", "hadm_id", "icustay_id", "admittime", "prediction_time")


@dataclass
class TaskData:
    task: str
    frame: pd.DataFrame  # keys + target + features, one row per unit
    features: list[Feature]
    data_hash: str

    @property
    def target(self) -> str:
        return task_spec(self.task).target

    @property
    def kind(self) -> str:
        return task_spec(self.task).kind

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[[f.name for f in self.features]]

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.target].to_numpy(dtype=float)

    @property
    def groups(self) -> np.ndarray:
        return self.frame["subject_id"].to_numpy()

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind != "categorical"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]


def coerce(frame: pd.DataFrame, feats: list[Feature]) -> pd.DataFrame:
    """`frame` with model-input types: categories as strings (missing: "UNKNOWN"), the rest as
    floats (missing: NaN); other columns kept, in their order. Every route to a feature row (the
    built table, a FHIR Bundle) uses it. A new frame built once (assigning column by column costs
    more than the conversions on the FHIR route's few rows)."""
    new: dict[str, Any] = {}
    for f in feats:
        col = frame[f.name]
        if f.kind == "categorical":
            new[f.name] = col.astype("object").where(col.notna(), "UNKNOWN")
        elif col.dtype.kind in "fiub":  # numpy numbers and booleans, pandas' nullable ones
            new[f.name] = col.to_numpy(dtype=float, na_value=np.nan)
        else:
            new[f.name] = pd.to_numeric(col, errors="coerce").astype(float)
    cols = {c: new[c] if c in new else frame[c] for c in frame.columns}
    return pd.DataFrame(cols, index=frame.index)


def load_task(data_dir: Path, task: str) -> TaskData:
    """Read `<data_dir>/<task>.parquet` with the feature list recorded in its manifest."""
    task_spec(task)
    path = Path(data_dir) / f"{task}.parquet"
    manifest_path = Path(data_dir) / "manifest.json"
    if not path.exists() or not manifest_path.exists():
        raise ArtifactError(
            f"{path} not found: build the data first "
            f"(safellm data build --mimic-dir DIR | --synthetic N --out {data_dir})"
        )
    manifest = json.loads(manifest_path.read_text())
    names = manifest["features"][task]
    frame = pd.read_parquet(path)
    feats = [FEATURES[n] for n in names]
    frame = coerce(frame, feats)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return TaskData(task=task, frame=frame, features=feats, data_hash=digest)
