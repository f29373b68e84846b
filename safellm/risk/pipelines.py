"""scikit-learn pipelines per task and model, and the map from pipeline columns back to features."""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from safellm.errors import UnknownNameError

# model name -> (task kind, is tree model)
MODELS: dict[str, tuple[str, bool]] = {
    "logreg": ("classification", False),
    "hgb": ("classification", True),
    "ridge": ("regression", False),
    "hgb_reg": ("regression", True),
}

# Hyper-parameter grids, searched inside the training folds only (names are Pipeline params).
GRIDS: dict[str, dict[str, list[Any]]] = {
    "logreg": {"model__C": [0.01, 0.1, 1.0]},
    "hgb": {"model__learning_rate": [0.05, 0.1], "model__min_samples_leaf": [10, 40]},
    "ridge": {"model__alpha": [1.0, 10.0, 100.0]},
    "hgb_reg": {"model__learning_rate": [0.05, 0.1], "model__min_samples_leaf": [10, 40]},
}


def models_for(kind: str) -> list[str]:
    return [m for m, (k, _) in MODELS.items() if k == kind]


def is_tree(model: str) -> bool:
    return MODELS[model][1]


def _onehot() -> OneHotEncoder:
    return OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False)


def make_pipeline(
    model: str, numeric: list[str], categorical: list[str], seed: int = 0
) -> Pipeline:
    """Preprocessing + estimator. Trees see raw numbers (NaN handled natively); linear models see
    median-imputed, standardised numbers plus missing-value indicators."""
    if model not in MODELS:
        raise UnknownNameError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if is_tree(model):
        num: Any = "passthrough"
    else:
        num = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                ),
                ("scale", StandardScaler()),
            ]
        )
    pre = ColumnTransformer(
        [("num", num, numeric), ("cat", _onehot(), categorical)],
        verbose_feature_names_out=True,
    )
    est: Any
    if model == "logreg":
        est = LogisticRegression(class_weight="balanced", max_iter=5000, C=0.1)
    elif model == "hgb":
        est = HistGradientBoostingClassifier(
            class_weight="balanced",
            max_iter=200,
            max_depth=4,
            random_state=seed,
            early_stopping=False,
        )
    elif model == "ridge":
        est = Ridge(alpha=10.0)
    else:
        est = HistGradientBoostingRegressor(
            max_iter=200, max_depth=4, random_state=seed, early_stopping=False
        )
    return Pipeline([("pre", pre), ("model", est)])


def column_sources(pipe: Pipeline, numeric: list[str], categorical: list[str]) -> list[str]:
    """For each column the fitted preprocessor outputs, the catalogue feature it comes from."""
    names = pipe.named_steps["pre"].get_feature_names_out()
    out: list[str] = []
    by_len = sorted(categorical, key=len, reverse=True)
    for n in names:
        block, _, col = str(n).partition("__")
        if block == "num":
            src = col.removeprefix("missingindicator_")
            if src not in numeric:
                raise ValueError(f"cannot map pipeline column {n!r} to a feature")
        else:
            src = next((c for c in by_len if col.startswith(c + "_")), "")
            if not src:
                raise ValueError(f"cannot map pipeline column {n!r} to a feature")
        out.append(src)
    return out
