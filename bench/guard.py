"""Guard benchmark: the deterministic part of the guard per rationale (PHI, dosing and the claim
checker against the Facts; screening of the question and notes), on realistic rationales.

    .venv/bin/python bench/guard.py [--n 2000]

Rationales: the grounded fallback and a five-sentence model-style answer (numbers, directions, a rank
claim, a note citation), for Facts of varied size. Note grounding by embeddings or the judge is not
part of this figure (it is a model call). Target: under 20 ms per rationale (median and p95 printed).
"""

from __future__ import annotations

import json
import statistics

from common import ROOT, parser, timed
from llm import patient  # the same representative Facts as bench/llm.py

from safellm.guard.fallback import fallback_answer
from safellm.guard.guard import ClinicalGuard
from safellm.guard.policy import load_policy

TARGET_MS = 20.0


def model_style(facts) -> str:  # type: ignore[no-untyped-def]
    c = facts.contributions
    return (
        f"The predicted risk is {facts.prediction.risk:.0%}. The largest contribution is "
        f"{c[0].label.lower()} of {c[0].value} {c[0].unit}, which {c[0].direction} the risk [{c[0].id}]. "
        f"{c[1].label} of {c[1].value} {c[1].unit} {c[1].direction} the risk [{c[1].id}], while "
        f"{c[2].label.lower()} {c[2].direction} it [{c[2].id}]. The nurses noted poor urine output "
        f"overnight [N1]. {c[3].label} ({c[3].value} {c[3].unit}) also {c[3].direction} it [{c[3].id}]."
    )


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=2000, help="rationales per kind")
    args = ap.parse_args(argv)
    guard = ClinicalGuard(load_policy())  # no note support: the deterministic part only
    facts = [patient(i) for i in range(50)]
    results: dict[str, dict[str, float]] = {}
    for kind, make in (
        ("fallback", lambda f: fallback_answer(f).text),
        ("model-style", model_style),
    ):
        texts = [(f, make(f)) for f in facts]
        for f, t in texts[:20]:  # warm up (regex caches)
            guard.review(t, f)
        ms = timed(lambda pair: guard.review(pair[1], pair[0]), texts, args.n)
        q = statistics.quantiles(ms, n=20)
        results[kind] = {
            "median_ms": statistics.median(ms),
            "p95_ms": q[18],
            "chars": statistics.mean(len(t) for _, t in texts),
        }
    question = "Why is this patient at high risk of readmission?"
    ms = timed(lambda f: guard.screen(question, f), facts, args.n)
    results["screen (question + 3 note chunks)"] = {
        "median_ms": statistics.median(ms),
        "p95_ms": statistics.quantiles(ms, n=20)[18],
        "chars": 0,
    }
    print(f"{'what':<36} {'median ms':>10} {'p95 ms':>8}")
    for kind, r in results.items():
        print(f"{kind:<36} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f}")
    worst = max(r["p95_ms"] for k, r in results.items() if not k.startswith("screen"))
    total = worst + results["screen (question + 3 note chunks)"]["p95_ms"]
    print(
        f"\nscreen + review, p95: {total:.2f} ms per rationale; target < {TARGET_MS:.0f} ms: "
        f"{'MET' if total < TARGET_MS else 'MISSED'}"
    )
    out = ROOT / ".safellm" / "bench" / "guard_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
