"""Benchmark: prediction + Facts for one patient vs a bare predict_proba and vs KernelExplainer.

    .venv/bin/python bench/predict.py [--data BUILT_DIR | --mimic-dir DIR] [--task readmission]

Prints median and p95 latency (ms) per call and the ratios, measured in this one process.
Target: Facts for one patient in under 5 ms for the tree model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from common import add_data_options, built_data, parser, summary, timed

from safellm.explain.shap import FactsExplainer
from safellm.risk.dataset import load_task
from safellm.risk.pipelines import make_pipeline
from safellm.risk.train import _target


def measure(model: str, td, args) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median and p95 (ms) of predict_proba and of Facts for single patients; KernelExplainer."""
    pipe = make_pipeline(model, td.numeric, td.categorical, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(td.X, _target(td))
    ex = FactsExplainer.for_task_data(pipe, model, td, bands=(0.2, 0.5), version="bench")
    rows = [td.frame.iloc[[i % len(td.frame)]] for i in range(args.reps)]
    bare = timed(lambda row: pipe.predict_proba(row[ex.features]), rows, args.reps)
    facts = timed(ex.facts, rows, args.reps)
    r = {
        "predict_proba_ms": summary(bare)[0],
        "predict_proba_p95": summary(bare)[1],
        "facts_ms": summary(facts)[0],
        "facts_p95": summary(facts)[1],
    }
    if model == "hgb":
        import shap

        Xt = pipe.named_steps["pre"].transform(td.X).astype(float)
        est = pipe.named_steps["model"]
        bg = shap.kmeans(Xt, 20) if len(Xt) > 20 else Xt
        kernel = shap.KernelExplainer(lambda z: est.predict_proba(z)[:, 1], bg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k = timed(lambda x: kernel.shap_values(x, silent=True), [Xt[:1]], args.kernel_reps)
        r["kernel_ms"], r["kernel_p95"] = summary(k)
    return r


def main() -> None:
    ap = parser(__doc__)
    add_data_options(ap)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--kernel-reps", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    td = load_task(built_data(args), args.task)
    results = {m: measure(m, td, args) for m in ("hgb", "logreg")}
    n_features = len(td.numeric) + len(td.categorical)

    print(
        f"task {args.task}: {len(td.frame):,} units, {n_features} features; "
        f"{args.reps} single-patient calls each (ms)"
    )
    print(f"{'model':8} {'predict_proba':>22} {'Facts (pred+SHAP)':>22} {'Facts/bare':>10}")
    for model, r in results.items():
        print(
            f"{model:8} {r['predict_proba_ms']:>10.2f} (p95 {r['predict_proba_p95']:>6.2f}) "
            f"{r['facts_ms']:>10.2f} (p95 {r['facts_p95']:>6.2f}) "
            f"{r['facts_ms'] / r['predict_proba_ms']:>9.1f}x"
        )
    h = results["hgb"]
    print(
        f"KernelExplainer (hgb, one patient): {h['kernel_ms']:.1f} ms median "
        f"(p95 {h['kernel_p95']:.1f}) — Facts are {h['kernel_ms'] / h['facts_ms']:.0f}x faster"
    )
    ok = h["facts_ms"] < 5
    print(
        f"target Facts < 5 ms (tree model): {'MET' if ok else 'NOT MET'} ({h['facts_ms']:.2f} ms)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
