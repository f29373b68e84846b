"""Benchmark: prediction + Facts for one patient vs a bare predict_proba and vs KernelExplainer.

    .venv/bin/python bench/predict.py [--data BUILT_DIR | --mimic-dir DIR] [--task readmission]

Prints median and p95 latency (ms) per call and the ratios, measured in this one process.
Target: Facts for one patient in under 5 ms for the tree model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safellm.data.build import build_dataset  # noqa: E402
from safellm.explain.shap import FactsExplainer  # noqa: E402
from safellm.risk.dataset import load_task  # noqa: E402
from safellm.risk.pipelines import make_pipeline  # noqa: E402
from safellm.risk.train import _target  # noqa: E402


def timed(fn, reps: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def summary(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), float(np.percentile(ms, 95))


def measure(model: str, td, args) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median and p95 (ms) of predict_proba and of Facts for single patients; KernelExplainer."""
    pipe = make_pipeline(model, td.numeric, td.categorical, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(td.X, _target(td))
    ex = FactsExplainer.for_task_data(pipe, model, td, bands=(0.2, 0.5), version="bench")
    rows = [td.frame.iloc[[i % len(td.frame)]] for i in range(args.reps)]
    it = iter(rows * 2)
    bare = timed(lambda: pipe.predict_proba(next(it)[ex.features]), args.reps)
    it = iter(rows * 2)
    facts = timed(lambda: ex.facts(next(it)), args.reps)
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
            k = timed(lambda: kernel.shap_values(Xt[:1], silent=True), args.kernel_reps)
        r["kernel_ms"], r["kernel_p95"] = summary(k)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, help="a folder written by `safellm data build`")
    ap.add_argument(
        "--mimic-dir", type=Path, default=ROOT.parent / "shared" / "data" / "mimic-iii-demo-1.4"
    )
    ap.add_argument("--task", default="readmission", choices=["readmission", "icu_mortality"])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--kernel-reps", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp()) / "data"
        build_dataset(args.mimic_dir, data)
    td = load_task(data, args.task)
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
