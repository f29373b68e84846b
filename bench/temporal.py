"""Benchmark: the temporal model's training time per epoch and inference latency per patient, beside
the tabular tree model (fit, Facts) measured in the same process on the same units.

    .venv/bin/python bench/temporal.py [--data BUILT_DIR | --mimic-dir DIR] [--task readmission]
                                       [--epochs 3] [--reps 100] [--threads N] [--json FILE]

Prints seconds per epoch (and per 1,000 units), the tabular fit time, and median / p95 latency (ms)
of one patient's prediction and of one patient's Facts (integrated gradients over the events),
with ratios to the tabular tree model.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from common import add_data_options, built_data, parser, summary, timed

from safellm.data.events import load_events
from safellm.explain.shap import FactsExplainer
from safellm.explain.temporal import TemporalExplainer
from safellm.risk.dataset import load_task
from safellm.risk.pipelines import make_pipeline
from safellm.risk.sequences import Vocab, encode
from safellm.risk.temporal import TemporalConfig, fit_network, predict_logits
from safellm.risk.temporal_registry import TemporalBundle, TemporalMeta
from safellm.risk.train import _target


def main() -> None:
    ap = parser(__doc__)
    add_data_options(ap)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = built_data(args)
    td = load_task(data, args.task)
    events = load_events(data, args.task)
    units = td.frame["unit_id"].to_numpy()
    cfg = TemporalConfig()

    t = time.perf_counter()
    vocab = Vocab.fit(events)
    enc = encode(events, units, vocab, cfg.max_steps, cfg.max_events)
    encode_s = time.perf_counter() - t
    epoch_s: list[float] = []
    stamp = [time.perf_counter()]

    def on_epoch(_e: int, _loss: float) -> None:
        now = time.perf_counter()
        epoch_s.append(now - stamp[0])
        stamp[0] = now

    net, _ = fit_network(
        enc, td.y, len(vocab.tokens), cfg, seed=0, epochs=args.epochs, on_epoch=on_epoch
    )
    per_epoch = statistics.median(epoch_s)

    pipe = make_pipeline("hgb", td.numeric, td.categorical, seed=0)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(td.X, _target(td))
    tab_fit = time.perf_counter() - t
    tab = FactsExplainer.for_task_data(pipe, "hgb", td, bands=(0.2, 0.5), version="bench")

    meta = TemporalMeta(
        task=args.task, version="bench", created="", kind="classification", target=td.target,
        config=cfg.to_dict(), epochs=args.epochs, fold_epochs=[], bands=(0.2, 0.5), offset=0.0,
        data_hash=td.data_hash, data_source=str(data), code_version="", n_units=len(units),
        n_patients=int(td.frame["subject_id"].nunique()), metrics={},
    )  # fmt: skip
    ex = TemporalExplainer(TemporalBundle(meta, net, vocab, cfg, Path(".")), events)
    rows = [td.frame.iloc[[i % len(td.frame)]] for i in range(args.reps)]

    def one_prediction(frame) -> float:  # type: ignore[no-untyped-def]
        return float(ex.outputs(frame)[0])

    tmp_pred = timed(one_prediction, rows, args.reps)
    tmp_facts = timed(lambda row: ex.facts(row.iloc[0]), rows, args.reps)
    tab_pred = timed(lambda row: pipe.predict_proba(row[tab.features]), rows, args.reps)
    tab_facts = timed(tab.facts, rows, args.reps)
    t = time.perf_counter()
    predict_logits(net, enc)
    batch_ms = (time.perf_counter() - t) * 1000 / len(units)

    steps = enc.mask.sum(axis=1)
    results = {
        "task": args.task,
        "units": len(units),
        "events": len(events),
        "steps_per_unit_median": float(np.median(steps)),
        "threads": args.threads,
        "encode_s": encode_s,
        "epoch_s": per_epoch,
        "epoch_s_per_1000_units": per_epoch * 1000 / len(units),
        "tabular_hgb_fit_s": tab_fit,
        "temporal_predict_ms": summary(tmp_pred)[0],
        "temporal_predict_p95": summary(tmp_pred)[1],
        "temporal_facts_ms": summary(tmp_facts)[0],
        "temporal_facts_p95": summary(tmp_facts)[1],
        "temporal_batch_ms_per_unit": batch_ms,
        "tabular_predict_ms": summary(tab_pred)[0],
        "tabular_facts_ms": summary(tab_facts)[0],
    }
    r = results
    print(
        f"task {args.task}: {r['units']:,} units, {r['events']:,} events, "
        f"median {r['steps_per_unit_median']:.0f} steps per unit; {args.threads} thread(s)"
    )
    print(
        f"training: {per_epoch:.2f} s per epoch ({r['epoch_s_per_1000_units']:.2f} s per 1,000 "
        f"units; median of {args.epochs}); encoding {encode_s:.2f} s once; the tabular tree model "
        f"fits in {tab_fit:.2f} s (one epoch = {per_epoch / tab_fit:.1f}x a tabular fit)"
    )
    print(f"{'per patient (ms)':24} {'median':>8} {'p95':>8} {'vs tabular hgb':>15}")
    print(
        f"{'temporal prediction':24} {r['temporal_predict_ms']:>8.2f} "
        f"{r['temporal_predict_p95']:>8.2f} {r['temporal_predict_ms'] / r['tabular_predict_ms']:>14.1f}x"
    )
    print(
        f"{'temporal Facts (IG)':24} {r['temporal_facts_ms']:>8.2f} "
        f"{r['temporal_facts_p95']:>8.2f} {r['temporal_facts_ms'] / r['tabular_facts_ms']:>14.1f}x"
    )
    print(
        f"{'tabular prediction':24} {r['tabular_predict_ms']:>8.2f}\n"
        f"{'tabular Facts (SHAP)':24} {r['tabular_facts_ms']:>8.2f}\n"
        f"{'temporal, batched':24} {batch_ms:>8.3f} (per unit, all units in one call)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
