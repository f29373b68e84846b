"""LLM benchmark on the packaged local model, in one process (the `cold` part also starts a
fresh one).

    .venv/bin/python bench/llm.py [--part stack|speed|prefetch|cold|ceiling|transformers|all]
                                  [--patients 5]

- `stack`: one explanation through our stack (prompt → LiteLLM → custom provider → llama.cpp)
  against the same prompt sent straight to llama.cpp, on the same loaded model; cold (KV cache
  reset) and warm (the previous call was another patient's). Targets: our tokens/s >= 0.9x
  llama.cpp's, < 10 % added latency.
- `speed`: decode speed of our drafted greedy decoding (prompt lookup) against plain llama.cpp
  greedy decoding on the same prompts of `--patients` real patients, checking that both give the
  same text; and under the answer grammar, drafted against one token per pass. Target >= 1.3x.
- `prefetch`: the service's path (Facts of the highest-risk patients of `$SAFELLM_HOME`, the
  guard with its judge as configured): the patient is prefetched (as the chat does when a patient
  is picked, the API after /v1/predict), then a question is asked; prints the seconds from the
  question to the first guard-passed sentence and to the whole guarded answer, and the KV state
  size per patient. Targets: first sentence <= 2 s, whole answer p50 <= 8 s.
- `cold`: a fresh process (the prompt's fixed part restored from its state on disk, the patient
  not prefetched), one question per patient. Target: first sentence <= 5 s.
- `ceiling`: what this machine allows whatever the stack: llama.cpp's own prefill rate (the real
  prompt of the highest-risk patient evaluated from an empty KV cache in batches of 512 tokens)
  and greedy decode rate, with 1 thread and with all of them; and, from those rates, how many
  patient tokens the first two targets leave room for against how many the prompt has.
- `transformers` (not in `all`): the transformers backend against llama.cpp on the same model and
  prompts, greedy, free text and under the answer grammar: prefill seconds, decode tokens/s, how
  many characters of the two answers agree, and llguidance's cost per token as a share of decoding
  (target <= 5 %). The model is the packaged GGUF read into a Hugging Face folder once (the Q4_K_M
  weights dequantised, stored as bfloat16, run in float32 on the CPU), or `--hf-model DIR`.
Medians over patients; figures also written as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import ROOT, parser

from safellm.config import Settings, apply_offline_switches
from safellm.explain.facts import Facts, NoteEvidence, Prediction, ranked
from safellm.llm.local import EngineSpec, engine, model_file
from safellm.llm.prompts import load_prompt
from safellm.llm.registry import get_model
from safellm.rationale import build_request, explain, prompt_variables

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


def part_stack(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    """Our stack against llama.cpp straight, cold and warm (see the module docstring)."""
    prompt = load_prompt(settings.prompts_dir, "explain-risk", 1)  # free text: token by token
    name, path = model_file(settings)
    t = time.perf_counter()
    eng = engine(EngineSpec.of(settings, path))
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
    return {
        "model": name,
        "load_s": load_s,
        "calls": [asdict(c) for c in calls],
        "summary": summary,
        "verdict": verdict,
    }


# ------------------------------------------------------------------------------ new parts
QUESTION = "What drives this patient's risk the most?"


def real_patients(settings: Settings, n: int) -> tuple[Any, list[Facts]]:
    """The service of `settings` and the Facts (default question) of its `n` highest-risk
    readmission patients."""
    from safellm.services.explanation import ExplanationService

    service = ExplanationService(settings)
    rows = service.risks("readmission").head(n)
    return service, [service.facts_of("readmission", r) for _, r in rows.iterrows()]


def part_speed(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    """Drafted greedy decoding against plain llama.cpp greedy on the same prompts."""
    from llama_cpp import LlamaGrammar

    name, path = model_file(settings)
    eng = engine(EngineSpec.of(settings, path))
    _, patients = real_patients(settings, args.patients)
    free = load_prompt(settings.prompts_dir, "explain-risk", 1)  # free text: no grammar
    slots = load_prompt(settings.prompts_dir, "explain-risk", 2)
    rows: list[dict[str, float]] = []
    print(f"[speed] {len(patients)} patients, max_tokens {args.max_tokens}", flush=True)
    for facts in patients:
        row: dict[str, float] = {"hadm_id": float(facts.hadm_id)}
        # free text: llama.cpp's own greedy sampling, then ours, each from the same evaluated
        # prompt (llama.cpp evaluates its last token again, timed; ours its last piece, not timed)
        msgs = [m.model_dump() for m in build_request(facts, free).messages]
        text = eng._chat_formatter()(messages=msgs).prompt
        eng.reset()
        with eng.lock:
            eng._prefill(msgs)
        t = time.perf_counter()
        ref = eng.llm.create_completion(text, max_tokens=args.max_tokens, temperature=0.0)
        plain_s = time.perf_counter() - t
        plain_n = ref["usage"]["completion_tokens"]
        eng.reset()
        with eng.lock:
            eng._prefill(msgs)
        t0 = time.perf_counter()
        ours = "".join(p for p, _ in eng.greedy(msgs, args.max_tokens, None, args.draft_tokens))
        st = eng.last_stats
        ours_s = time.perf_counter() - t0 - st["prefill_s"]
        same = ours == ref["choices"][0]["text"]
        row.update(
            plain_tps=plain_n / plain_s,
            drafted_tps=st["tokens"] / ours_s,
            tokens=st["tokens"],
            same=float(same),
            kept=st["draft_kept"] / max(st["tokens"], 1),
        )
        # under the answer grammar: one token per pass (= llama.cpp's grammar sampler) vs drafted
        req = build_request(facts, slots)
        msgs = [m.model_dump() for m in req.messages]
        out = {}
        for k in (0, args.draft_tokens):
            eng.reset()
            out[k] = "".join(p for p, _ in eng.greedy(msgs, args.max_tokens, req.grammar, k))
            st = eng.last_stats
            row[f"grammar_k{k}_tps"] = st["tokens"] / max(st["decode_s"], 1e-9)
        row["grammar_same"] = float(out[0] == out[args.draft_tokens])
        if args.check_grammar_sampler:
            eng.reset()
            g = LlamaGrammar.from_string(req.grammar or "", verbose=False)
            p = eng._chat_formatter()(messages=msgs).prompt
            ref2 = eng.llm.create_completion(
                p, max_tokens=args.max_tokens, temperature=0.0, grammar=g
            )
            row["grammar_sampler_same"] = float(ref2["choices"][0]["text"] == out[0])
        rows.append(row)
        print(
            f"  hadm {facts.hadm_id}: free text llama.cpp {row['plain_tps']:5.1f} tok/s, drafted "
            f"{row['drafted_tps']:5.1f} tok/s ({row['kept']:.0%} of tokens from drafts), same "
            f"text: {bool(same)}; grammar one-per-pass {row['grammar_k0_tps']:5.1f} tok/s, "
            f"drafted {row[f'grammar_k{args.draft_tokens}_tps']:5.1f} tok/s, same: "
            f"{bool(row['grammar_same'])}",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "hadm_id"}
    ratio = med["drafted_tps"] / med["plain_tps"]
    gratio = med[f"grammar_k{args.draft_tokens}_tps"] / med["grammar_k0_tps"]
    all_same = all(r["same"] and r["grammar_same"] for r in rows)
    print(
        f"decode speed: drafted x{ratio:.2f} of plain llama.cpp (free text; target >= 1.3: "
        f"{'MET' if ratio >= 1.3 else 'MISSED'}); under the grammar x{gratio:.2f} of one token "
        f"per pass; identical text on every patient: {all_same}",
        flush=True,
    )
    return {
        "model": name,
        "rows": rows,
        "median": med,
        "ratio": ratio,
        "grammar_ratio": gratio,
        "identical": all_same,
    }


def ask(service: Any, facts: Facts, question: str, prompt: str) -> dict[str, float]:
    """One guarded answer through the service: seconds to the first guard-passed sentence and to
    the whole answer, and its outcome."""
    from safellm.services.explanation import Ask, Caller

    first: list[float] = []
    t0 = time.perf_counter()

    def token(text: str) -> None:
        if text.strip() and not first:
            first.append(time.perf_counter() - t0)

    exp = service.explain_facts(
        facts,
        caller=Caller("bench", "bench"),
        ask=Ask(question, model="local", prompt=prompt),
        on_token=token,
        fallback=True,
    )
    total = time.perf_counter() - t0
    return {
        "first_sentence_s": first[0] if first else total,
        "total_s": total,
        "own_words": float(exp.guard.outcome in ("passed", "repaired")),
    }


def warm_up(service: Any, facts: Facts) -> None:
    """Load everything a first question would (model, guard, embedder, judge), outside timing."""
    service.guard.review("{x}", facts)
    service.embedder.embed(["warm up"])
    engine(service.model("local").spec)
    if service.settings.guard_judge:
        from safellm.llm.local import LocalJudge

        LocalJudge(service.settings)


def part_prefetch(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    """Prefetch the patient, then ask (the chat's and the API's path)."""
    from safellm.services.explanation import Ask

    service, patients = real_patients(settings, args.patients)
    model = service.model("local")
    warm_up(service, patients[0])
    rows = []
    print(
        f"[prefetch] {len(patients)} patients; KV state memory {settings.local_kv_cache_mb} MiB",
        flush=True,
    )
    for facts in patients:
        eng = engine(model.spec)
        eng.reset(states=True)  # no earlier patient's state: this one is prefetched or nothing
        assert service.prefetch(facts, Ask(model="local", prompt=args.prompt))  # a chat pick
        t_pick = time.perf_counter()
        time.sleep(max(0.0, args.think_s - (time.perf_counter() - t_pick)))  # reading the chart
        row = {"hadm_id": facts.hadm_id, **ask(service, facts, QUESTION, args.prompt)}
        row["prompt_tokens"] = eng.last_stats.get("prompt_tokens", -1)
        row["prefetch_s"] = eng.prefetch_stats.get("prefill_s", float("nan"))
        row["state_mib"] = eng.prefetch_stats.get("state_bytes", 0) / 2**20
        row["evaluated_after_question"] = eng.last_stats.get("evaluated_tokens", -1)
        rows.append(row)
        print(
            f"  hadm {facts.hadm_id}: {row['prompt_tokens']} prompt tokens; prefetch "
            f"{row['prefetch_s']:.1f} s (state "
            f"{row['state_mib']:.1f} MiB); asked: first guarded sentence "
            f"{row['first_sentence_s']:.2f} s, whole answer {row['total_s']:.2f} s",
            flush=True,
        )
    eng = engine(model.spec)
    med = {k: statistics.median(float(r[k]) for r in rows) for k in rows[0] if k != "hadm_id"}
    print(
        f"prefetched: first guarded sentence p50 {med['first_sentence_s']:.2f} s (target <= 2: "
        f"{'MET' if med['first_sentence_s'] <= 2 else 'MISSED'}); whole guarded answer p50 "
        f"{med['total_s']:.2f} s (target <= 8: {'MET' if med['total_s'] <= 8 else 'MISSED'}); "
        f"KV state {med['state_mib']:.1f} MiB per patient, {eng.states.size / 2**20:.0f} MiB "
        f"held of {settings.local_kv_cache_mb} MiB",
        flush=True,
    )
    return {"rows": rows, "median": med}


def part_cold(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    """A fresh process per run: start-up, then one question on a patient not prefetched."""
    import subprocess
    import sys

    rows = []
    print(f"[cold] a fresh process per patient ({args.patients})", flush=True)
    for i in range(args.patients):
        t = time.perf_counter()
        out = subprocess.run(
            [
                *(sys.executable, __file__, "--cold-child", str(i)),
                *("--patients", str(args.patients), "--prompt", args.prompt),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - t
        rows.append(row)
        print(
            f"  hadm {row['hadm_id']}: start-up {row['startup_s']:.1f} s, prefix restored "
            f"{row['restored_tokens']} of {row['prompt_tokens']} tokens; first guarded sentence {row['first_sentence_s']:.2f}"
            f" s, whole answer {row['total_s']:.2f} s",
            flush=True,
        )
    med = {k: statistics.median(float(r[k]) for r in rows) for k in rows[0] if k != "hadm_id"}
    print(
        f"cold start: first guarded sentence p50 {med['first_sentence_s']:.2f} s (target <= 5: "
        f"{'MET' if med['first_sentence_s'] <= 5 else 'MISSED'}); start-up p50 "
        f"{med['startup_s']:.1f} s",
        flush=True,
    )
    return {"rows": rows, "median": med}


def cold_child(args: argparse.Namespace, settings: Settings) -> int:
    t = time.perf_counter()
    service, patients = real_patients(settings, args.patients)
    facts = patients[args.cold_child]
    model = service.model("local")
    warm_up(service, facts)
    eng = engine(model.spec)
    startup = time.perf_counter() - t
    row = {"hadm_id": facts.hadm_id, "startup_s": startup}
    row |= ask(service, facts, QUESTION, args.prompt)
    row["restored_tokens"] = eng.last_stats.get("restored_tokens", 0)
    row["prompt_tokens"] = eng.last_stats.get("prompt_tokens", -1)
    print(json.dumps(row))
    return 0


def part_ceiling(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    """llama.cpp's prefill and decode rates here, and the prompt size the targets allow."""
    import os

    from llama_cpp import Llama

    from safellm.services.evaluation import parse_prompt

    name, path = model_file(settings)
    _, (facts, *_) = real_patients(settings, 1)
    prompt = load_prompt(settings.prompts_dir, *parse_prompt(args.prompt))
    eng = engine(EngineSpec.of(settings, path))
    msgs = [m.model_dump() for m in build_request(facts, prompt).messages]
    tokens = eng.tokens(msgs)
    fixed = eng._fixed_length(msgs, tokens)
    question = len(tokens) - eng._piece_starts(tokens, fixed)[-2]  # its paragraph, to the end
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        llm = Llama(
            model_path=str(path),
            n_ctx=settings.local_n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=512,
            verbose=False,
        )
        pre, dec = [], []
        for _ in range(args.repeats):
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            t = time.perf_counter()
            llm.eval(tokens)
            pre.append(len(tokens) / (time.perf_counter() - t))
            n, t = 0, time.perf_counter()
            # the prompt is in the cache: llama.cpp evaluates its last token again, then decodes
            for _tok in llm.generate(tokens, temp=0.0):
                n += 1
                if n == 32:
                    break
            dec.append(n / (time.perf_counter() - t))
        row = {
            "threads": threads,
            "prefill_tps": statistics.median(pre),
            "decode_tps": statistics.median(dec),
        }
        rows.append(row)
        print(
            f"[ceiling] {name}, {threads} thread(s): prefill {row['prefill_tps']:.1f} tokens/s, "
            f"decode {row['decode_tps']:.1f} tokens/s",
            flush=True,
        )
        del llm
    best = max(rows, key=lambda r: r["prefill_tps"])
    pf, dc = best["prefill_tps"], best["decode_tps"]
    patient = len(tokens) - fixed - question
    sentence = 16  # tokens of a first slot sentence ("{F1} {F1.dir} the risk the most [F1].")
    first_s = question / pf + sentence / dc
    room_prefetch = pf * args.think_s
    room_cold = max(0.0, pf * (5.0 - sentence / dc))
    print(
        f"prompt {prompt.version} for hadm {facts.hadm_id}: {len(tokens)} tokens = {fixed} fixed "
        f"(restored from disk) + {patient} patient + {question} question\n"
        f"patient part: {patient / pf:.1f} s to evaluate at {pf:.1f} tokens/s; a first sentence "
        f"of {sentence} tokens: {sentence / dc:.1f} s at {dc:.1f} tokens/s\n"
        f"picked {args.think_s:.0f} s before the question: room for {room_prefetch:.0f} patient "
        f"tokens (has {patient}); then first sentence in {first_s:.2f} s (target <= 2)\n"
        f"cold (<= 5 s to the first sentence): room for {room_cold:.0f} patient + question "
        f"tokens (has {patient + question})",
        flush=True,
    )
    return {
        "rows": rows,
        "prompt_tokens": len(tokens),
        "fixed_tokens": fixed,
        "patient_tokens": patient,
        "question_tokens": question,
        "room_prefetch_tokens": room_prefetch,
        "room_cold_tokens": room_cold,
    }


def hf_folder(settings: Settings, out: Path) -> tuple[Path, float]:
    """A Hugging Face folder of the local model: the GGUF dequantised by transformers (needs the
    `gguf` package; the weights are the Q4_K_M ones, stored as bfloat16), made once into `out`.
    Returns the folder and the seconds it took (0 when it was there)."""
    if (out / "config.json").is_file():
        return out, 0.0
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, path = model_file(settings.model_copy(update={"local_backend": "llama.cpp"}))
    t = time.perf_counter()
    print(f"[transformers] converting {path.name} to a Hugging Face folder (once) ...", flush=True)
    tmp = out.with_name(out.name + ".tmp")
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    read = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    # transformers marks a model read from a GGUF as not serialisable: its dequantised weights
    # go into a plain model of the same config
    config = read.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(read.state_dict())
    model.generation_config = read.generation_config
    del read
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(out)
    return out, time.perf_counter() - t


def part_transformers(args: argparse.Namespace, settings: Settings) -> dict[str, object]:
    """The transformers backend against llama.cpp on the same model and prompts (greedy, free
    text and under the answer grammar): prefill seconds, decode tokens/s, and the grammar's
    cost per token (llguidance) as a share of decoding."""
    from safellm.llm.grammar import answer_grammar

    folder, convert_s = (
        (Path(args.hf_model), 0.0)
        if args.hf_model
        else hf_folder(settings, ROOT / ".safellm" / "bench" / f"hf-{settings.local_model}")
    )
    _, gguf = model_file(settings.model_copy(update={"local_backend": "llama.cpp"}))
    llama = engine(EngineSpec.of(settings, gguf))
    t = time.perf_counter()
    hf: Any = engine(
        EngineSpec.of(settings.model_copy(update={"local_backend": "transformers"}), folder)
    )
    load_s = time.perf_counter() - t
    print(
        f"[transformers] {folder} on {hf.device} (loaded in {load_s:.1f} s; conversion "
        f"{convert_s:.0f} s), {args.patients} prompts, max_tokens {args.max_tokens}",
        flush=True,
    )
    free = load_prompt(settings.prompts_dir, "explain-risk", 1)
    slots = load_prompt(settings.prompts_dir, "explain-risk")
    rows: list[dict[str, float]] = []
    for i in range(args.patients):
        facts = patient(i)
        row: dict[str, float] = {}
        for kind, prompt in (("free", free), ("grammar", slots)):
            req = build_request(facts, prompt)
            msgs = [m.model_dump() for m in req.messages]
            grammar = (
                answer_grammar([c.id for c in facts.contributions], [n.id for n in facts.notes])
                if kind == "grammar"
                else None
            )
            texts = {}
            for name, eng in (("llama", llama), ("hf", hf)):
                eng.reset(states=True)
                texts[name] = "".join(p for p, _ in eng.greedy(msgs, args.max_tokens, grammar))
                st = eng.last_stats
                row[f"{kind}_{name}_prefill_s"] = st["prefill_s"]
                row[f"{kind}_{name}_tps"] = st["tokens"] / max(st["decode_s"], 1e-9)
                if kind == "grammar":
                    row[f"{name}_grammar_share"] = st["grammar_s"] / max(st["decode_s"], 1e-9)
            a, b = texts["llama"], texts["hf"]
            same = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            row[f"{kind}_same_chars"] = float(min(len(a), len(b)) if same is None else same)
        rows.append(row)
        print(
            f"  prompt {i}: free text llama.cpp {row['free_llama_tps']:5.1f} tok/s, transformers "
            f"{row['free_hf_tps']:5.1f} tok/s (prefill {row['free_llama_prefill_s']:.1f} s / "
            f"{row['free_hf_prefill_s']:.1f} s; same first {row['free_same_chars']:.0f} chars); "
            f"grammar: transformers {row['grammar_hf_tps']:5.1f} tok/s, llguidance "
            f"{row['hf_grammar_share']:.1%} of decoding",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"medians: decode llama.cpp {med['free_llama_tps']:.1f} tok/s vs transformers "
        f"{med['free_hf_tps']:.1f} tok/s (x{med['free_hf_tps'] / med['free_llama_tps']:.2f}); "
        f"prefill {med['free_llama_prefill_s']:.1f} s vs {med['free_hf_prefill_s']:.1f} s; "
        f"grammar cost per token: transformers (llguidance) {med['hf_grammar_share']:.1%}, "
        f"llama.cpp {med['llama_grammar_share']:.1%} of decoding (target <= 5 %: "
        f"{'MET' if med['hf_grammar_share'] <= 0.05 else 'MISSED'})",
        flush=True,
    )
    return {
        "folder": str(folder),
        "device": hf.device,
        "convert_s": convert_s,
        "rows": rows,
        "median": med,
    }


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument(
        "--part",
        choices=["stack", "speed", "prefetch", "cold", "ceiling", "transformers", "all"],
        default="all",
    )
    ap.add_argument(
        "--hf-model",
        help="transformers: a Hugging Face model folder [the packaged GGUF, converted once]",
    )
    ap.add_argument("--patients", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="stack: calls per path and mode")
    ap.add_argument("--draft-tokens", type=int, default=8, help="speed: drafted tokens per pass")
    ap.add_argument("--think-s", type=float, default=5.0, help="prefetch: wait before asking")
    ap.add_argument(
        "--check-grammar-sampler",
        action="store_true",
        help="speed: also compare with llama.cpp's own grammar sampler (slow)",
    )
    ap.add_argument(
        "--prompt",
        default="explain-risk",
        help="prefetch, cold: the prompt (NAME or NAME:VERSION; default the highest version)",
    )
    ap.add_argument("--cold-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / ".safellm" / "bench" / "llm_bench.json")
    args = ap.parse_args(argv)
    apply_offline_switches()
    settings = Settings()
    if args.cold_child is not None:
        return cold_child(args, settings)
    parts = ["stack", "speed", "prefetch", "cold", "ceiling"] if args.part == "all" else [args.part]
    done = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for part in parts:
        done[part] = globals()[f"part_{part}"](args, settings)
        print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(done, indent=2, default=str) + "\n")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
