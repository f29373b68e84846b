"""Explainers for trained bundles: the tabular bundle's pipeline with exact SHAP, or the temporal
model with integrated gradients over its event sequences. The risk registries load bundles; this
module turns them into explainers (so `safellm.risk` never needs `safellm.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from safellm.errors import UnknownNameError
from safellm.explain.shap import FactsExplainer
from safellm.risk.registry import Bundle, load_bundle

if TYPE_CHECKING:  # torch is imported only when a temporal model is loaded
    from safellm.explain.temporal import TemporalExplainer

Explainer: TypeAlias = "FactsExplainer | TemporalExplainer"
RiskModel = Literal["tabular", "temporal"]


def tabular_explainer(bundle: Bundle, model: str | None = None) -> FactsExplainer:
    """A FactsExplainer for `model` of the bundle (default: the bundle's default model)."""
    name = model or bundle.meta.default_model
    if name not in bundle.pipelines:
        raise UnknownNameError(
            f"model {name!r} is not in bundle {bundle.meta.version}; "
            f"choose one of {', '.join(bundle.pipelines)}"
        )
    return FactsExplainer(
        bundle.pipelines[name],
        model=name,
        task=bundle.meta.task,
        kind=bundle.meta.kind,
        numeric=bundle.meta.numeric,
        categorical=bundle.meta.categorical,
        background=bundle.background,
        bands=bundle.meta.bands,
        version=bundle.meta.version,
        offset=bundle.meta.offsets.get(name, 0.0),
    )


def load_explainer(
    models_dir: Path, data_dir: Path, task: str, risk_model: RiskModel = "tabular"
) -> Explainer:
    """The newest trained model of `task` as an explainer: the tabular bundle (SHAP) or the
    temporal model with the task's event sequences (integrated gradients)."""
    if risk_model == "temporal":
        from safellm.data.events import load_events
        from safellm.explain.temporal import TemporalExplainer
        from safellm.risk.temporal_registry import load_temporal
        from safellm.tasks import temporal_task

        bundle = load_temporal(models_dir, temporal_task(task))
        return TemporalExplainer(bundle, load_events(data_dir, task))
    return tabular_explainer(load_bundle(models_dir, task))
