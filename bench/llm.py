"""LLM benchmark: one explanation through our stack (prompt → LiteLLM → custom provider →
llama.cpp) against the same prompt sent straight to llama.cpp, in the same process, on the same
loaded model.

    .venv/bin/python bench/llm.py [--max-tokens 128] [--repeats 3]

Both paths decode greedily with the same `max_tokens`. Two cache modes:
- cold: the KV cache is reset before each call, so the whole prompt is evaluated;
- warm: the previous call was another patient's prompt, so the fixed prefix (system text and
  instructions) is reused and only the patient's part is evaluated. Calls alternate between the two
  paths over different patients, so neither path ever finds its own prompt cached.
Prints time to first token, total time and decode speed (tokens/s) per path and mode, and the
targets: our tokens/s >= 0.9x llama.cpp's, and < 10 % added latency.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import ROOT, parser

from safellm.config import Settings, apply_offline_switches
from safellm.explain.facts import Facts, NoteEvidence, Prediction, ranked
from safellm.llm.local import engine, model_file
from safellm.llm.prompts import load_prompt
from safellm.llm.registry import get_model
from safellm.rationale import explain, prompt_variables

LABS = [
    ("lab_creatinine_last", "Creatinine (last)", "mg/dL", 1.1),
    ("lab_hemoglobin_min", "Haemoglobin (lowest)", "g/dL", 9.4),
    ("n_prior_adm_12m", "Admissions in the prior 12 months", "admissions", 2.0),
    ("lab_albumin_min", "Albumin (lowest)", "g/dL", 3.1),
    ("age", "Age", "years", 71.0),
    ("lab_sodium_last", "Sodium (last)", "mEq/L", 137.0),
]
NOTES = [
    "Pt with poor urine output overnight, creatinine trending up, nephrology consulted.",
    "Ambulating with assistance, tolerating diet, family at bedside, plan discharge to rehab.",
    "Chest film shows small bilateral effusions, no consolidation.",
]


def patient(i: int) -> Facts:
    """A representative readmission Facts object; values vary with `i`."""
    contribs = ranked(
        (
            feat,
            label,
            round(base * (1 + 0.07 * i), 1),
            unit,
            round((0.9 - 0.13 * rank) * (1 if (rank + i) % 3 else -1), 3),
        )
        for rank, (feat, label, unit, base) in enumerate(LABS, start=1)
    )
    notes = [
        NoteEvidence(
            id=f"N{k + 1}",
            note_id=100 * i + k,
            category="Nursing/other",
            chart_time=f"2150-01-0{k + 1} 08:00",
            text=text,
        )
        for k, text in enumerate(NOTES)
    ]
    return Facts(
        task="readmission",
        subject_id=i,
        hadm_id=1000 + i,
        model="hgb",
        model_version="bench",
        prediction=Prediction(
            risk=0.3 + 0.05 * i, band="high", base_value=-2.1, space="log-odds", model_output=-0.8
        ),
        contributions=contribs,
        notes=notes,
    )


@dataclass
class Call:
    path: str
    mode: str
    patient: int
    first_token_s: float
    total_s: float
    tokens: int

    @property
    def decode_tps(self) -> float:
        return (self.tokens - 1) / max(self.total_s - self.first_token_s, 1e-9)


def direct(eng, messages: list[dict[str, str]], max_tokens: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    first, tokens = None, 0
    with eng.lock:
        for chunk in eng.llm.create_chat_completion(
            messages=messages, temperature=0.0, max_tokens=max_tokens, seed=0, stream=True
        ):
            if chunk["choices"][0].get("delta", {}).get("content"):
                tokens += 1
                if first is None:
                    first = time.perf_counter() - started
    total = time.perf_counter() - started
    return (first or total), total, tokens


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="measured calls per path and mode")
    ap.add_argument("--out", type=Path, default=ROOT / ".safellm" / "bench" / "llm_bench.json")
    args = ap.parse_args(argv)
    apply_offline_switches()
    settings = Settings()
    prompt = load_prompt(settings.prompts_dir, "explain-risk")
    name, path = model_file(settings)
    t = time.perf_counter()
    eng = engine(path, settings.local_n_ctx, settings.local_threads)
    load_s = time.perf_counter() - t
    ours = get_model("local", settings)
    print(
        f"model {name} ({path.stat().st_size / 2**20:,.0f} MiB), loaded in {load_s:.1f} s; "
        f"max_tokens {args.max_tokens}, {args.repeats} calls per path and mode",
        flush=True,
    )

    def run(path_name: str, mode: str, i: int) -> Call:
        facts = patient(i)
        if mode == "cold":
            eng.reset()
        if path_name == "direct":
            req = prompt.request(**prompt_variables(facts, "Why is this patient at this risk?"))
            msgs = [m.model_dump() for m in req.messages]
            first, total, tokens = direct(eng, msgs, args.max_tokens)
        else:
            pieces: list[str] = []
            t0 = time.perf_counter()
            exp = explain(facts, ours, prompt, on_token=pieces.append, max_tokens=args.max_tokens)
            total = time.perf_counter() - t0
            first = exp.first_token_s or total
            tokens = len(pieces)
        call = Call(path_name, mode, i, first, total, tokens)
        print(
            f"  {mode:<4} {path_name:<6} patient {i}: first token {first:5.2f} s, "
            f"total {total:5.2f} s, {tokens} tokens, {call.decode_tps:5.1f} tok/s",
            flush=True,
        )
        return call

    calls: list[Call] = []
    k = 0
    for mode in ("cold", "warm"):
        print(f"[{mode}]", flush=True)
        if mode == "warm":
            run("direct", "warm", 99)  # primer: puts the fixed prefix in the cache (not counted)
        for r in range(args.repeats):
            order = ("direct", "ours") if r % 2 == 0 else ("ours", "direct")
            for p in order:
                calls.append(run(p, mode, k))
                k += 1

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    summary: dict[str, dict[str, float]] = {}
    print(f"\n{'mode':<5} {'path':<7} {'first token s':>14} {'total s':>8} {'decode tok/s':>13}")
    for mode in ("cold", "warm"):
        for p in ("direct", "ours"):
            cs = [c for c in calls if c.mode == mode and c.path == p]
            row = {
                "first_token_s": med([c.first_token_s for c in cs]),
                "total_s": med([c.total_s for c in cs]),
                "decode_tps": med([c.decode_tps for c in cs]),
                "tokens": med([float(c.tokens) for c in cs]),
            }
            summary[f"{mode}/{p}"] = row
            print(
                f"{mode:<5} {p:<7} {row['first_token_s']:>14.2f} {row['total_s']:>8.2f} "
                f"{row['decode_tps']:>13.1f}"
            )
    print()
    verdict: dict[str, dict[str, float | bool]] = {}
    for mode in ("cold", "warm"):
        d, o = summary[f"{mode}/direct"], summary[f"{mode}/ours"]
        tps = o["decode_tps"] / d["decode_tps"]
        # latency added per generated token's worth of work: compare totals per token
        added = (o["total_s"] / o["tokens"]) / (d["total_s"] / d["tokens"]) - 1
        ttft = o["first_token_s"] - d["first_token_s"]
        verdict[mode] = {
            "tps_ratio": tps,
            "added_latency": added,
            "added_first_token_s": ttft,
            "tps_met": tps >= 0.9,
            "latency_met": added < 0.10,
        }
        print(
            f"{mode}: our decode speed x{tps:.2f} of llama.cpp's (target >= 0.9: "
            f"{'MET' if tps >= 0.9 else 'MISSED'}); added latency {added:+.1%} per token "
            f"(target < 10 %: {'MET' if added < 0.10 else 'MISSED'}); first token "
            f"{ttft:+.2f} s"
        )
    saved = summary["cold/ours"]["first_token_s"] - summary["warm/ours"]["first_token_s"]
    print(f"prefix-cache reuse saves {saved:.2f} s of time to first token through our stack")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "model": name,
                "load_s": load_s,
                "calls": [asdict(c) for c in calls],
                "summary": summary,
                "verdict": verdict,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
