"""Plots of one prediction's Facts (PNG, matplotlib Agg): the SHAP waterfall.

Each bar is labelled "value = feature", the value as displayed (`Contribution.shown`). The bars
beyond `max_display - 1`, together with the remainder of Facts already cut to their top
contributions (`Facts.other_contributions`), form one last bar "all other features (n)", as in
`safellm explain`'s table, so the bars always add up from the base value to the model output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from safellm.explain.facts import Facts
from safellm.risk.plots import pyplot, save_figure
from safellm.tasks import task_spec


def waterfall_bars(facts: Facts, max_display: int = 12) -> tuple[list[str], list[float]]:
    """The waterfall's labels and values: at most `max_display` bars, the last one the sum of
    all other features when any are left out."""
    c = facts.contributions
    n_rest = facts.n_other + max(0, len(c) - max_display)
    keep = c if n_rest == 0 else c[: max_display - 1]
    names = [f"{x.shown} = {x.label}" for x in keep]
    values = [x.shap for x in keep]
    n_other = facts.n_other + len(c) - len(keep)
    if n_other:
        names.append(f"all other features ({n_other})")
        values.append(facts.other_contributions + sum(x.shap for x in c[len(keep) :]))
    return names, values


def waterfall(facts: Facts, path: Path, max_display: int = 12) -> Path:
    import shap

    names, values = waterfall_bars(facts, max_display)
    exp = shap.Explanation(
        values=np.array(values, dtype=float),
        base_values=facts.prediction.base_value,
        feature_names=names,
    )
    # every bar is drawn (the lumping is done above, with the cut Facts' remainder included)
    shap.plots.waterfall(exp, max_display=max(len(values), 1), show=False)
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
