"""Subgroup performance ("fairness") of out-of-fold predictions, with patient-level bootstrap CIs.

Attributes: sex, ethnicity group, insurance and age band. For classifiers, per group: recall,
precision and selection rate at one threshold (by default the prevalence-matched one, which flags as
many units as there are positives), AUROC and calibration-in-the-large (mean predicted − observed
rate). For length of stay: MAE and mean error (bias, predicted − observed days).

Point estimates come from fairlearn's `MetricFrame`. 95 % CIs come from one joint bootstrap:
each replicate resamples *patients* over the whole cohort (with all their units, as in
`safellm.risk.evaluate.bootstrap`) and recomputes every group's metric on that group's units within
the resampled cohort; CIs are percentile intervals over replicates where the value is defined. A
patient may fall in several groups of one attribute (insurance, age band or ethnicity can change
between admissions), so groups are not resampled independently.

The gap of an attribute and metric is the highest minus the lowest group among the eligible groups
(at least `MIN_GROUP_N` units and a defined point estimate); `high_group`/`low_group` name them. Its
CI is the percentile interval of the same statistic — max minus min over *all* eligible groups —
taken inside each replicate (replicates where an eligible group is undefined are skipped), so it
accounts for picking the extremes after looking at the data rather than treating the two as chosen
in advance. Being a range, the statistic is never negative: the gap CI says how large the spread
between groups is, not whether it is zero. Groups with fewer than `MIN_CI_PATIENTS` patients get
point estimates without CIs (a bootstrap over 1–4 patients is meaningless), and gaps among eligible
groups including such a group get no CI either. Metrics undefined for a group (AUROC with one class,
recall without positives, precision with nothing flagged) are `None` ("n/a").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from pydantic import BaseModel
from scipy.stats import rankdata

from safellm.errors import UserInputError
from safellm.risk.dataset import TaskData
from safellm.risk.evaluate import Estimate
from safellm.risk.plots import pyplot, save_figure

ATTRIBUTES: tuple[str, ...] = ("sex", "ethnicity_group", "insurance", "age_band")
AGE_BANDS: tuple[str, ...] = ("<50", "50-64", "65-79", "80+")
MIN_GROUP_N = 10  # groups smaller than this are reported but left out of the gaps
MIN_BOOT = 20  # fewer finite bootstrap replicates than this: no CI
MIN_CI_PATIENTS = 5  # groups with fewer patients get a point estimate but no CI

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "recall",
    "precision",
    "auroc",
    "selection_rate",
    "calibration_in_the_large",
)
REGRESSION_METRICS: tuple[str, ...] = ("mae", "mean_error")

LABELS: dict[str, str] = {
    "recall": "Recall (sensitivity)",
    "precision": "Precision (PPV)",
    "auroc": "AUROC",
    "selection_rate": "Selection rate (flagged)",
    "calibration_in_the_large": "Calibration-in-the-large (mean pred − observed)",
    "mae": "MAE (days)",
    "mean_error": "Mean error / bias (pred − observed, days)",
}

Fn = Callable[[np.ndarray, np.ndarray], float]
Reps = dict[str, np.ndarray]  # metric -> one value per bootstrap replicate (NaN where undefined)


class GroupMetrics(BaseModel):
    """One group of one attribute (or the whole cohort): sizes and metrics with CIs."""

    attribute: str
    group: str
    n: int
    n_patients: int
    positives: int | None  # classification only
    metrics: dict[str, Estimate]


class Gap(BaseModel):
    """Highest minus lowest group for one attribute and metric (groups with n ≥ min_group_n)."""

    metric: str
    status: Literal["ok", "too few"]  # "too few": fewer than two eligible groups with a value
    gap: Estimate | None
    high_group: str | None
    low_group: str | None
    eligible_groups: list[str]


class AttributeReport(BaseModel):
    attribute: str
    groups: list[GroupMetrics]
    gaps: dict[str, Gap]


class FairnessReport(BaseModel):
    task: str
    kind: Literal["classification", "regression"]
    n: int
    n_boot: int
    seed: int
    threshold: float | None  # classification only
    threshold_rule: Literal["prevalence-matched", "given"] | None
    min_group_n: int
    metrics: list[str]
    overall: GroupMetrics
    attributes: list[AttributeReport]

    def attribute(self, name: str) -> AttributeReport:
        for a in self.attributes:
            if a.attribute == name:
                return a
        raise KeyError(name)

    def largest_gap(self, metric: str) -> tuple[str, Gap] | None:
        """The attribute whose gap on `metric` is largest (eligible groups only)."""
        best: tuple[str, Gap] | None = None
        best_val = -np.inf
        for a in self.attributes:
            g = a.gaps.get(metric)
            point = g.gap.point if g is not None and g.gap is not None else None
            if g is not None and point is not None and point > best_val:
                best, best_val = (a.attribute, g), point
        return best


# --- metrics (numpy, NaN where undefined; fast enough for the bootstrap) -----------------------


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    pos = int(np.sum(y == 1))
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _classification_fns(threshold: float) -> dict[str, Fn]:
    def recall(y: np.ndarray, p: np.ndarray) -> float:
        pos = y == 1
        return float(np.mean(p[pos] >= threshold)) if pos.any() else float("nan")

    def precision(y: np.ndarray, p: np.ndarray) -> float:
        flag = p >= threshold
        return float(np.mean(y[flag] == 1)) if flag.any() else float("nan")

    def selection_rate(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(p >= threshold)) if len(p) else float("nan")

    def citl(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(p) - np.mean(y)) if len(p) else float("nan")

    return {
        "recall": recall,
        "precision": precision,
        "auroc": _auroc,
        "selection_rate": selection_rate,
        "calibration_in_the_large": citl,
    }


def _regression_fns() -> dict[str, Fn]:
    def mae(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(np.abs(p - y))) if len(y) else float("nan")

    def mean_error(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(p - y)) if len(y) else float("nan")

    return {"mae": mae, "mean_error": mean_error}


def prevalence_threshold(y: np.ndarray, pred: np.ndarray) -> float:
    """The threshold that flags (pred ≥ t) as many units as there are positives (more on ties)."""
    k = int(np.sum(np.asarray(y) == 1))
    s = np.sort(np.asarray(pred, dtype=float))[::-1]
    if k <= 0:
        return float(np.nextafter(s[0], np.inf))  # flags nobody
    return float(s[min(k, len(s)) - 1])


def age_band(age: pd.Series) -> pd.Series:
    a = pd.to_numeric(age, errors="coerce")
    band = pd.cut(a, [-np.inf, 50, 65, 80, np.inf], right=False, labels=list(AGE_BANDS))
    return band.astype("object").where(a.notna(), "unknown").astype(str)


def _attribute_values(frame: pd.DataFrame, attribute: str) -> pd.Series:
    if attribute == "age_band":
        if "age" not in frame:
            raise UserInputError("fairness: the task table has no `age` column for age bands")
        return age_band(frame["age"])
    if attribute not in frame:
        raise UserInputError(f"fairness: the task table has no {attribute!r} column")
    col = frame[attribute]
    return col.astype("object").where(col.notna(), "UNKNOWN").astype(str)


def _group_order(attribute: str, values: pd.Series) -> list[str]:
    present = set(values)
    if attribute == "age_band":
        return [b for b in (*AGE_BANDS, "unknown") if b in present]
    counts = values.value_counts()
    return sorted(present, key=lambda g: (-int(counts[g]), g))


# --- bootstrap ----------------------------------------------------------------------------------


def _joint_replicates(
    fns: dict[str, Fn],
    y: np.ndarray,
    pred: np.ndarray,
    patients: np.ndarray,
    cells: list[np.ndarray],
    n_boot: int,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    """For each cell (row indices: the whole cohort or one group), per metric, `n_boot` values
    (NaN where undefined) on the cell's rows within the patient-resampled cohort. Every replicate
    draws patients once (as `evaluate.bootstrap` does) and all cells share that draw, so values of
    different groups in replicate b are a joint draw, also when a patient is in several groups.
    Kept here because gap CIs need the replicates themselves."""
    uniq, inv = np.unique(patients, return_inverse=True)
    cell_patients = [inv[rows] for rows in cells]
    rng = np.random.default_rng(seed)
    out = [{m: np.full(n_boot, np.nan) for m in fns} for _ in cells]
    for b in range(n_boot):
        # how often each patient was drawn; a drawn patient brings all of its rows each time
        times = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))
        for rows, pat, reps in zip(cells, cell_patients, out, strict=True):
            idx = np.repeat(rows, times[pat])
            yb, pb = y[idx], pred[idx]
            for name, fn in fns.items():
                reps[name][b] = fn(yb, pb)
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _estimate(point: float | None, samples: np.ndarray, with_ci: bool = True) -> Estimate:
    point = _finite(point)
    s = samples[np.isfinite(samples)]
    if point is None or not with_ci or len(s) < MIN_BOOT:
        return Estimate(point=point, lo=None, hi=None, n_boot=len(s))
    return Estimate(
        point=point,
        lo=float(np.percentile(s, 2.5)),
        hi=float(np.percentile(s, 97.5)),
        n_boot=len(s),
    )


# --- the report ---------------------------------------------------------------------------------


def fairness_report(
    td: TaskData,
    pred: np.ndarray,
    threshold: float | None = None,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> FairnessReport:
    """Per-group metrics with patient-level bootstrap CIs and the largest between-group gaps.

    `pred` holds one out-of-fold prediction per unit of `td` (probability, or days for LOS)."""
    y = np.asarray(td.y, dtype=float)
    pred = np.asarray(pred, dtype=float).ravel()
    if len(pred) != len(y):
        raise UserInputError(
            f"fairness: {len(pred)} predictions for {len(y)} units of {td.task}; pass one "
            f"out-of-fold prediction per unit"
        )
    if not np.all(np.isfinite(pred)):
        raise UserInputError(f"fairness: predictions for {td.task} contain NaN or infinity")
    classification = td.kind == "classification"
    rule: Literal["prevalence-matched", "given"] | None = None
    if classification:
        if threshold is None:
            threshold, rule = prevalence_threshold(y, pred), "prevalence-matched"
        else:
            threshold, rule = float(threshold), "given"
        fns = _classification_fns(threshold)
    else:
        threshold = None
        fns = _regression_fns()
    patients = td.groups
    frame = td.frame.reset_index(drop=True)

    # cells: the whole cohort, then every group of every attribute, with its point estimates
    cells: list[tuple[str, str, np.ndarray, dict[str, float]]] = [
        ("all", "all", np.arange(len(y)), {m: fn(y, pred) for m, fn in fns.items()})
    ]
    for attribute in ATTRIBUTES:
        values = _attribute_values(frame, attribute)
        by_group = MetricFrame(
            metrics=dict(fns),
            y_true=y,
            y_pred=pred,
            sensitive_features=pd.Series(values.to_numpy(), name=attribute),
        ).by_group
        for group in _group_order(attribute, values):
            rows = np.flatnonzero((values == group).to_numpy())
            points = {m: float(by_group.loc[group, m]) for m in fns}
            cells.append((attribute, group, rows, points))
    reps_of = _joint_replicates(fns, y, pred, patients, [c[2] for c in cells], n_boot, seed)

    def group_metrics(
        attribute: str, group: str, rows: np.ndarray, points: dict[str, float], reps: Reps
    ) -> GroupMetrics:
        n_patients = len(np.unique(patients[rows]))
        with_ci = n_patients >= MIN_CI_PATIENTS
        return GroupMetrics(
            attribute=attribute,
            group=group,
            n=len(rows),
            n_patients=n_patients,
            positives=int(y[rows].sum()) if classification else None,
            metrics={m: _estimate(points[m], reps[m], with_ci) for m in fns},
        )

    results = [group_metrics(*cell, reps) for cell, reps in zip(cells, reps_of, strict=True)]
    overall = results[0]
    attributes: list[AttributeReport] = []
    for attribute in ATTRIBUTES:
        pairs = [
            (gm, r) for gm, r in zip(results, reps_of, strict=True) if gm.attribute == attribute
        ]
        groups = [gm for gm, _ in pairs]
        reps = {gm.group: r for gm, r in pairs}
        gaps = {m: _gap(m, groups, reps) for m in fns}
        attributes.append(AttributeReport(attribute=attribute, groups=groups, gaps=gaps))

    return FairnessReport(
        task=td.task,
        kind="classification" if classification else "regression",
        n=len(y),
        n_boot=n_boot,
        seed=seed,
        threshold=threshold,
        threshold_rule=rule,
        min_group_n=MIN_GROUP_N,
        metrics=list(fns),
        overall=overall,
        attributes=attributes,
    )


def _gap(metric: str, groups: list[GroupMetrics], reps_of: dict[str, Reps]) -> Gap:
    """Highest minus lowest eligible group by point estimate; the CI is the percentile interval of
    max − min over all eligible groups within each joint replicate (see the module docstring)."""
    eligible = [g for g in groups if g.n >= MIN_GROUP_N and g.metrics[metric].point is not None]
    names = [g.group for g in eligible]
    if len(eligible) < 2:
        return Gap(
            metric=metric,
            status="too few",
            gap=None,
            high_group=None,
            low_group=None,
            eligible_groups=names,
        )
    hi = max(eligible, key=lambda g: g.metrics[metric].point or 0.0)
    lo = min(eligible, key=lambda g: g.metrics[metric].point or 0.0)
    point = (hi.metrics[metric].point or 0.0) - (lo.metrics[metric].point or 0.0)
    # replicate b of every group comes from the same patient draw: the range within a replicate is
    # the gap statistic recomputed on that draw (NaN, so skipped, if any eligible group is undefined)
    values = np.vstack([reps_of[g.group][metric] for g in eligible])
    spread = values.max(axis=0) - values.min(axis=0)
    with_ci = all(g.n_patients >= MIN_CI_PATIENTS for g in eligible)
    return Gap(
        metric=metric,
        status="ok",
        gap=_estimate(point, spread, with_ci),
        high_group=hi.group,
        low_group=lo.group,
        eligible_groups=names,
    )


# --- tables and plots ---------------------------------------------------------------------------


def fairness_table(report: FairnessReport) -> pd.DataFrame:
    """Tidy: one row per attribute, group and metric (the whole cohort as attribute "all")."""
    rows = []
    for gm in [report.overall, *(g for a in report.attributes for g in a.groups)]:
        for metric, est in gm.metrics.items():
            rows.append(
                {
                    "attribute": gm.attribute,
                    "group": gm.group,
                    "metric": metric,
                    "point": est.point,
                    "lo": est.lo,
                    "hi": est.hi,
                    "n": gm.n,
                    "positives": gm.positives,
                }
            )
    return pd.DataFrame(
        rows, columns=["attribute", "group", "metric", "point", "lo", "hi", "n", "positives"]
    )


def gap_table(report: FairnessReport) -> pd.DataFrame:
    """One row per attribute and metric: the largest gap with its CI, or "too few"."""
    rows = []
    for a in report.attributes:
        for metric, g in a.gaps.items():
            est = g.gap
            rows.append(
                {
                    "attribute": a.attribute,
                    "metric": metric,
                    "status": g.status,
                    "gap": est.point if est else None,
                    "lo": est.lo if est else None,
                    "hi": est.hi if est else None,
                    "high_group": g.high_group,
                    "low_group": g.low_group,
                    "n_eligible": len(g.eligible_groups),
                }
            )
    return pd.DataFrame(rows)


_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3")


def plot_fairness(report: FairnessReport, path: Path) -> Path:
    """One panel per metric; bars per group (clustered and coloured by attribute) with 95 % CI
    error bars; dashed line = whole cohort; hatched bars = groups below the gap minimum n."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = report.metrics
    ncols = 1 if len(metrics) <= 2 else 2
    nrows = int(np.ceil(len(metrics) / ncols))
    n_bars = sum(len(a.groups) for a in report.attributes)
    width = max(8.0, 0.45 * n_bars + 3) if ncols == 1 else max(7.0, 0.42 * n_bars + 2)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, 4.2 * nrows), squeeze=False, constrained_layout=True
    )
    # x positions: groups side by side, a blank slot between attributes
    xs: list[float] = []
    labels: list[str] = []
    colours: list[str] = []
    small: list[bool] = []
    spans: list[tuple[str, float, float]] = []
    x = 0.0
    for i, a in enumerate(report.attributes):
        start = x
        for g in a.groups:
            xs.append(x)
            labels.append(f"{g.group}\nn={g.n}")
            colours.append(_COLOURS[i % len(_COLOURS)])
            small.append(g.n < report.min_group_n)
            x += 1
        spans.append((a.attribute, start, x - 1))
        x += 0.8
    for j, metric in enumerate(metrics):
        ax = axes[j // ncols][j % ncols]
        groups = [g for a in report.attributes for g in a.groups]
        for xi, g, col, sm in zip(xs, groups, colours, small, strict=True):
            est = g.metrics[metric]
            if est.point is None:
                ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize=7, color="grey")
                continue
            ax.bar(
                xi,
                est.point,
                color=col,
                alpha=0.45 if sm else 0.85,
                hatch="//" if sm else None,
                edgecolor="black" if sm else col,
                linewidth=0.5,
            )
            yerr = (
                [[max(est.point - est.lo, 0.0)], [max(est.hi - est.point, 0.0)]]
                if est.lo is not None and est.hi is not None
                else None
            )
            ax.errorbar(
                xi,
                est.point,
                yerr=yerr,
                fmt="o",
                markersize=2.5,
                color="black",
                ecolor="black",
                capsize=3,
                linewidth=1,
            )
            if yerr is None:
                ax.annotate(
                    "no CI",
                    (xi, est.point),
                    xytext=(0, 4),
                    textcoords="offset points",
                    ha="center",
                    fontsize=6,
                    color="grey",
                )
        ov = report.overall.metrics[metric].point
        if ov is not None:
            ax.axhline(ov, color="black", linestyle="--", linewidth=0.8, label="whole cohort")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=7, rotation=90)
        ax.set_title(LABELS.get(metric, metric), fontsize=10, pad=26)
        ax.set_xlim(-0.8, x - 0.8)
        for a, (name, s, e) in zip(report.attributes, spans, strict=True):
            gap = a.gaps[metric]
            if gap.gap is None or gap.gap.point is None:
                extra = "\ngap: too few"
            else:
                extra = f"\ngap {gap.gap.fmt(2)}" + (" (no CI)" if gap.gap.lo is None else "")
            ax.text(
                (s + e) / 2,
                1.01,
                name.replace("_", " ") + extra,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="y", alpha=0.3)
    for j in range(len(metrics), nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    thr = (
        f", threshold {report.threshold:.3f}, {report.threshold_rule}"
        if report.threshold is not None
        else ""
    )
    fig.suptitle(
        f"{report.task}: performance by group (n={report.n}{thr}); bars 95 % patient-bootstrap CI, "
        f"hatched: n < {report.min_group_n} (not in gaps)",
        fontsize=11,
    )
    return save_figure(fig, path, dpi=120, tight=False)
