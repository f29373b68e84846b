"""Training with honest evaluation: folds grouped by patient, hyper-parameters chosen inside the
training folds only (nested CV), out-of-fold predictions for every metric, then a final fit on all
data with parameters chosen by grouped CV."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline

from safellm.errors import UserInputError
from safellm.risk.dataset import TaskData
from safellm.risk.evaluate import CLASSIFICATION, REGRESSION, Estimate, bootstrap
from safellm.risk.pipelines import GRIDS, make_pipeline, models_for

Progress = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass
class ModelRun:
    """One model's out-of-fold evaluation and its final fit."""

    name: str
    oof: np.ndarray  # probability (classification) or days (regression), per unit
    fold_params: list[dict[str, Any]]
    metrics: dict[str, Estimate]
    pipeline: Pipeline | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRun:
    task: str
    kind: str
    runs: dict[str, ModelRun]
    chosen: str
    folds: np.ndarray  # outer fold index per unit
    baseline: dict[str, Estimate] | None = None


def outer_splitter(kind: str, n_splits: int, seed: int) -> StratifiedGroupKFold | GroupKFold:
    if kind == "classification":
        return StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return GroupKFold(n_splits=n_splits)


def outer_folds(td: TaskData, *, seed: int = 0, n_splits: int = 5) -> np.ndarray:
    """The outer fold (0 .. n_splits - 1) of each unit: patient-grouped, stratified for a
    classification task; the folds `train_task` cross-validates on (same data, seed and count)."""
    folds = np.full(len(td.y), -1)
    for k, (_, test) in enumerate(
        outer_splitter(td.kind, n_splits, seed).split(td.X, _target(td), td.groups)
    ):
        folds[test] = k
    return folds


def _check_size(td: TaskData, n_splits: int) -> None:
    n_groups = len(np.unique(td.groups))
    if n_groups < 2 * n_splits:
        raise UserInputError(
            f"{td.task}: {n_groups} patients are too few for {n_splits}-fold grouped "
            f"cross-validation; build a larger dataset"
        )
    if td.kind == "classification":
        pos = int(td.y.sum())
        if pos < n_splits or pos > len(td.y) - n_splits:
            raise UserInputError(
                f"{td.task}: {pos} positives in {len(td.y)} units — too few of one class for "
                f"{n_splits}-fold stratified cross-validation"
            )


def _target(td: TaskData) -> np.ndarray:
    # Length of stay is modelled on the log-days scale; everything else as is.
    return np.log(np.maximum(td.y, 1e-3)) if td.kind == "regression" else td.y


def _search(model: str, td: TaskData, idx: np.ndarray, seed: int, inner: int) -> GridSearchCV:
    pipe = make_pipeline(model, td.numeric, td.categorical, seed)
    if td.kind == "classification":
        cv: Any = StratifiedGroupKFold(n_splits=inner, shuffle=True, random_state=seed)
        scoring = "roc_auc"
    else:
        cv = GroupKFold(n_splits=inner)
        scoring = _MAE_DAYS  # tuned on what is reported: MAE in days, not in log-days
    search = GridSearchCV(
        pipe, GRIDS[model], cv=cv, scoring=scoring, error_score=np.nan, refit=True, n_jobs=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(td.X.iloc[idx], _target(td)[idx], groups=td.groups[idx])
    failed = inner_failures(search, inner)
    if failed:
        log.warning(
            "%s/%s: %d of %d inner-fold scores undefined (e.g. one class in a fold); "
            "hyper-parameters chosen from the rest",
            td.task,
            model,
            failed,
            inner * len(search.cv_results_["params"]),
        )
    return search


def _neg_mae_days(y_log: np.ndarray, pred_log: np.ndarray) -> float:
    return -float(np.mean(np.abs(np.exp(y_log) - np.exp(pred_log))))


_MAE_DAYS = make_scorer(_neg_mae_days)


def inner_failures(search: GridSearchCV, inner: int) -> int:
    """How many inner-fold scores of a search are undefined (NaN)."""
    scores = np.column_stack([search.cv_results_[f"split{i}_test_score"] for i in range(inner)])
    return int(np.isnan(scores).sum())


def _predict(pipe: Pipeline, kind: str, X: Any) -> np.ndarray:
    if kind == "classification":
        return np.asarray(pipe.predict_proba(X)[:, 1])
    return np.exp(np.asarray(pipe.predict(X)))


def train_task(
    td: TaskData,
    *,
    seed: int = 0,
    n_splits: int = 5,
    inner_splits: int = 3,
    n_boot: int = 200,
    models: list[str] | None = None,
    progress: Progress | None = None,
) -> TaskRun:
    """Nested grouped CV for each model, metrics with CIs, then final fits on all units."""
    _check_size(td, n_splits)
    step = progress or (lambda _s: None)
    models = models or models_for(td.kind)
    y = _target(td)
    folds = outer_folds(td, seed=seed, n_splits=n_splits)
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(n_splits)]
    metric_fns = CLASSIFICATION if td.kind == "classification" else REGRESSION
    runs: dict[str, ModelRun] = {}
    for model in models:
        oof = np.full(len(y), np.nan)
        fold_params = []
        for k, (train, test) in enumerate(splits):
            search = _search(model, td, train, seed + k, inner_splits)
            oof[test] = _predict(search.best_estimator_, td.kind, td.X.iloc[test])
            fold_params.append(dict(search.best_params_))
            step(f"{td.task}/{model} fold {k + 1}")
        metrics = bootstrap(metric_fns, td.y, oof, td.groups, n_boot=n_boot, seed=seed)
        final = _search(model, td, np.arange(len(y)), seed, inner_splits)
        runs[model] = ModelRun(
            model, oof, fold_params, metrics, final.best_estimator_, dict(final.best_params_)
        )
        step(f"{td.task}/{model} final fit")
    baseline = None
    if td.kind == "regression":
        base = np.empty(len(y))
        for train, test in splits:
            base[test] = np.median(td.y[train])
        baseline = bootstrap(REGRESSION, td.y, base, td.groups, n_boot=n_boot, seed=seed)
    chosen = choose(runs, td.kind)
    return TaskRun(td.task, td.kind, runs, chosen, folds, baseline)


def choose(runs: dict[str, ModelRun], kind: str) -> str:
    """The model to explain with: best out-of-fold AUROC (classifiers) or MAE (regression);
    ties go to the tree model, whose exact SHAP values are fastest."""

    def score(name: str) -> tuple[float, int]:
        m = runs[name].metrics
        val = m["auroc"].point if kind == "classification" else -(m["mae"].point or np.inf)
        return (float(val) if val is not None else -np.inf, int(name.startswith("hgb")))

    return max(runs, key=score)


def refit(pipe: Pipeline, td: TaskData) -> Pipeline:
    """A fresh fit of the same pipeline on all of `td` (used by analyses that vary the data)."""
    p = clone(pipe)
    p.fit(td.X, _target(td))
    return p
