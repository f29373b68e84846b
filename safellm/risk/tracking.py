"""MLflow logging to a local SQLite store under SAFELLM_HOME (no server, no network)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline

from safellm.risk.evaluate import Estimate


def tracking_uri(home: Path) -> str:
    return f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"


def _experiment(mlflow: Any, name: str, home: Path) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    artifacts = (Path(home).resolve() / "mlartifacts").as_uri()
    return str(mlflow.create_experiment(name, artifact_location=artifacts))


def log_run(
    home: Path,
    *,
    task: str,
    version: str,
    params: dict[str, Any],
    metrics: dict[str, dict[str, Estimate]],
    run_dir: Path,
    pipeline: Pipeline,
) -> str:
    """Log one training run (params, metrics with CI bounds, every file of run_dir, the model)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import mlflow.sklearn
    import sklearn

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO chatter about the store
    mlflow.set_tracking_uri(tracking_uri(home))
    exp_id = _experiment(mlflow, f"safellm-{task}", home)
    with mlflow.start_run(experiment_id=exp_id, run_name=version) as run:
        mlflow.set_tags({"task": task, "bundle_version": version})
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        flat: dict[str, float] = {}
        for model, ms in metrics.items():
            for name, est in ms.items():
                for part in ("point", "lo", "hi"):
                    val = getattr(est, part)
                    if val is not None:
                        key = f"{model}.{name}" + ("" if part == "point" else f".{part}")
                        flat[key] = float(val)
        mlflow.log_metrics(flat)
        mlflow.log_artifacts(str(run_dir))
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            # skops format (no pickle). We wrote this pipeline a moment ago, so the scikit-learn
            # and numpy types skops does not trust by default (tree node tables, dtypes) are ours.
            skops_trusted_types=_own_types(pipeline),
        )
        return str(run.info.run_id)


def _own_types(pipeline: Pipeline) -> list[str]:
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    foreign = [t for t in found if not t.startswith(("sklearn.", "numpy."))]
    if foreign:
        raise ValueError(f"pipeline holds types from outside scikit-learn/numpy: {foreign}")
    return list(found)
