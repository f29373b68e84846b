"""Facts: the only truth a rationale may use — a prediction and its ranked contributions.

The shape follows the `facts` object of DESIGN.md's Explanation, so `safellm guard check --facts`
accepts exactly what `safellm explain --json` and `POST /v1/explain` return.

Facts cut to their top contributions (`Facts.cut`) keep the rest as one remainder,
`other_contributions` over `n_other` features, so that `base_value + Σ shap + other_contributions`
still equals `model_output` in the prediction's space (`Facts.adds_up`). Values are shown as a
clinician reads them (`Contribution.shown`): rounded to the catalogue's decimals, with the unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from safellm.data.catalogue import display_decimals
from safellm.tasks import TaskName

Space = Literal["log-odds", "probability", "days", "log-days"]
Band = Literal["low", "moderate", "high"]


class Contribution(BaseModel):
    id: str = Field(description="Citation id, F1 = largest |shap|.")
    feature: str = Field(description="Catalogue feature name.")
    label: str = Field(description="Clinical label of the feature.")
    value: float | str | None = Field(description="The patient's raw value (None = not measured).")
    unit: str
    shap: float = Field(description="Contribution in the prediction's `space`.")
    direction: Literal["raises", "lowers"]
    rank: int = Field(ge=1)

    @property
    def shown(self) -> str:
        """The value as displayed: rounded to the feature's catalogue decimals (`:g` for a
        feature the catalogue does not know), with the unit; yes/no, "not measured", or the
        category as it is."""
        return shown_value(self.value, self.unit, display_decimals(self.feature))


class NoteEvidence(BaseModel):
    id: str
    note_id: int
    category: str
    chart_time: str | None
    text: str


class Prediction(BaseModel):
    risk: float = Field(description="Probability (classification) or days (length of stay).")
    band: Band
    base_value: float = Field(description="Expected model output over the training data.")
    space: Space = Field(description="Scale in which base_value and contributions add up.")
    model_output: float = Field(
        description="base_value + sum of contributions + other_contributions, in `space`."
    )


class Facts(BaseModel):
    task: TaskName
    subject_id: int
    hadm_id: int
    icustay_id: int | None = None
    model: str
    model_version: str
    prediction: Prediction
    contributions: list[Contribution]
    other_contributions: float = Field(
        default=0.0,
        description="All other features: the sum of the contributions not listed, in `space`.",
    )
    n_other: int = Field(default=0, ge=0, description="How many contributions that sum covers.")
    notes: list[NoteEvidence] = Field(default_factory=list)

    def top(self, k: int) -> list[Contribution]:
        return self.contributions[:k]

    def cut(self, k: int) -> Facts:
        """These Facts with only the top `k` contributions listed; the others are folded into
        `other_contributions` and `n_other`, so the Facts still add up."""
        rest = self.contributions[k:]
        if not rest:
            return self
        return self.model_copy(
            update={
                "contributions": self.contributions[:k],
                "other_contributions": self.other_contributions + float(sum(c.shap for c in rest)),
                "n_other": self.n_other + len(rest),
            }
        )

    @property
    def gap(self) -> float:
        """model_output - (base_value + Σ shap + other_contributions): 0 when the Facts add up."""
        p = self.prediction
        listed = float(sum(c.shap for c in self.contributions))
        return p.model_output - (p.base_value + listed + self.other_contributions)

    def adds_up(self, tol: float = 1e-6) -> bool:
        """Whether base value, listed contributions and remainder sum to the model output."""
        return abs(self.gap) <= tol * max(1.0, abs(self.prediction.model_output))

    def by_id(self, cid: str) -> Contribution | NoteEvidence | None:
        for c in self.contributions:
            if c.id == cid:
                return c
        for n in self.notes:
            if n.id == cid:
                return n
        return None


# (feature, label, value, unit, contribution) of one explained input, before ranking
Part = tuple[str, str, float | str | None, str, float]


def ranked(parts: Iterable[Part]) -> list[Contribution]:
    """Contributions, largest |contribution| first (ties keep their order), zeros dropped, with
    ids F1, F2, ... and ranks."""
    items: list[Contribution] = []
    for feature, label, value, unit, s in sorted(parts, key=lambda p: -abs(p[4])):
        if s == 0.0:
            continue
        k = len(items) + 1
        items.append(
            Contribution(
                id=f"F{k}",
                feature=feature,
                label=label,
                value=value,
                unit=unit,
                shap=s,
                direction="raises" if s > 0 else "lowers",
                rank=k,
            )
        )
    return items


class Explains(Protocol):
    """What an explainer (tabular SHAP, temporal integrated gradients) tells about its model."""

    @property
    def task(self) -> TaskName: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def bands(self) -> tuple[float, float]: ...

    @property
    def space(self) -> Space: ...

    def risk(self, output: np.ndarray) -> np.ndarray: ...


def unit_facts(
    row: Mapping[str, Any],
    explainer: Explains,
    *,
    parts: Iterable[Part],
    model_output: float,
    base_value: float,
) -> Facts:
    """Facts for the unit of `row` (a row of a built task table, keys included): the explainer's
    model output, its base value and the contributions `parts`, ranked."""
    risk = float(explainer.risk(np.array([model_output]))[0])
    icu = row.get("icustay_id")
    return Facts(
        task=explainer.task,
        subject_id=int(row["subject_id"]),
        hadm_id=int(row["hadm_id"]),
        icustay_id=None if icu is None or pd.isna(icu) else int(icu),
        model=explainer.model,
        model_version=explainer.version,
        prediction=Prediction(
            risk=risk,
            band=band_for(risk, explainer.bands),
            base_value=base_value,
            space=explainer.space,
            model_output=model_output,
        ),
        contributions=ranked(parts),
    )


def band_for(risk: float, thresholds: tuple[float, float]) -> Band:
    """low < thresholds[0] <= moderate < thresholds[1] <= high."""
    if risk >= thresholds[1]:
        return "high"
    if risk >= thresholds[0]:
        return "moderate"
    return "low"


def shown_value(value: float | str | None, unit: str, decimals: int | None = None) -> str:
    """A raw feature value as a clinician reads it (and as rationales must quote it): rounded to
    `decimals` places (None: `:g`, six significant digits), with its unit."""
    if value is None:
        return "not measured"
    if isinstance(value, str):
        return value
    if unit == "yes/no":
        return "yes" if value else "no"
    if decimals is None:
        text = f"{value:g}"
    else:
        text = f"{value:.{decimals}f}"
        if float(text) == 0:
            text = text.lstrip("-")  # -0.04 shows as 0.0, not -0.0
    return f"{text} {unit}".strip()
