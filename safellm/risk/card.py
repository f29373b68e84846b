"""Model card (Markdown) per task, covering the TRIPOD+AI items that apply to our models."""

from __future__ import annotations

import inspect

import pandas as pd

from safellm.data import cohorts
from safellm.data.catalogue import FEATURES
from safellm.risk.evaluate import Estimate
from safellm.risk.registry import BundleMeta

_INTENDED = {
    "readmission": "Flag adult/paediatric (non-newborn) inpatients at discharge whose risk of an "
    "emergency or urgent readmission within 30 days is high, so that a clinician can review "
    "discharge planning. Decision support only: it does not replace clinical judgement.",
    "icu_mortality": "Estimate, 24 hours after ICU admission, the risk of death during the ICU stay "
    "(or within 6 hours of leaving it), to support — never replace — goals-of-care discussions "
    "and resource planning.",
    "los": "Estimate at 24 hours after admission how long the hospital stay will last (days), for "
    "bed and discharge planning.",
}


def _cohort_text(task: str) -> str:
    doc = inspect.getdoc(cohorts) or ""
    lines = [ln for ln in doc.splitlines() if ln.startswith(f"- {task}:")]
    if not lines:
        return ""
    start = doc.splitlines().index(lines[0])
    out = [lines[0][2:]]
    for ln in doc.splitlines()[start + 1 :]:
        if ln.startswith("- ") or not ln.strip():
            break
        out.append(ln.strip())
    return " ".join(out)


def _metric_table(
    metrics: dict[str, dict[str, Estimate]], chosen: str, baseline: dict[str, Estimate] | None
) -> str:
    names = list(next(iter(metrics.values())).keys())
    head = "| model | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []
    for model, ms in metrics.items():
        mark = " (default)" if model == chosen else ""
        rows.append(f"| {model}{mark} | " + " | ".join(ms[n].fmt() for n in names) + " |")
    if baseline:
        rows.append("| median baseline | " + " | ".join(baseline[n].fmt() for n in names) + " |")
    return head + "\n".join(rows)


def model_card(
    meta: BundleMeta,
    *,
    fairness: pd.DataFrame | None = None,
    imbalance: pd.DataFrame | None = None,
    plots: list[str] | None = None,
) -> str:
    """The card as Markdown. `fairness` is a tidy table (attribute, group, metric, point, lo, hi, n)."""
    t = meta.task
    target = meta.target
    feats = "\n".join(
        f"| `{n}` | {FEATURES[n].label} | {FEATURES[n].unit or '—'} | {FEATURES[n].source} | "
        f"{FEATURES[n].window} |"
        for n in meta.numeric + meta.categorical
    )
    space = "log-odds" if meta.kind == "classification" else "log-days"
    parts = [
        f"# Model card: {t} (`{meta.version}`)",
        "",
        "## Model",
        f"- Default model: **{meta.default_model}** (chosen by out-of-fold "
        f"{'AUROC' if meta.kind == 'classification' else 'MAE'}); also trained: "
        f"{', '.join(m for m in meta.models if m != meta.default_model) or '—'}.",
        f"- Hyper-parameters (chosen inside training folds): `{meta.params}`.",
        f"- Code version `{meta.code_version}`; training data hash `{meta.data_hash}`; "
        f"created {meta.created}.",
        f"- Explanations: exact SHAP values in {space} space (TreeExplainer for trees, "
        "LinearExplainer with a full-training-set independent masker for linear models).",
        "",
        "## Intended use",
        _INTENDED.get(t, ""),
        "Not for: automated decisions, dosing or treatment choices, or populations unlike the "
        "training data (see Limitations).",
        "",
        "## Data source",
        f"- Source: `{meta.data_source}` (MIMIC-III-shaped tables; the embedded default is a "
        "synthetic hospital, not real patients).",
        f"- Units: {meta.n_units:,} from {meta.n_patients:,} patients.",
        "",
        "## Cohort, prediction time and outcome",
        _cohort_text(t),
        f"Outcome column: `{target}`. Features use only data charted strictly before the "
        "prediction time (date-only events count at the end of their day).",
        "",
        "## Predictors",
        "| feature | label | unit | source | window |",
        "|---|---|---|---|---|",
        feats,
        "",
        "Missing values: trees handle them natively; linear models use median imputation plus "
        "missing-value indicators, fitted on training folds only.",
        "",
        "## Development and validation",
        "Nested cross-validation with folds grouped by patient (no patient in both train and test): "
        "5 outer folds, hyper-parameters chosen by 3-fold grouped search inside each training fold. "
        "All metrics are computed on out-of-fold predictions, with 95 % CIs from a bootstrap that "
        "resamples patients.",
        "",
        "## Performance (out-of-fold, 95 % CI)",
        _metric_table(meta.metrics, meta.default_model, meta.baseline),
        "",
    ]
    if meta.kind == "classification":
        parts += [
            "## Calibration",
            "Calibration slope (ideal 1) and intercept (calibration-in-the-large, ideal 0) are in "
            "the table above, for the raw models. Class-weighted training inflates predicted "
            "probabilities, so the reported risk adds a log-odds offset fitted on the out-of-fold "
            "predictions (prior correction): "
            + ", ".join(f"{m} {v:+.3f}" for m, v in meta.offsets.items())
            + ". This restores calibration-in-the-large; it does not change rankings, AUROC or "
            "the SHAP contributions (the offset is part of the base value). The slope is "
            "unchanged: a slope below 1 means risks are too extreme at both ends.",
            "",
        ]
    if fairness is not None and not fairness.empty:
        parts += ["## Fairness (out-of-fold, by subgroup, 95 % CI)", _fairness_md(fairness), ""]
    if imbalance is not None and not imbalance.empty:
        parts += [
            "## Imbalance strategies (same grouped folds)",
            imbalance.to_markdown(index=False)
            if _has_tabulate()
            else imbalance.to_string(index=False),
            "",
        ]
    parts += [
        "## Limitations",
        "- Trained on a single-centre, de-identified ICU database (MIMIC-III, Boston, 2001–2012) "
        "or its synthetic imitation; performance will differ elsewhere and over time.",
        "- Small cohorts (e.g. the 100-patient demo) give very wide intervals; do not use such "
        "models clinically.",
        "- ICD codes are known only at discharge, so only the readmission model uses the current "
        "admission's diagnoses.",
        "- No vital signs when CHARTEVENTS is absent.",
        "",
    ]
    if plots:
        parts += ["## Plots", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(parts)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _fairness_md(df: pd.DataFrame) -> str:
    lines = ["| attribute | group | metric | estimate | n |", "|---|---|---|---|---|"]
    for r in df.itertuples():
        est = Estimate(point=_num(r.point), lo=_num(r.lo), hi=_num(r.hi), n_boot=0).fmt()
        lines.append(f"| {r.attribute} | {r.group} | {r.metric} | {est} | {r.n} |")
    return "\n".join(lines)


def _num(v: object) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else f
