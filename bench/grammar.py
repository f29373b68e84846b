"""Grammar-constrained decoding: what the answer grammar costs per token, ours against llama.cpp's
own grammar sampler, side by side in one process on the same loaded model.

    .venv/bin/python bench/grammar.py [--patients 3] [--max-tokens 96]

For each of a few patients (the representative Facts of bench/llm.py), the explain-risk v2 prompt
and its answer grammar (safellm/llm/grammar.py) are decoded three ways, greedily, with the same
`max_tokens`, each after the same warm prefix:
- free:    llama-cpp-python without a grammar (the cost of decoding alone);
- sampler: llama-cpp-python with the grammar in its sampler chain (llama.cpp scans the whole
           vocabulary through the grammar at every token);
- ours:    `LlamaEngine.greedy` with the grammar (the argmax token is checked alone; the whole vocabulary only
           when the grammar rejects it).
Prints ms per token of each, the grammar's share of our decode time (target <= 5 %), the full scans
ours needed, and whether ours and the sampler produced the same text (they must).
"""

from __future__ import annotations

import statistics
import time

from common import parser
from llm import patient

from safellm.config import Settings, apply_offline_switches
from safellm.llm.grammar import answer_grammar
from safellm.llm.local import EngineSpec, engine, model_file
from safellm.llm.prompts import load_prompt
from safellm.rationale import prompt_variables


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    apply_offline_switches()
    settings = Settings()
    _, path = model_file(settings)
    eng = engine(EngineSpec.of(settings, path))
    prompt = load_prompt(settings.prompts_dir, "explain-risk", 2)
    from llama_cpp import LlamaGrammar

    rows: dict[str, list[float]] = {"free": [], "sampler": [], "ours": []}
    shares, scans, same = [], [], []
    for i in range(args.patients):
        facts = patient(i)
        msgs = [
            m.model_dump()
            for m in prompt.request(**prompt_variables(facts, "Why?", None, "abcd1234")).messages
        ]
        grammar = answer_grammar([c.id for c in facts.contributions], [n.id for n in facts.notes])
        eng.greedy(msgs, 1, grammar).__next__()  # warm: the prompt is cached for all three

        def timed(msgs: list[dict[str, str]] = msgs, **kw: object) -> tuple[str, float, int]:
            eng._prefill(msgs)  # the same cached state before each run
            t0 = time.perf_counter()
            out = eng.llm.create_completion(
                eng._chat_formatter()(messages=msgs).prompt,
                max_tokens=args.max_tokens,
                temperature=0.0,
                **kw,
            )
            dt = time.perf_counter() - t0
            return out["choices"][0]["text"], dt, out["usage"]["completion_tokens"]

        _, dt, n = timed()
        rows["free"].append(1000 * dt / max(n, 1))
        ref, dt, n = timed(grammar=LlamaGrammar.from_string(grammar, verbose=False))
        rows["sampler"].append(1000 * dt / max(n, 1))
        t0 = time.perf_counter()
        text = "".join(p for p, _ in eng.greedy(msgs, args.max_tokens, grammar))
        dt = time.perf_counter() - t0
        st = eng.last_stats
        rows["ours"].append(1000 * dt / max(st["tokens"], 1))
        shares.append(st["grammar_s"] / max(st["decode_s"], 1e-9))
        scans.append(st["full_scans"] / max(st["tokens"], 1))
        same.append(text.strip() == ref.strip())
        print(
            f"patient {i}: {st['tokens']} tokens, ours == sampler: {same[-1]}\n  {text.strip()[:200]}"
        )
    print(f"\nms/token (median of {args.patients}, {args.max_tokens} tokens max, warm prefix):")
    for k, v in rows.items():
        print(f"  {k:8s} {statistics.median(v):7.1f}")
    print(
        f"grammar share of our decode time: {100 * statistics.median(shares):.1f} % (target <= 5 %); "
        f"full scans: {100 * statistics.median(scans):.0f} % of tokens; "
        f"sampler overhead vs free: {100 * (statistics.median(rows['sampler']) / statistics.median(rows['free']) - 1):+.0f} %, "
        f"ours vs free: {100 * (statistics.median(rows['ours']) / statistics.median(rows['free']) - 1):+.0f} %; "
        f"same text as the sampler: {sum(same)}/{len(same)}"
    )


if __name__ == "__main__":
    main()
