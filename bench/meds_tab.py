"""Baseline: a MEDS-Tab-style tabularisation of the MEDS export + gradient boosting, on the same
patient-grouped folds as SafeLLM's models, its out-of-fold AUROC (MAE for length of stay) with a
patient-level bootstrap 95 % CI beside the registered SafeLLM model's.

    .venv/bin/python bench/meds_tab.py --home H [--meds DIR] [--codes 300] [--n-boot 200]

H is a SAFELLM_HOME with the data built (`safellm data build`) and the models trained (`safellm
train --task T`); the MEDS export is written to H/meds unless --meds names one.

The tabularisation follows MEDS-Tab (meds-tab 0.2): for each label (subject, prediction time),
over the windows `full` (all history), `365d`, `30d` and `1d` before and including the prediction
time, per code `code/count`, and per code with values `value/count`, `value/sum`, `value/min`,
`value/max`, over the codes seen at least --min-count times in the train split (the most frequent
--codes of them), plus the static codes. The model is scikit-learn's HistGradientBoosting (MEDS-Tab
uses XGBoost), fitted on each outer fold's training part and scored on its held-out part.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from common import parser

from safellm.config import Settings
from safellm.data.meds import SPLITS
from safellm.risk.dataset import load_task
from safellm.risk.evaluate import CLASSIFICATION, REGRESSION, Estimate, bootstrap
from safellm.risk.registry import load_bundle
from safellm.risk.train import outer_folds
from safellm.services.data import export_data
from safellm.tasks import TASKS

WINDOWS = {"full": None, "365d": 365, "30d": 30, "1d": 1}


def tabularise(
    meds_dir: Path, labels: pd.DataFrame, codes: list[str], numeric: set[str]
) -> pd.DataFrame:
    """One row per label row (in its order), one column per window × code × aggregate."""
    con = duckdb.connect()
    shards = [str(p) for s in SPLITS for p in sorted((meds_dir / "data" / s).glob("*.parquet"))]
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({shards!r})")
    con.register(
        "labels",
        labels.assign(row=np.arange(len(labels)))[["row", "subject_id", "prediction_time"]],
    )
    con.register("chosen", pd.DataFrame({"code": codes}))
    parts = []
    for name, days in WINDOWS.items():
        since = "" if days is None else f"AND e.time > l.prediction_time - INTERVAL {days} DAY"
        agg = con.execute(
            "SELECT l.row, e.code, count(*) AS n, count(e.numeric_value) AS nv, "
            "sum(e.numeric_value) AS s, min(e.numeric_value) AS lo, max(e.numeric_value) AS hi "
            "FROM labels l JOIN events e ON e.subject_id = l.subject_id "
            "JOIN chosen c ON c.code = e.code "
            f"WHERE e.time IS NOT NULL AND e.time <= l.prediction_time {since} "
            "GROUP BY l.row, e.code"
        ).df()
        wide = agg.pivot(index="row", columns="code", values="n")
        wide.columns = [f"{name}/{c}/code/count" for c in wide.columns]
        parts.append(wide)
        valued = agg[agg["code"].isin(numeric)]
        for col, label in (("nv", "count"), ("s", "sum"), ("lo", "min"), ("hi", "max")):
            w = valued.pivot(index="row", columns="code", values=col)
            w.columns = [f"{name}/{c}/value/{label}" for c in w.columns]
            parts.append(w)
    static = con.execute(
        "SELECT l.row, e.code FROM labels l JOIN events e ON e.subject_id = l.subject_id "
        "WHERE e.time IS NULL"
    ).df()
    parts.append(pd.crosstab(static["row"], static["code"]).add_prefix("static/").astype(float))
    table = pd.concat(parts, axis=1).reindex(range(len(labels)))
    count_cols = [c for c in table.columns if c.endswith("/count") or c.startswith("static/")]
    table[count_cols] = table[count_cols].fillna(0)
    return table


def chosen_codes(meds_dir: Path, top: int, min_count: int) -> tuple[list[str], set[str]]:
    """The train split's most frequent timed codes (at least `min_count` events), and which of
    them carry values."""
    con = duckdb.connect()
    train = str(meds_dir / "data" / "train" / "*.parquet")
    rows = con.execute(
        f"SELECT code, count(*) AS n, count(numeric_value) AS nv FROM read_parquet('{train}') "
        f"WHERE time IS NOT NULL GROUP BY code HAVING count(*) >= {int(min_count)} "
        f"ORDER BY n DESC, code LIMIT {int(top)}"
    ).fetchall()
    return [r[0] for r in rows], {r[0] for r in rows if r[2] > 0}


def baseline(task: str, X: pd.DataFrame, y: np.ndarray, folds: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold predictions of gradient boosting over the tabularised history."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    oof = np.full(len(y), np.nan)
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        # columns with one value or none in the training part carry nothing (and trip the binner)
        keep = X.columns[X[train].nunique(dropna=True).to_numpy() > 1]
        X_k = X[keep]
        if TASKS[task].kind == "classification":
            clf = HistGradientBoostingClassifier(
                learning_rate=0.05, max_iter=300, l2_regularization=1.0, random_state=seed
            )
            clf.fit(X_k[train], y[train])
            oof[test] = clf.predict_proba(X_k[test])[:, 1]
        else:
            reg = HistGradientBoostingRegressor(
                learning_rate=0.05, max_iter=300, l2_regularization=1.0, random_state=seed
            )
            reg.fit(X_k[train], np.log(np.maximum(y[train], 1e-3)))
            oof[test] = np.exp(reg.predict(X_k[test]))
    return oof


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--meds", type=Path)
    ap.add_argument("--codes", type=int, default=300)
    ap.add_argument("--min-count", type=int, default=10)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--tasks", default="readmission,icu_mortality,los")
    args = ap.parse_args()
    settings = Settings(home=args.home)
    meds_dir = args.meds or args.home / "meds"
    if args.meds is None:
        t = time.perf_counter()
        export_data(settings, settings.data_dir, meds_dir)
        print(f"MEDS export: {meds_dir} in {time.perf_counter() - t:.1f} s")
    codes, numeric = chosen_codes(meds_dir, args.codes, args.min_count)
    print(f"codes: {len(codes)} timed ({len(numeric)} with values), windows {list(WINDOWS)}")
    results = {}
    for task in args.tasks.split(","):
        spec = TASKS[task]
        td = load_task(settings.data_dir, task)
        folds = outer_folds(td, seed=settings.seed)
        labels = pd.read_parquet(meds_dir / "labels" / f"{task}.parquet")
        t = time.perf_counter()
        X = tabularise(meds_dir, labels, codes, numeric)
        t_tab = time.perf_counter() - t
        value = "boolean_value" if spec.kind == "classification" else "float_value"
        y = labels[value].to_numpy(dtype=float)
        assert np.array_equal(y, td.y.astype(float)) or spec.kind != "classification"
        oof = baseline(task, X, y, folds, settings.seed)
        metric = "auroc" if spec.kind == "classification" else "mae"
        fns = CLASSIFICATION if spec.kind == "classification" else REGRESSION
        ours_meta = load_bundle(settings.models_dir, task).meta
        ours: Estimate = ours_meta.metrics[ours_meta.default_model][metric]
        theirs = bootstrap({metric: fns[metric]}, y, oof, td.groups, n_boot=args.n_boot)[metric]
        results[task] = {
            "metric": metric,
            "units": len(y),
            "features": X.shape[1],
            "tabularise_s": round(t_tab, 1),
            "meds_tab_hgb": theirs.fmt(),
            f"safellm_{ours_meta.default_model}": ours.fmt(),
        }
        print(
            f"{task:14s} {metric}  MEDS-Tab-style HGB {theirs.fmt()}   SafeLLM "
            f"{ours_meta.default_model} {ours.fmt()}   ({len(y)} units, {X.shape[1]} columns, "
            f"tabularised in {t_tab:.1f} s)"
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
