"""Exact SHAP attributions for a fitted pipeline, mapped back to catalogue features → Facts.

Trees: `shap.TreeExplainer` (exact, additive to the raw log-odds / log-days output). Linear
models: `shap.LinearExplainer` with an `Independent` masker over the whole training set (not shap's
silent 100-row default). Pipeline columns (one-hot levels, missing-value indicators) are summed into
the feature they come from, which keeps the sum exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from safellm.data.catalogue import FEATURES
from safellm.explain.facts import Facts, Space, unit_facts
from safellm.risk.dataset import TaskData
from safellm.risk.pipelines import column_sources, is_tree
from safellm.tasks import task_spec


class FactsExplainer:
    """Turns rows of a task table into Facts with one fitted pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        model: str,
        task: str,
        kind: str,
        numeric: list[str],
        categorical: list[str],
        background: pd.DataFrame,
        bands: tuple[float, float],
        version: str,
        offset: float = 0.0,
    ) -> None:
        """`offset` is added to the model's log-odds (prior correction of a class-weighted
        classifier, fitted on out-of-fold predictions); it becomes part of the base value, so the
        contributions still add up exactly to the reported risk."""
        import shap  # heavy: only when explaining

        self.pipeline = pipeline
        self.model = model
        self.task = task_spec(task).name
        self.kind = kind
        self.features = numeric + categorical
        self.bands = bands
        self.version = version
        self.pre = pipeline.named_steps["pre"]
        self.est = pipeline.named_steps["model"]
        sources = column_sources(pipeline, numeric, categorical)
        index = {f: i for i, f in enumerate(self.features)}
        # (n_columns, n_features) 0/1 matrix: column j belongs to feature i
        self.group = np.zeros((len(sources), len(self.features)))
        for j, src in enumerate(sources):
            self.group[j, index[src]] = 1.0
        self._fast: _TreeRowEncoder | None = None
        if is_tree(model):
            self.explainer: Any = shap.TreeExplainer(self.est)
            self._fast = _TreeRowEncoder(self.pre, numeric, categorical, len(sources))
        else:
            Xb = self.pre.transform(background)
            masker = shap.maskers.Independent(Xb, max_samples=len(Xb))
            self.explainer = shap.LinearExplainer(self.est, masker)
        ev = np.ravel(self.explainer.expected_value)
        self.offset = float(offset)
        self.raw_base_value = float(ev[-1])
        self.base_value = self.raw_base_value + self.offset

    @classmethod
    def for_task_data(
        cls,
        pipeline: Pipeline,
        model: str,
        td: TaskData,
        *,
        bands: tuple[float, float],
        version: str,
    ) -> FactsExplainer:
        """An explainer for a pipeline fitted on `td`, with all of `td` as background."""
        return cls(
            pipeline,
            model=model,
            task=td.task,
            kind=td.kind,
            numeric=td.numeric,
            categorical=td.categorical,
            background=td.X,
            bands=bands,
            version=version,
        )

    @property
    def space(self) -> Space:
        return "log-odds" if self.kind == "classification" else "log-days"

    def attributions(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions (n, n_features) and the model output (n,) in `space`."""
        if self._fast is not None and len(X) == 1:
            Xt = self._fast.transform(X.iloc[0])
        else:
            Xt = self.pre.transform(X[self.features])
        sv = np.asarray(self.explainer.shap_values(Xt))
        if sv.ndim == 3:  # (n, cols, classes) from some shap versions
            sv = sv[..., -1]
        contrib = sv @ self.group
        return contrib, self.base_value + contrib.sum(axis=1)

    def outputs(self, X: pd.DataFrame) -> np.ndarray:
        """The model output (n,) in `space` of every row of X."""
        return self.attributions(X)[1]

    def global_view(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """For plots over many units: contributions, the matching raw values (NaN for categories)
        and clinical labels — all three in this explainer's feature order."""
        contrib, _ = self.attributions(X)
        data = np.column_stack(
            [
                pd.to_numeric(X[n], errors="coerce").to_numpy(dtype=float)
                if FEATURES[n].kind != "categorical"
                else np.full(len(X), np.nan)
                for n in self.features
            ]
        )
        return contrib, data, [FEATURES[n].label for n in self.features]

    def risk(self, output: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-output)) if self.kind == "classification" else np.exp(output)

    def facts(self, row: pd.Series | pd.DataFrame) -> Facts:
        """Facts for one unit (a row of the built task table, keys included)."""
        frame = row.to_frame().T if isinstance(row, pd.Series) else row
        contrib, output = self.attributions(frame)
        r = frame.iloc[0]
        parts = [
            (n, FEATURES[n].label, _raw(r[n]), FEATURES[n].unit, float(s))
            for n, s in zip(self.features, contrib[0], strict=True)
        ]
        return unit_facts(
            r, self, parts=parts, model_output=float(output[0]), base_value=self.base_value
        )


class _TreeRowEncoder:
    """The tree pipeline's preprocessing for ONE row without pandas overhead (a test checks it
    equals `pre.transform` on every row): numbers pass through, each category maps to its one-hot
    column, learnt once from the fitted encoder itself."""

    def __init__(self, pre: Any, numeric: list[str], categorical: list[str], width: int) -> None:
        self.numeric = numeric
        self.width = width
        names = [str(n) for n in pre.get_feature_names_out()]
        self.num_pos = np.array([names.index(f"num__{n}") for n in numeric], dtype=int)
        self.cat_maps: list[tuple[str, dict[Any, int], int | None]] = []
        if not categorical:
            return
        enc = pre.named_transformers_["cat"]
        first = names.index(next(n for n in names if n.startswith("cat__")))
        # output columns of categorical input j are consecutive: [edges[j], edges[j + 1])
        edges = np.cumsum([0, *(int(w) for w in enc._n_features_outs)])
        base = [c[0] for c in enc.categories_]
        for j, feat in enumerate(categorical):
            probes = [*enc.categories_[j], _UNKNOWN]
            frame = pd.DataFrame([base] * len(probes), columns=categorical)
            frame[feat] = probes
            block = enc.transform(frame)[:, edges[j] : edges[j + 1]]
            mapping: dict[Any, int] = {}
            for cat, row in zip(probes, block, strict=True):
                hot = np.flatnonzero(row == 1)
                mapping[cat] = int(first + edges[j] + hot[0]) if len(hot) else -1
            unknown = mapping.pop(_UNKNOWN)
            self.cat_maps.append((feat, mapping, None if unknown < 0 else unknown))

    def transform(self, row: pd.Series) -> np.ndarray:
        x = np.zeros((1, self.width))
        x[0, self.num_pos] = pd.to_numeric(row[self.numeric], errors="coerce").to_numpy(float)
        for feat, mapping, unknown in self.cat_maps:
            pos = mapping.get(row[feat], unknown)
            if pos is not None and pos >= 0:
                x[0, pos] = 1.0
        return x


_UNKNOWN = "\x00unknown"


def _raw(v: Any) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    f = float(v)
    return None if math.isnan(f) else f
