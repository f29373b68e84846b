"""Class-imbalance strategies compared on the same grouped outer folds as training.

Strategies (one model, fixed default hyper-parameters, out-of-fold predictions for every unit):

- ``none``: no class weights, threshold 0.5;
- ``class_weight``: ``class_weight="balanced"``, threshold 0.5;
- ``random_over`` / ``random_under``: imblearn random over-/under-sampling of the training fold;
- ``smote``: SMOTE-NC on the imputed but un-encoded training fold (k adapted to the fold's minority
  count): numbers are interpolated, while categories, yes/no features and missing-value indicators
  take the most frequent value among the neighbours, so no fractional category or flag is made up;
  the model's usual encoding (one-hot; scaling for linear models) follows the resampling;
- ``threshold_tuning``: no weights; the threshold maximising F1 on inner out-of-fold predictions of
  the training fold, applied to the test fold.

Resampling sits inside an imblearn ``Pipeline``, so it only ever touches the training fold; test
folds are never resampled. Metrics carry patient-level bootstrap 95 % CIs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC, RandomOverSampler
from imblearn.pipeline import Pipeline as ImbPipeline
from imblearn.under_sampling import RandomUnderSampler
from pydantic import BaseModel
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import StratifiedGroupKFold

from safellm.errors import UserInputError
from safellm.risk.dataset import TaskData
from safellm.risk.evaluate import CLASSIFICATION, Estimate, Metric, bootstrap
from safellm.risk.pipelines import MODELS, make_pipeline
from safellm.risk.plots import pyplot, save_figure
from safellm.risk.train import _check_size, outer_splitter

STRATEGIES: dict[str, str] = {
    "none": "no class weights, threshold 0.5",
    "class_weight": "class_weight='balanced', threshold 0.5",
    "random_over": "random over-sampling of the minority class (training folds only)",
    "random_under": "random under-sampling of the majority class (training folds only)",
    "smote": "SMOTE-NC on imputed, un-encoded features, then encoding (training folds only)",
    "threshold_tuning": "no weights; threshold maximising F1 on inner out-of-fold predictions",
}
METRICS: tuple[str, ...] = ("auroc", "auprc", "brier", "recall", "precision", "f1")
INNER_SPLITS = 3
MAX_CURVE_POINTS = 1000


class PRCurve(BaseModel):
    """Precision-recall curve of the pooled out-of-fold probabilities."""

    recall: list[float]
    precision: list[float]


class StrategyResult(BaseModel):
    strategy: str
    description: str
    threshold: float  # 0.5, or the mean of the per-fold thresholds (threshold_tuning)
    fold_thresholds: list[float]
    metrics: dict[str, Estimate]  # METRICS; recall/precision/F1 at the fold thresholds
    pr_curve: PRCurve
    notes: list[str]


class ImbalanceReport(BaseModel):
    task: str
    model: str
    seed: int
    n_splits: int
    n_boot: int
    n: int
    n_patients: int
    positives: int
    prevalence: float
    folds: list[int]  # outer fold index per unit (same as `train_task` with this seed)
    strategies: list[StrategyResult]

    def strategy(self, name: str) -> StrategyResult:
        for s in self.strategies:
            if s.strategy == name:
                return s
        raise KeyError(name)


# --- metrics on hard labels (NaN where undefined) -----------------------------------------------


def _recall(y: np.ndarray, flag: np.ndarray) -> float:
    pos = y == 1
    return float(np.mean(flag[pos] == 1)) if pos.any() else float("nan")


def _precision(y: np.ndarray, flag: np.ndarray) -> float:
    f = flag == 1
    return float(np.mean(y[f] == 1)) if f.any() else float("nan")


def _f1(y: np.ndarray, flag: np.ndarray) -> float:
    tp = float(np.sum((y == 1) & (flag == 1)))
    denom = float(np.sum(y == 1) + np.sum(flag == 1))
    return 2 * tp / denom if denom > 0 else float("nan")


PROB_METRICS: dict[str, Metric] = {m: CLASSIFICATION[m] for m in ("auroc", "auprc", "brier")}
LABEL_METRICS: dict[str, Metric] = {"recall": _recall, "precision": _precision, "f1": _f1}


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold (flag p ≥ t) with the highest F1 on (y, p)."""
    prec, rec, thr = precision_recall_curve(y, p)
    prec, rec = prec[:-1], rec[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return float(thr[int(np.argmax(f1))])


# --- pipelines ----------------------------------------------------------------------------------


def _smote_steps(model: str, td: TaskData, k: int, seed: int) -> tuple[list[tuple[str, Any]], str]:
    """Impute → SMOTE-NC on the un-encoded columns → the model's usual encoding and estimator.

    SMOTE interpolates, so it must not see one-hot or indicator columns (it would make up
    fractional categories and flags) nor missing values. Continuous numbers are median-imputed;
    yes/no features take their most frequent value; categories keep their labels (missing ones
    become "UNKNOWN"); a 0/1 missing-value indicator per numeric feature keeps the information the
    usual pipeline gets from its indicators (trees: from NaN). SMOTE-NC treats yes/no features,
    indicators and categories as nominal, so synthetic rows only carry observed values there.
    """
    binary = {f.name for f in td.features if f.kind == "binary"}
    cont = [c for c in td.numeric if c not in binary]
    flags = [c for c in td.numeric if c in binary]
    impute = ColumnTransformer(
        [
            ("cont", SimpleImputer(strategy="median", keep_empty_features=True), cont),
            ("bin", SimpleImputer(strategy="most_frequent", keep_empty_features=True), flags),
            ("miss", MissingIndicator(features="all"), td.numeric),
            (
                "cat",
                SimpleImputer(strategy="constant", fill_value="UNKNOWN", keep_empty_features=True),
                td.categorical,
            ),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    indicators = [f"missingindicator_{c}" for c in td.numeric]
    # column order out of `impute`: cont, flags, indicators, categorical
    nominal = list(range(len(cont), len(cont) + len(flags) + len(indicators) + len(td.categorical)))
    sampler: Any
    if not nominal:
        sampler, name = SMOTE(k_neighbors=k, random_state=seed), "SMOTE"
    elif not cont:  # SMOTE-NC needs a continuous feature
        sampler, name = SMOTEN(k_neighbors=k, random_state=seed), "SMOTEN"
    else:
        sampler = SMOTENC(categorical_features=nominal, k_neighbors=k, random_state=seed)
        name = "SMOTE-NC"
    encoded = make_pipeline(model, cont + flags + indicators, td.categorical, seed)
    encoded.set_params(model__class_weight=None)
    steps: list[tuple[str, Any]] = [
        ("impute", impute),
        ("resample", sampler),
        ("pre", encoded.named_steps["pre"]),
        ("model", encoded.named_steps["model"]),
    ]
    return steps, f"{name} k_neighbors={k}"


def _pipeline(
    strategy: str, model: str, td: TaskData, y_train: np.ndarray, seed: int
) -> tuple[Any, list[str]]:
    base = make_pipeline(model, td.numeric, td.categorical, seed)
    notes: list[str] = []
    if strategy == "class_weight":
        base.set_params(model__class_weight="balanced")
        return base, notes
    base.set_params(model__class_weight=None)
    if strategy in ("none", "threshold_tuning"):
        return base, notes
    pre, est = base.named_steps["pre"], base.named_steps["model"]
    n_min = int(min(np.sum(y_train == 1), np.sum(y_train == 0)))
    sampler: Any
    if strategy == "random_over":
        sampler = RandomOverSampler(random_state=seed)
    elif strategy == "random_under":
        sampler = RandomUnderSampler(random_state=seed)
    elif n_min < 2:
        sampler = RandomOverSampler(random_state=seed)
        notes.append(f"{n_min} minority unit(s) in a training fold: random over-sampling instead")
    else:
        steps, note = _smote_steps(model, td, min(5, n_min - 1), seed)
        notes.append(note)
        return ImbPipeline(steps), notes
    return ImbPipeline([("pre", pre), ("resample", sampler), ("model", est)]), notes


def _fit_predict(pipe: Any, td: TaskData, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    p = clone(pipe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p.fit(td.X.iloc[train], td.y[train])
        return np.asarray(p.predict_proba(td.X.iloc[test])[:, 1])


def _tuned_threshold(
    pipe: Any, td: TaskData, train: np.ndarray, seed: int
) -> tuple[float, str | None]:
    """F1-best threshold from inner grouped out-of-fold predictions within `train`."""
    y, g = td.y[train], td.groups[train]
    n_pos = int(y.sum())
    inner = min(INNER_SPLITS, n_pos, len(y) - n_pos, len(np.unique(g)) // 2)
    if inner < 2:
        return 0.5, f"{n_pos} positives in a training fold: too few to tune, 0.5 used"
    oof = np.full(len(train), np.nan)
    cv = StratifiedGroupKFold(n_splits=inner, shuffle=True, random_state=seed)
    for itr, ite in cv.split(np.zeros(len(y)), y, g):
        if len(np.unique(y[itr])) < 2:
            return 0.5, "an inner training fold has one class: 0.5 used"
        oof[ite] = _fit_predict(pipe, td, train[itr], train[ite])
    ok = np.isfinite(oof)
    if len(np.unique(y[ok])) < 2:
        return 0.5, "inner out-of-fold predictions cover one class: 0.5 used"
    return best_f1_threshold(y[ok], oof[ok]), None


def _curve(y: np.ndarray, p: np.ndarray) -> PRCurve:
    prec, rec, _ = precision_recall_curve(y, p)
    if len(prec) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(prec) - 1, MAX_CURVE_POINTS).round().astype(int))
        prec, rec = prec[keep], rec[keep]
    return PRCurve(recall=[float(r) for r in rec], precision=[float(q) for q in prec])


def _clean(est: Estimate) -> Estimate:
    if est.point is None or np.isfinite(est.point):
        return est
    return Estimate(point=None, lo=None, hi=None, n_boot=est.n_boot)


# --- the comparison -----------------------------------------------------------------------------


def compare_imbalance(
    td: TaskData,
    *,
    model: str = "logreg",
    seed: int = 0,
    n_splits: int = 5,
    n_boot: int = 200,
) -> ImbalanceReport:
    """Every strategy in `STRATEGIES` on the grouped outer folds of `train_task` (same seed)."""
    if td.kind != "classification":
        raise UserInputError(
            f"imbalance: {td.task} is a {td.kind} task; class-imbalance strategies apply to "
            f"classification tasks only (readmission, icu_mortality)"
        )
    if model not in MODELS or MODELS[model][0] != "classification":
        choices = ", ".join(m for m, (k, _) in MODELS.items() if k == "classification")
        raise UserInputError(f"imbalance: unknown classification model {model!r}; use {choices}")
    _check_size(td, n_splits)
    y, groups = td.y, td.groups
    splits = list(outer_splitter("classification", n_splits, seed).split(td.X, y, groups))
    folds = np.full(len(y), -1)
    for k, (_, test) in enumerate(splits):
        folds[test] = k

    results: list[StrategyResult] = []
    for strategy, description in STRATEGIES.items():
        oof = np.full(len(y), np.nan)
        flag = np.zeros(len(y))
        thresholds: list[float] = []
        notes: list[str] = []
        for k, (train, test) in enumerate(splits):
            pipe, fold_notes = _pipeline(strategy, model, td, y[train], seed)
            notes += [f"fold {k + 1}: {n}" for n in fold_notes]
            thr = 0.5
            if strategy == "threshold_tuning":
                thr, note = _tuned_threshold(pipe, td, train, seed + k)
                if note:
                    notes.append(f"fold {k + 1}: {note}")
            oof[test] = _fit_predict(pipe, td, train, test)
            flag[test] = (oof[test] >= thr).astype(float)
            thresholds.append(thr)
        prob = bootstrap(PROB_METRICS, y, oof, groups, n_boot=n_boot, seed=seed)
        lab = bootstrap(LABEL_METRICS, y, flag, groups, n_boot=n_boot, seed=seed)
        metrics = {m: _clean({**prob, **lab}[m]) for m in METRICS}
        results.append(
            StrategyResult(
                strategy=strategy,
                description=description,
                threshold=float(np.mean(thresholds)),
                fold_thresholds=thresholds,
                metrics=metrics,
                pr_curve=_curve(y, oof),
                notes=notes,
            )
        )
    return ImbalanceReport(
        task=td.task,
        model=model,
        seed=seed,
        n_splits=n_splits,
        n_boot=n_boot,
        n=len(y),
        n_patients=len(np.unique(groups)),
        positives=int(y.sum()),
        prevalence=float(y.mean()),
        folds=[int(f) for f in folds],
        strategies=results,
    )


def imbalance_table(report: ImbalanceReport) -> pd.DataFrame:
    """Tidy: one row per strategy and metric."""
    rows = [
        {
            "strategy": s.strategy,
            "metric": m,
            "point": e.point,
            "lo": e.lo,
            "hi": e.hi,
            "threshold": s.threshold,
        }
        for s in report.strategies
        for m, e in s.metrics.items()
    ]
    return pd.DataFrame(rows, columns=["strategy", "metric", "point", "lo", "hi", "threshold"])


# --- plots --------------------------------------------------------------------------------------


def plot_pr_curves(report: ImbalanceReport, path: Path) -> Path:
    """Out-of-fold precision-recall curve per strategy; dotted line = prevalence (no skill)."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 6), constrained_layout=True)
    for s in report.strategies:
        ap = s.metrics["auprc"]
        ax.step(
            s.pr_curve.recall,
            s.pr_curve.precision,
            where="post",
            linewidth=1.4,
            label=f"{s.strategy}: AUPRC {ap.fmt(2)}",
        )
    ax.axhline(
        report.prevalence,
        color="grey",
        linestyle=":",
        label=f"prevalence {report.prevalence:.3f}",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Recall (sensitivity)")
    ax.set_ylabel("Precision (PPV)")
    ax.legend(
        fontsize=8, loc="upper right", title="AUPRC (95 % patient-bootstrap CI)", title_fontsize=8
    )
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{report.task}: precision-recall by imbalance strategy ({report.model}, "
        f"{report.n_splits}-fold grouped CV, n={report.n}, {report.positives} positives)",
        fontsize=10,
    )
    return save_figure(fig, path, dpi=120, tight=False)


def plot_imbalance_metrics(report: ImbalanceReport, path: Path) -> Path:
    """Grouped bars: metric on the x axis, one bar per strategy, 95 % CI error bars."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_s = len(report.strategies)
    width = 0.8 / n_s
    fig, ax = plt.subplots(figsize=(11, 6.2), constrained_layout=True)
    x = np.arange(len(METRICS))
    for i, s in enumerate(report.strategies):
        pos = x - 0.4 + width * (i + 0.5)
        pts = [s.metrics[m].point for m in METRICS]
        h = [p if p is not None else 0.0 for p in pts]
        lo = [
            max(p - e.lo, 0.0) if p is not None and e.lo is not None else 0.0
            for p, e in zip(pts, (s.metrics[m] for m in METRICS), strict=True)
        ]
        hi = [
            max(e.hi - p, 0.0) if p is not None and e.hi is not None else 0.0
            for p, e in zip(pts, (s.metrics[m] for m in METRICS), strict=True)
        ]
        tuned = s.strategy == "threshold_tuning"
        label = s.strategy + (f" (mean t={s.threshold:.2f})" if tuned else "")
        ax.bar(pos, h, width, label=label, yerr=[lo, hi], capsize=2, error_kw={"linewidth": 0.8})
        for xp, p in zip(pos, pts, strict=True):
            if p is None:
                ax.text(xp, 0.01, "n/a", ha="center", fontsize=6, rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels(
        ["AUROC", "AUPRC", "Brier\n(lower better)", "Recall", "Precision", "F1"], fontsize=9
    )
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.set_title(
        f"{report.task}: imbalance strategies ({report.model}, n={report.n}, "
        f"prevalence {report.prevalence:.3f}); recall/precision/F1 at threshold 0.5 unless tuned; "
        f"bars 95 % patient-bootstrap CI",
        fontsize=9,
    )
    return save_figure(fig, path, dpi=120, tight=False)
