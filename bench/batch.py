"""Batch throughput: units per hour of `safellm batch` on this machine, and what more machines
would give.

    .venv/bin/python bench/batch.py [--home DIR] [--units N] [--local-units K] [--gpu-llm-s S]

On the home's readmission units (`--home`, default $SAFELLM_HOME or .safellm; built and trained):
- Facts only (prediction, exact SHAP, note retrieval) in one process;
- full guarded explanations with the fake model (every step but the LLM's own time): one process,
  then Ray with 1 and 2 actors on a local Ray cluster of this machine's 2 cores;
- the packaged local model on `--local-units` units (0: skipped), for the LLM's time per unit.
Then a projection for N CPU workers and M GPU inference servers from the measured per-unit
costs: units/hour = min(N x CPU-side rate per worker, M x 3600 / LLM seconds per unit on a GPU
server). No GPU here: `--gpu-llm-s` is an assumption, printed as one.
Figures also written as JSON to --out.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, parser

from safellm.config import Settings
from safellm.services.batch import BatchJob, run_batch
from safellm.services.explanation import ExplanationService


def _home(path: Path) -> Path:
    """A scratch home over `path`'s data and models (its own audit trail)."""
    home = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    for sub in ("data", "models"):
        (home / sub).symlink_to(path.resolve() / sub)
    return home


def rate(units: int, seconds: float) -> float:
    return units / seconds * 3600 if seconds > 0 else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("SAFELLM_HOME", ".safellm")))
    ap.add_argument("--units", type=int, default=96, help="units per fake-model run")
    ap.add_argument("--local-units", type=int, default=2, help="units with the local model")
    ap.add_argument("--gpu-llm-s", type=float, default=2.0, help="assumed LLM s/unit on a GPU")
    ap.add_argument("--out", type=Path, default=ROOT / ".safellm" / "bench" / "batch_bench.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    home = _home(args.home)
    settings = Settings(home=home, llm_model="fake", guard_judge=False, prefetch=False)
    rows: dict[str, Any] = {}
    try:
        service = ExplanationService(settings)
        frame = service.task_data("readmission").frame.iloc[: args.units]
        service.facts_of("readmission", frame.iloc[0])  # warm: models, embedder
        t = time.perf_counter()
        for _, row in frame.iterrows():
            service.facts_of("readmission", row)
        facts_s = time.perf_counter() - t
        rows["facts_one_process"] = rate(len(frame), facts_s)
        print(f"Facts only, one process: {rows['facts_one_process']:,.0f} units/hour", flush=True)

        def run(name: str, **job: Any) -> float:
            out = home / "batch" / name
            shutil.rmtree(out, ignore_errors=True)
            summary = run_batch(
                settings,
                BatchJob(task="readmission", out=out, limit=args.units, **job),
                service=service if job.get("engine", "local") == "local" else None,
            )
            assert summary.errors == 0, summary
            print(
                f"{name}: {summary.units_per_hour:,.0f} units/hour "
                f"({summary.done_now} units in {summary.seconds:.1f} s)",
                flush=True,
            )
            return summary.units_per_hour

        rows["fake_one_process"] = run("fake, one process")
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for n in (1, 2):
                rows[f"fake_ray_{n}"] = run(f"fake, Ray, {n} actor(s)", engine="ray", workers=n)
        finally:
            ray.shutdown()
        llm_s = None
        if args.local_units:
            local = settings.model_copy(update={"llm_model": "local"})
            out = home / "batch" / "local"
            summary = run_batch(
                local,
                BatchJob(task="readmission", out=out, limit=args.local_units, model="local"),
            )
            per_unit = summary.seconds / max(summary.done_now, 1)
            cpu_side = 3600 / rows["fake_one_process"]
            llm_s = per_unit - cpu_side
            rows["local_one_process"] = summary.units_per_hour
            print(
                f"local model, one process: {summary.units_per_hour:,.0f} units/hour "
                f"({per_unit:.1f} s per unit, of which the LLM ~{llm_s:.1f} s)",
                flush=True,
            )
        rows["local_llm_s"] = llm_s
        cpu_rate = rows["fake_one_process"]  # one worker's rate without the LLM's time
        print(
            f"\nProjection (one CPU worker = {cpu_rate:,.0f} units/hour as measured here; "
            f"LLM on a GPU server: {args.gpu_llm_s:g} s per unit, ASSUMED, one question at a "
            "time):"
        )
        print("| CPU workers | GPU servers | units/hour | bound by |\n|---|---|---|---|")
        projection = []
        for n, m in ((2, 1), (8, 1), (8, 2), (32, 4), (64, 8)):
            gpu_rate = m * 3600 / args.gpu_llm_s
            total = min(n * cpu_rate, gpu_rate)
            bound = "CPU" if n * cpu_rate < gpu_rate else "GPU"
            projection.append({"workers": n, "gpus": m, "units_per_hour": total, "bound": bound})
            print(f"| {n} | {m} | {total:,.0f} | {bound} |")
        rows["projection"] = projection
    finally:
        shutil.rmtree(home, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
