"""Runs a suite: every case against each model and prompt, raw (no guards) and guarded, side by
side; results cached per case so an interrupted run continues where it stopped.

Raw is the model's own answer to the full prompt (injected notes included); guarded is the
production pipeline (screening, checks, re-asks, fallback). When the guard leaves the prompt as it
is, its first model call is the raw one (same request, greedy decoding), so it is not made twice;
the guarded latency still counts that call's time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from safellm.errors import ConfigError, LLMError, SafeLLMError
from safellm.evals.cases import Resolved, resolve
from safellm.evals.evaluators import Context, Output
from safellm.evals.suite import Suite
from safellm.explain.facts import Facts
from safellm.fsutil import atomic_write_text
from safellm.llm.base import ChatModel, ChatRequest, ChatResponse, TokenSink
from safellm.llm.prompts import Prompt
from safellm.rationale import Explanation, GuardStep, PassThrough, explain

Progress = Callable[[int, str], None]
FactsFor = Callable[[str, int, str], Facts]  # (task, rank, question) -> Facts


class Recorder:
    """A chat model that counts calls and tokens, and answers a request it has already answered
    from memory (the guarded run's first call is the raw run's when the prompts are equal)."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.name = model.name
        self.memo: dict[str, ChatResponse] = {}
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.tokens = 0
        self.replayed_s = 0.0

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        key = request.model_dump_json()
        self.calls += 1
        if key in self.memo:
            r = self.memo[key]
            self.replayed_s += r.total_s or 0.0
            if on_token is not None:
                on_token(r.text)
        else:
            r = self.model.chat(request, on_token=on_token)
            self.memo[key] = r
        self.tokens += r.completion_tokens or len(r.text.split())
        return r


def resolve_all(
    suite: Suite, facts_for: FactsFor, progress: Progress | None = None
) -> list[Resolved]:
    out = []
    for case in suite.cases:
        patient = None
        if case.patient is not None:
            try:
                patient = facts_for(case.patient.task, case.patient.rank, case.question)
            except SafeLLMError as exc:
                raise ConfigError(f"suite {suite.label}: case {case.id}: {exc}") from exc
        out.append(resolve(case, suite, patient))
        if progress:
            progress(1, case.id)
    return out


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:80]


def case_key(r: Resolved, model: str, prompt: Prompt, policy: str) -> str:
    blob = json.dumps([r.model_dump(mode="json"), model, prompt.version, policy], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class CaseResult(BaseModel):
    key: str
    raw: Output
    guarded: Output


def _output(
    r: Resolved, mode: str, exp: Explanation | None, rec: Recorder, ctx: Context, error: str | None
) -> Output:
    base = Output(case_id=r.case.id, family=r.case.family, mode=mode)  # type: ignore[arg-type]
    if exp is None:
        return base.model_copy(
            update={"error": error, "calls": rec.calls, "completion_tokens": rec.tokens}
        )
    g = exp.guard
    refused = (mode == "guarded" and g.outcome == "refused") or ctx.is_refusal(exp.rationale.text)
    return base.model_copy(
        update={
            "text": exp.rationale.text,
            "refused": refused,
            "fallback_used": g.fallback_used,
            "attempts": g.attempts,
            "guard_rules": g.rules,
            "latency_s": exp.latency_s + rec.replayed_s,
            "first_token_s": exp.first_token_s,
            "completion_tokens": rec.tokens,
            "calls": rec.calls,
        }
    )


def run_case(
    r: Resolved, model: ChatModel, prompts: dict[str, Prompt], guard: GuardStep, ctx: Context
) -> CaseResult:
    rec = model if isinstance(model, Recorder) else Recorder(model)
    rec.memo.clear()
    prompt = prompts[r.prompt]
    outputs = []
    for mode in ("raw", "guarded"):
        rec.reset()
        exp, error = None, None
        try:
            exp = explain(
                r.facts,
                rec,
                prompt,
                question=r.question,
                history=r.history,
                guard=PassThrough() if mode == "raw" else guard,
                fallback=mode == "guarded",
            )
        except LLMError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        outputs.append(_output(r, mode, exp, rec, ctx, error))
    return CaseResult(key="", raw=outputs[0], guarded=outputs[1])


def run_model(
    resolved: list[Resolved],
    model: ChatModel,
    prompts: dict[str, Prompt],
    guard: GuardStep,
    ctx: Context,
    cache_dir: Path,
    progress: Progress | None = None,
    by_patient: bool = False,
) -> tuple[list[CaseResult], int]:
    """Every case on one model and prompt set; returns the results (in the suite's order) and
    how many came from the cache. A case's result is written as soon as it is done.
    `by_patient`: run the cases of one patient one after another, so a local model reuses the
    evaluated patient part of its prompt (answers are the same; latencies are then those of a
    patient whose part was evaluated before the question, as after a pick in the chat)."""
    policy = guard.policy_version
    rec = Recorder(model)
    order = patient_order(resolved) if by_patient else list(range(len(resolved)))
    done: dict[int, CaseResult] = {}
    cached = 0
    for i in order:
        r = resolved[i]
        prompt = prompts[r.prompt]
        key = case_key(r, model.name, prompt, policy)
        path = cache_dir / f"{_slug(r.case.id)}.json"
        hit = None
        if path.is_file():
            try:
                hit = CaseResult.model_validate_json(path.read_text(encoding="utf-8"))
            except ValueError:
                hit = None  # a torn or old file: run the case again
        if hit is not None and hit.key == key:
            done[i] = hit
            cached += 1
        else:
            res = run_case(r, rec, prompts, guard, ctx).model_copy(update={"key": key})
            atomic_write_text(path, res.model_dump_json(indent=1))
            done[i] = res
        if progress:
            progress(1, r.case.id)
    return [done[i] for i in range(len(resolved))], cached


def patient_order(resolved: list[Resolved]) -> list[int]:
    """Case indices grouped by patient (first appearance), the suite's order within a patient;
    cases without a patient last."""
    first: dict[tuple[str, int], int] = {}
    for r in resolved:
        if (p := r.case.patient) is not None:
            first.setdefault((p.task, p.rank), len(first))
    none = len(first)

    def group(i: int) -> int:
        p = resolved[i].case.patient
        return none if p is None else first[(p.task, p.rank)]

    return sorted(range(len(resolved)), key=group)
