"""Monitoring, the use case behind `safellm monitor`: the task's training data as reference, a
current batch (another built data folder: a later time window, another hospital), the model's predictions
on both, and the guard outcomes of the audit trail over time → a drift report (JSON + HTML with
plots). Alert when any feature, the predictions or the explanations' quality drifted."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from safellm.audit import AuditTrail
from safellm.config import Settings
from safellm.explain.loader import tabular_explainer
from safellm.fsutil import atomic_write_text
from safellm.risk.dataset import load_task
from safellm.risk.drift import (
    FeatureDrift,
    PerformanceDrift,
    QualityDrift,
    Thresholds,
    feature_drift,
    performance_drift,
    prediction_drift,
    quality_drift,
)
from safellm.risk.plots import png_base64, pyplot
from safellm.stores import existing_trail


class MonitorReport(BaseModel):
    task: str
    created: str
    reference: str
    current: str
    model: str
    thresholds: Thresholds
    features: list[FeatureDrift]
    prediction: FeatureDrift
    quality: QualityDrift
    performance: PerformanceDrift | None = None  # classification tasks
    alerts: list[str]
    alert: bool


def audit_rows(trail: AuditTrail | None, task: str) -> list[tuple[datetime, bool, bool]]:
    """(time, passed at first draft, fallback used) of the task's answers in the audit trail."""
    if trail is None:
        return []
    rows = []
    for r in trail.records():
        if r.task != task or (r.llm or "").startswith("fake"):
            continue  # the fake models answer tests and dry runs, not patients
        at = datetime.fromisoformat(r.at)
        rows.append((at, r.guard_passed and r.attempts <= 1, r.fallback_used))
    return rows


def thresholds_of(settings: Settings) -> Thresholds:
    return Thresholds(
        psi_alert=settings.drift_psi_alert,
        ks_alpha=settings.drift_ks_alpha,
        ks_min_stat=settings.drift_ks_min_stat,
        quality_rate_increase=settings.drift_quality_rate_increase,
        auroc_drop=settings.drift_auroc_drop,
        intercept_alert=settings.drift_intercept_alert,
        brier_increase=settings.drift_brier_increase,
        min_window_units=settings.drift_min_window_units,
    )


def run_monitor(
    settings: Settings,
    *,
    task: str,
    current_dir: Path,
    reference_dir: Path | None = None,
    window: timedelta = timedelta(days=7),
    out_dir: Path | None = None,
    period: str = "month",
    n_boot: int = 200,
) -> tuple[MonitorReport, dict[str, Path]]:
    """Drift of `current_dir` against `reference_dir` [the built data of `settings`] for the
    task's tabular model, and of the audit trail's guard outcomes over `window`-long windows;
    and, for a classifier, its performance per `period` of prediction time on the current
    batch's known outcomes (concept drift); reports in `out_dir` [`$SAFELLM_HOME/monitor/TASK`]."""
    from safellm.risk.registry import load_bundle

    thresholds = thresholds_of(settings)
    reference_dir = reference_dir or settings.data_dir
    out_dir = out_dir or settings.home / "monitor" / task
    ref = load_task(reference_dir, task)
    cur = load_task(current_dir, task)
    bundle = load_bundle(settings.models_dir, task)
    explainer = tabular_explainer(bundle)
    p_ref = explainer.risk(explainer.attributions(ref.frame)[1])
    p_cur = explainer.risk(explainer.attributions(cur.frame)[1])
    features = feature_drift(ref.frame, cur.frame, ref.numeric, ref.categorical, thresholds)
    pred = prediction_drift(p_ref, p_cur, thresholds)
    quality = quality_drift(audit_rows(existing_trail(settings), task), window, thresholds)
    performance = None
    if cur.kind == "classification":
        validation = bundle.meta.metrics.get(bundle.meta.default_model, {})
        performance = performance_drift(
            cur.frame["prediction_time"],
            cur.y,
            p_cur,
            cur.groups,
            thresholds,
            validation_auroc=_point(validation.get("auroc")),
            validation_brier=_point(validation.get("brier")),
            period=period,
            n_boot=n_boot,
            seed=settings.seed,
        )
    alerts = [f"{f.feature}: {f.why}" for f in features if f.alert]
    if pred.alert:
        alerts.append(f"predictions: {pred.why}")
    if quality.alert:
        alerts.append(f"explanations: {quality.why}")
    if performance is not None and performance.alert:
        alerts.append(f"performance: {performance.why}")
    report = MonitorReport(
        task=task,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        reference=str(reference_dir),
        current=str(current_dir),
        model=f"{explainer.model}@{explainer.version}",
        thresholds=thresholds,
        features=features,
        prediction=pred,
        quality=quality,
        performance=performance,
        alerts=alerts,
        alert=bool(alerts),
    )
    paths = {"json": out_dir / "drift.json", "html": out_dir / "drift.html"}
    atomic_write_text(paths["json"], report.model_dump_json(indent=1))
    shown = {f.feature for f in features[:4]}
    samples = {f: (ref.frame[f], cur.frame[f]) for f in shown if f in ref.numeric}
    atomic_write_text(paths["html"], render_html(report, samples, p_ref, p_cur))
    return report, paths


def _point(estimate: Any) -> float | None:
    return None if estimate is None else estimate.point


def render_html(
    report: MonitorReport, samples: dict[str, Any], p_ref: np.ndarray, p_cur: np.ndarray
) -> str:
    plt = pyplot()
    figs = []
    top = report.features[:20]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(top) + 1))
    ax.barh(
        [f.feature for f in top],
        [f.psi for f in top],
        color=["#c44e52" if f.alert else "#4c72b0" for f in top],
    )
    ax.axvline(report.thresholds.psi_alert, color="k", ls="--", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel("PSI (red: alert)")
    figs.append(("PSI per feature (largest 20)", png_base64(fig)))
    plt.close(fig)
    for name, (r, c) in samples.items():
        fig, ax = plt.subplots(figsize=(5, 3))
        for x, label in ((r, "reference"), (c, "current")):
            v = np.sort(np.asarray(x, dtype=float))
            v = v[~np.isnan(v)]
            ax.step(v, np.arange(1, len(v) + 1) / max(len(v), 1), label=label)
        ax.set_title(name)
        ax.legend()
        figs.append((f"{name}: cumulative distribution", png_base64(fig)))
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist([p_ref, p_cur], bins=30, density=True, label=["reference", "current"])
    ax.legend()
    ax.set_title("Predictions")
    figs.append(("Prediction distribution", png_base64(fig)))
    plt.close(fig)
    if report.quality.windows:
        fig, ax = plt.subplots(figsize=(6, 3))
        ws = report.quality.windows
        ax.plot([w.start[:10] for w in ws], [w.fallback_rate for w in ws], "o-", label="fallback")
        ax.plot(
            [w.start[:10] for w in ws], [w.failure_rate for w in ws], "s-", label="guard failed"
        )
        ax.set_ylim(0, 1)
        ax.legend()
        ax.tick_params(axis="x", rotation=45)
        figs.append(("Explanation quality over time (audit trail)", png_base64(fig)))
        plt.close(fig)
    perf = report.performance
    judged = [w for w in perf.windows if w.auroc is not None] if perf else []
    if perf is not None and judged:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
        x = [w.start[:7] for w in judged]
        panels = (
            ("AUROC", "auroc", perf.validation_auroc),
            ("Calibration intercept", "calibration_intercept", 0.0),
            ("Brier score", "brier", perf.validation_brier),
        )
        for ax, (title, key, line) in zip(axes, panels, strict=True):
            est = [getattr(w, key) for w in judged]
            pts = np.array([e.point for e in est], dtype=float)
            lo = np.array([e.lo if e.lo is not None else e.point for e in est], dtype=float)
            hi = np.array([e.hi if e.hi is not None else e.point for e in est], dtype=float)
            ax.errorbar(x, pts, yerr=[pts - lo, hi - pts], fmt="o-", capsize=3)
            for i, w in enumerate(judged):
                if w.alert:
                    ax.plot(x[i], pts[i], "o", color="#c44e52", ms=9)
            if line is not None:
                ax.axhline(line, color="k", ls="--", lw=1)
            ax.set_title(title)
            ax.tick_params(axis="x", rotation=60, labelsize=7)
        fig.tight_layout()
        figs.append(
            (
                f"Performance per {perf.period} on known outcomes, 95 % CI (dashed: validation; "
                "red: alert)",
                png_base64(fig),
            )
        )
        plt.close(fig)
    perf_rows = "".join(
        f"<tr><td>{w.start}</td><td>{w.n}</td><td>{w.positives}</td>"
        f"<td>{w.auroc.fmt() if w.auroc else 'n/a'}</td>"
        f"<td>{w.calibration_slope.fmt(2) if w.calibration_slope else 'n/a'}</td>"
        f"<td>{w.calibration_intercept.fmt(2) if w.calibration_intercept else 'n/a'}</td>"
        f"<td>{w.brier.fmt() if w.brier else 'n/a'}</td>"
        f"<td>{'ALERT: ' + html.escape(w.why) if w.alert else ''}</td></tr>"
        for w in judged
    )
    perf_table = (
        f"<h2>Performance per {perf.period}</h2><table><tr><th>{perf.period}</th><th>units</th>"
        "<th>positives</th><th>AUROC</th><th>calibration slope</th><th>calibration intercept</th>"
        f"<th>Brier</th><th></th></tr>{perf_rows}</table><p>"
        f"{len(perf.windows) - len(judged)} {perf.period}s with too few units or one outcome only "
        f"are not shown. {html.escape(perf.why or 'No degradation.')}</p>"
        if perf
        else ""
    )
    rows = "".join(
        f"<tr><td>{html.escape(f.feature)}</td><td>{f.kind}</td><td>{f.psi:.3f}</td>"
        f"<td>{'' if f.ks is None else f'{f.ks:.3f}'}</td>"
        f"<td>{'' if f.ks_p is None else f'{f.ks_p:.1e}'}</td>"
        f"<td>{'ALERT: ' + html.escape(f.why) if f.alert else ''}</td></tr>"
        for f in [*report.features, report.prediction]
    )
    alerts = "".join(f"<li>{html.escape(a)}</li>" for a in report.alerts) or "<li>none</li>"
    imgs = "".join(
        f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in figs
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Drift "
        f"{html.escape(report.task)}</title><style>body{{font-family:system-ui;max-width:1100px;"
        "margin:2em auto}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"
        "table{border-collapse:collapse}figure{display:inline-block}</style></head><body>"
        f"<h1>Drift report: {html.escape(report.task)}</h1><p>{html.escape(report.model)}; "
        f"reference {html.escape(report.reference)}; current {html.escape(report.current)}</p>"
        f"<h2>Alerts</h2><ul>{alerts}</ul>{imgs}<h2>Features</h2><table><tr><th>feature</th>"
        "<th>kind</th><th>PSI</th><th>KS</th><th>KS p</th><th></th></tr>"
        f"{rows}</table>{perf_table}</body></html>"
    )
