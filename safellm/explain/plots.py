"""Plots of one prediction's Facts (PNG, matplotlib Agg): the SHAP waterfall."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from safellm.explain.facts import Facts
from safellm.risk.plots import pyplot, save_figure
from safellm.tasks import task_spec


def waterfall(facts: Facts, path: Path, max_display: int = 12) -> Path:
    import shap

    c = facts.contributions
    # shap prints "value = name"; categorical and missing values have no number to show
    data = np.array([float(f"{x.value:.4g}") if isinstance(x.value, float) else np.nan for x in c])
    names = [
        f"{x.label} ({x.unit})"
        if isinstance(x.value, float)
        else f"{x.label}: {'not measured' if x.value is None else x.value}"
        for x in c
    ]
    exp = shap.Explanation(
        values=np.array([x.shap for x in c]),
        base_values=facts.prediction.base_value,
        data=data,
        feature_names=names,
    )
    shap.plots.waterfall(exp, max_display=max_display, show=False)
    plt = pyplot()
    fig = plt.gcf()
    fig.set_size_inches(9, 6)
    p = facts.prediction
    spec = task_spec(facts.task)
    unit = facts.icustay_id if spec.unit == "icustay_id" else facts.hadm_id
    plt.title(
        f"{facts.task}, {spec.unit_name} {unit}: predicted {spec.format_risk(p.risk)} ({p.band}); "
        f"contributions in {p.space}",
        fontsize=10,
    )
    return save_figure(fig, path)
