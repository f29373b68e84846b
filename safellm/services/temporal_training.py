"""Training the temporal model, the use case behind `safellm train --temporal`: for each task,
grouped-CV training of the temporal model, metrics with CIs beside the tabular models' (same data,
same folds), plots, bundle. Every output lands in
`<home>/runs/<version>/` and in the bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from safellm.errors import ArtifactError
from safellm.fsutil import staged_dir
from safellm.progress import Step
from safellm.risk import plots
from safellm.risk.evaluate import Estimate, calibration_intercept
from safellm.risk.registry import code_version, new_version
from safellm.risk.temporal_registry import (
    MODEL_NAME,
    TemporalMeta,
    save_temporal,
)
from safellm.tasks import temporal_task

COMPARED = ("auroc", "auprc", "brier")


class TemporalSummary(BaseModel):
    task: str
    version: str
    bundle_dir: Path
    run_dir: Path
    metrics: dict[str, Estimate]
    tabular_version: str | None
    tabular_metrics: dict[str, dict[str, Estimate]]
    epochs: int
    seconds_per_epoch: float | None
    seconds: float


def temporal_steps(n_splits: int = 5) -> int:
    """Progress-bar total for one task (folds + final fit + reports)."""
    return n_splits + 2


def _tabular(
    models_dir: Path, task: str, data_hash: str
) -> tuple[str | None, dict[str, dict[str, Estimate]]]:
    """The latest tabular bundle's metrics when it was trained on the same data (else none)."""
    from safellm.risk.registry import load_bundle

    try:
        bundle = load_bundle(models_dir, task)
    except ArtifactError:
        return None, {}
    if bundle.meta.data_hash != data_hash:
        return None, {}
    return bundle.meta.version, bundle.meta.metrics


def train_temporal_and_register(
    task: str,
    data_dir: Path,
    home: Path,
    *,
    seed: int = 0,
    n_boot: int = 200,
    progress: Step | None = None,
) -> TemporalSummary:
    from safellm.data.events import load_events
    from safellm.risk.dataset import load_task
    from safellm.risk.temporal import train_temporal

    started = time.perf_counter()
    step = progress or (lambda _s: None)
    td = load_task(data_dir, temporal_task(task))
    events = load_events(data_dir, task)
    run = train_temporal(td, events, seed=seed, n_boot=n_boot, progress=step)
    prob = 1 / (1 + np.exp(-run.oof))
    offset = calibration_intercept(td.y, prob)
    risk = 1 / (1 + np.exp(-(run.oof + offset)))
    lo, hi = np.quantile(risk, [0.5, 0.8])
    version = new_version(f"{task}-{MODEL_NAME}", td.data_hash)
    tab_version, tab_metrics = _tabular(Path(home) / "models", task, td.data_hash)
    meta = TemporalMeta(
        task=task,
        version=version,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        kind=td.kind,
        target=td.target,
        config=run.cfg.to_dict(),
        epochs=run.epochs,
        fold_epochs=run.fold_epochs,
        bands=(float(lo), float(hi)),
        offset=float(offset),
        data_hash=td.data_hash,
        data_source=str(json.loads((Path(data_dir) / "manifest.json").read_text())["source"]),
        code_version=code_version(),
        n_units=len(td.frame),
        n_patients=int(td.frame["subject_id"].nunique()),
        metrics=run.metrics,
        tabular_version=tab_version,
        tabular_metrics=tab_metrics,
        seconds_per_epoch=float(np.median(run.epoch_seconds)) if run.epoch_seconds else None,
    )
    run_dir = Path(home) / "runs" / version
    with staged_dir(run_dir) as work:
        preds = {"temporal": risk}
        plots.pr_curves(td.y, preds, work / "pr_curve.png", f"{task}: precision-recall (OOF)")
        plots.calibration_curves(td.y, preds, work / "calibration.png", f"{task}: calibration")
        models = {**tab_metrics, MODEL_NAME: run.metrics}
        rows: dict[str, dict[str, tuple[float, float, float]]] = {}
        for name, ms in models.items():
            got = {m: (ms[m].point, ms[m].lo, ms[m].hi) for m in COMPARED if m in ms}
            full = {m: v for m, v in got.items() if None not in v}
            if len(full) == len(COMPARED):
                rows[name] = full  # type: ignore[assignment]
        if rows:
            plots.metric_intervals(
                rows,
                work / "comparison.png",
                f"{task}: temporal vs tabular models, out-of-fold (same folds)",
            )
        doc = {
            "task": task,
            "version": version,
            "temporal": {k: v.model_dump() for k, v in run.metrics.items()},
            "tabular_version": tab_version,
            "tabular": {
                m: {k: v.model_dump() for k, v in ms.items()} for m, ms in tab_metrics.items()
            },
            "epochs": run.epochs,
            "fold_epochs": run.fold_epochs,
            "seconds_per_epoch": meta.seconds_per_epoch,
        }
        (work / "metrics.json").write_text(json.dumps(doc, indent=2))
    step(f"{task} temporal reports")
    extra = {p.name: p for p in run_dir.iterdir() if p.suffix in (".json", ".png")}
    bundle_dir = save_temporal(Path(home) / "models", meta, run.net, run.vocab, extra=extra)
    step(f"{task} temporal registered")
    return TemporalSummary(
        task=task,
        version=version,
        bundle_dir=bundle_dir,
        run_dir=run_dir,
        metrics=run.metrics,
        tabular_version=tab_version,
        tabular_metrics=tab_metrics,
        epochs=run.epochs,
        seconds_per_epoch=meta.seconds_per_epoch,
        seconds=time.perf_counter() - started,
    )
