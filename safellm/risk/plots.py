"""Model plots (PNG, matplotlib Agg): PR and calibration curves, SHAP beeswarm, metric forest plots."""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve


def save_figure(fig: plt.Figure, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    """Write a figure as PNG (creating the folder) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def png_base64(fig: plt.Figure, dpi: int = 110) -> str:
    """A figure as base64 PNG, to embed in HTML."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (safe on servers and in tests), which
    this module selects when imported: for modules that draw figures of their own."""
    return plt


def pr_curves(y: np.ndarray, preds: dict[str, np.ndarray], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, p in preds.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.step(
            rec, prec, where="post", label=f"{name} (AUPRC {average_precision_score(y, p):.2f})"
        )
    ax.axhline(float(np.mean(y)), color="grey", ls="--", lw=1, label=f"prevalence {np.mean(y):.2f}")
    ax.set(xlabel="Recall", ylabel="Precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def calibration_curves(y: np.ndarray, preds: dict[str, np.ndarray], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect")
    n_bins = 10 if len(y) >= 500 else 5
    for name, p in preds.items():
        frac, mean_pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
        ax.plot(mean_pred, frac, marker="o", label=name)
    ax.set(
        xlabel="Mean predicted risk", ylabel="Observed rate", title=title, xlim=(0, 1), ylim=(0, 1)
    )
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def residuals(y: np.ndarray, preds: dict[str, np.ndarray], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = float(np.percentile(y, 99))
    for name, p in preds.items():
        ax.scatter(y, p, s=8, alpha=0.5, label=name)
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=1)
    ax.set(
        xlabel="Observed length of stay (days)",
        ylabel="Predicted (days)",
        title=title,
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def beeswarm(
    contrib: np.ndarray,
    data: np.ndarray,
    labels: list[str],
    base: float,
    path: Path,
    title: str,
    max_display: int = 15,
) -> Path:
    import shap

    exp = shap.Explanation(
        values=contrib, base_values=np.full(len(contrib), base), data=data, feature_names=labels
    )
    with warnings.catch_warnings():  # categories have no numeric value to colour by (all NaN)
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        shap.plots.beeswarm(exp, max_display=max_display, show=False)
    fig = plt.gcf()
    fig.set_size_inches(8, 6)
    plt.title(title)
    return save_figure(fig, path)


def metric_intervals(
    rows: dict[str, dict[str, tuple[float, float, float]]], path: Path, title: str
) -> Path:
    """One panel per metric: each model's point estimate with its 95 % CI (a forest plot).
    rows: model -> metric -> (point, lo, hi)."""
    metrics = list(next(iter(rows.values())))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 0.6 * len(rows) + 1.6))
    axes = np.atleast_1d(axes)
    names = list(rows)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, name in enumerate(names):
            point, lo, hi = rows[name][metric]
            ax.errorbar(
                point, i, xerr=[[point - lo], [hi - point]], fmt="o", capsize=4, color=f"C{i}"
            )
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_xlabel(f"{metric} (95 % CI)")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, path)
