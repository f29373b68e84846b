"""Eval results in the MLflow store under SAFELLM_HOME (experiment `safellm-eval`), one run per
model and prompt: `raw.<metric>`, `guarded.<metric>`, `mutation.<metric>`, the reports attached."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from safellm.evals.report import EvalReport


def log_eval(home: Path, report: EvalReport, paths: dict[str, Path]) -> list[str]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    from safellm.risk.tracking import _experiment, tracking_uri

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(home))
    exp_id = _experiment(mlflow, "safellm-eval", home)
    ids = []
    for run in report.runs:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{run.model} {run.prompt}") as r:
            mlflow.set_tags({"suite": report.suite, "gates_passed": str(report.passed)})
            mlflow.log_params(
                {
                    "suite": report.suite,
                    "model": run.model,
                    "prompt": run.prompt,
                    "followup_prompt": run.followup_prompt or "-",
                    "policy": report.policy,
                    "cases": run.cases,
                }
            )
            flat = {
                f"{mode}.{k}": float(v)
                for mode, ms in run.metrics.items()
                for k, v in ms.items()
                if v is not None
            }
            for k in ("detection_rate", "false_flag_rate"):
                v = getattr(report.mutation, k)
                if v is not None:
                    flat[f"mutation.{k}"] = float(v)
            mlflow.log_metrics(flat)
            for p in paths.values():
                mlflow.log_artifact(str(p))
            ids.append(str(r.info.run_id))
    return ids
