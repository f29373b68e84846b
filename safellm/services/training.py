"""Training, the use case behind `safellm train` and `safellm demo`: for each task, train +
evaluate, fairness, imbalance analysis, plots (SHAP included), model card, bundle, MLflow run.
Every output lands in `<home>/runs/<version>/` and in the bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from safellm.config import Settings
from safellm.explain.loader import tabular_explainer
from safellm.explain.plots import waterfall
from safellm.fsutil import staged_dir
from safellm.progress import Stage, Step, by_step, quiet
from safellm.risk import plots
from safellm.risk.card import model_card
from safellm.risk.dataset import load_task
from safellm.risk.evaluate import Estimate, calibration_intercept, shift_log_odds
from safellm.risk.registry import BundleMeta, code_version, new_version, save_bundle
from safellm.risk.train import train_task
from safellm.tasks import TEMPORAL_TASKS, task_names, temporal_task


class TrainSummary(BaseModel):
    task: str
    version: str
    default_model: str
    bundle_dir: Path
    run_dir: Path
    mlflow_run_id: str | None
    metrics: dict[str, dict[str, Estimate]]
    baseline: dict[str, Estimate] | None
    seconds: float


def train_steps(kind: str, n_splits: int = 5) -> int:
    """Progress-bar total for one task (folds + final fit per model, then reporting steps)."""
    return 2 * (n_splits + 1) + 5


def train_and_register(
    task: str,
    data_dir: Path,
    home: Path,
    *,
    seed: int = 0,
    n_boot: int = 200,
    log_mlflow: bool = True,
    progress: Step | None = None,
) -> TrainSummary:
    from safellm.risk.fairness import fairness_report, fairness_table, plot_fairness

    started = time.perf_counter()
    step = progress or (lambda _s: None)
    td = load_task(data_dir, task)
    run = train_task(td, seed=seed, n_boot=n_boot, progress=step)
    version = new_version(task, td.data_hash)
    run_dir = Path(home) / "runs" / version
    chosen = run.runs[run.chosen]
    assert chosen.pipeline is not None
    oof = {m: r.oof for m, r in run.runs.items()}

    # Class weighting inflates a classifier's probabilities: a log-odds offset fitted on its
    # out-of-fold predictions (calibration-in-the-large) brings the mean risk back to the observed
    # rate. Risks, bands and fairness below use the corrected predictions.
    offsets = (
        {m: calibration_intercept(td.y, r.oof) for m, r in run.runs.items()}
        if td.kind == "classification"
        else {}
    )
    risk_oof = shift_log_odds(chosen.oof, offsets.get(run.chosen, 0.0))
    # Bands: quantiles of the default model's out-of-fold risks (top 20 % = high).
    lo, hi = np.quantile(risk_oof, [0.5, 0.8])
    meta = BundleMeta(
        task=task,
        version=version,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        kind=td.kind,
        target=td.target,
        default_model=run.chosen,
        models=list(run.runs),
        params={m: r.params for m, r in run.runs.items()},
        numeric=td.numeric,
        categorical=td.categorical,
        bands=(float(lo), float(hi)),
        data_hash=td.data_hash,
        data_source=str(json.loads((Path(data_dir) / "manifest.json").read_text())["source"]),
        code_version=code_version(),
        n_units=len(td.frame),
        n_patients=int(td.frame["subject_id"].nunique()),
        metrics={m: r.metrics for m, r in run.runs.items()},
        baseline=run.baseline,
        offsets=offsets,
    )

    # every artifact goes to a temporary folder that becomes `run_dir` only once complete
    with staged_dir(run_dir) as work:
        # Plots of performance
        names: list[str] = []
        if td.kind == "classification":
            plots.pr_curves(td.y, oof, work / "pr_curve.png", f"{task}: precision-recall (OOF)")
            plots.calibration_curves(
                td.y, oof, work / "calibration.png", f"{task}: calibration (OOF)"
            )
            names += ["pr_curve.png", "calibration.png"]
        else:
            plots.residuals(
                td.y,
                oof,
                work / "predicted_vs_observed.png",
                f"{task}: predicted vs observed (OOF)",
            )
            names.append("predicted_vs_observed.png")
        step(f"{task} performance plots")

        # Fairness of the default model's out-of-fold predictions
        # at the threshold the product flags with: the "high" band
        threshold = float(hi) if td.kind == "classification" else None
        fair = fairness_report(td, risk_oof, threshold=threshold, n_boot=n_boot, seed=seed)
        fair_df = fairness_table(fair)
        (work / "fairness.json").write_text(fair.model_dump_json(indent=2))
        fair_df.to_csv(work / "fairness.csv", index=False)
        plot_fairness(fair, work / "fairness.png")
        names.append("fairness.png")
        step(f"{task} fairness")

        # Imbalance strategies (classification only)
        imb_df = None
        if td.kind == "classification":
            from safellm.risk.imbalance import (
                compare_imbalance,
                imbalance_table,
                plot_imbalance_metrics,
                plot_pr_curves,
            )

            imb = compare_imbalance(td, seed=seed, n_boot=n_boot)
            (work / "imbalance.json").write_text(imb.model_dump_json(indent=2))
            imb_df = imbalance_table(imb)
            imb_df.to_csv(work / "imbalance.csv", index=False)
            plot_pr_curves(imb, work / "imbalance_pr.png")
            plot_imbalance_metrics(imb, work / "imbalance_metrics.png")
            names += ["imbalance_pr.png", "imbalance_metrics.png"]
        step(f"{task} imbalance")

        # SHAP: global beeswarm on all units, waterfall for the highest-risk unit
        from safellm.risk.registry import Bundle

        bundle = Bundle(
            meta=meta,
            pipelines={m: r.pipeline for m, r in run.runs.items() if r.pipeline is not None},
            background=_background(td.X, seed),
            path=work,
        )
        explainer = tabular_explainer(bundle)
        contrib, data, labels = explainer.global_view(td.frame)
        plots.beeswarm(
            contrib,
            data,
            labels,
            explainer.base_value,
            work / "shap_beeswarm.png",
            f"{task}: SHAP values ({explainer.space})",
        )
        top = int(np.argmax(contrib.sum(axis=1)))  # the highest model output
        waterfall(explainer.facts(td.frame.iloc[top]), work / "shap_waterfall_top.png")
        names += ["shap_beeswarm.png", "shap_waterfall_top.png"]
        step(f"{task} SHAP plots")

        metrics_doc = {
            "task": task,
            "version": version,
            "default_model": run.chosen,
            "n_units": meta.n_units,
            "n_patients": meta.n_patients,
            "models": {
                m: {
                    "metrics": {k: v.model_dump() for k, v in r.metrics.items()},
                    "params": r.params,
                    "fold_params": r.fold_params,
                }
                for m, r in run.runs.items()
            },
            "baseline": {k: v.model_dump() for k, v in run.baseline.items()}
            if run.baseline
            else None,
        }
        (work / "metrics.json").write_text(json.dumps(metrics_doc, indent=2))
        (work / "model_card.md").write_text(
            model_card(meta, fairness=fair_df, imbalance=imb_df, plots=names)
        )
    bundle_dir = save_bundle(
        Path(home) / "models",
        meta,
        bundle.pipelines,
        bundle.background,
        extra={
            "metrics.json": run_dir / "metrics.json",
            "model_card.md": run_dir / "model_card.md",
        },
    )
    run_id = None
    if log_mlflow:
        from safellm.risk.tracking import log_run

        run_id = log_run(
            home,
            task=task,
            version=version,
            params={
                "seed": seed,
                "default_model": run.chosen,
                **{f"{m}.{k}": v for m, p in meta.params.items() for k, v in p.items()},
            },
            metrics=meta.metrics,
            run_dir=run_dir,
            pipeline=chosen.pipeline,
        )
    step(f"{task} registered")
    return TrainSummary(
        task=task,
        version=version,
        default_model=run.chosen,
        bundle_dir=bundle_dir,
        run_dir=run_dir,
        mlflow_run_id=run_id,
        metrics=meta.metrics,
        baseline=run.baseline,
        seconds=time.perf_counter() - started,
    )


def _background(X: pd.DataFrame, seed: int, n: int = 20000) -> pd.DataFrame:
    """Training rows kept for linear SHAP (all of them up to n; a seeded sample beyond)."""
    return X if len(X) <= n else X.sample(n=n, random_state=seed)


def train_tasks(
    settings: Settings,
    task: str = "all",
    *,
    temporal: bool = False,
    data_dir: Path | None = None,
    home: Path | None = None,
    n_boot: int = 200,
    log_mlflow: bool = True,
    stage: Stage = quiet,
) -> list[Any]:
    """Train and register the models of `task` (`all`: every task) on the built data
    [`settings.data_dir`], under `home` [`settings.home`]: the tabular models (summaries:
    `TrainSummary`), or with `temporal` the temporal model of the tasks it predicts
    (`TemporalSummary`, compared with the tabular bundle trained on the same data)."""
    data_dir, home = data_dir or settings.data_dir, home or settings.home
    if temporal:
        from safellm.services.temporal_training import temporal_steps, train_temporal_and_register

        tasks = list(TEMPORAL_TASKS) if task == "all" else [temporal_task(task)]
        advance = stage("Training the temporal model", len(tasks) * temporal_steps())
        return [
            train_temporal_and_register(
                t, data_dir, home, seed=settings.seed, n_boot=n_boot, progress=by_step(advance)
            )
            for t in tasks
        ]
    tasks = task_names(task)
    advance = stage("Training", sum(train_steps(t) for t in tasks))
    return [
        train_and_register(
            t,
            data_dir,
            home,
            seed=settings.seed,
            n_boot=n_boot,
            log_mlflow=log_mlflow,
            progress=by_step(advance),
        )
        for t in tasks
    ]
