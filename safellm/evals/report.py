"""Scores → metrics per model, prompt and mode → gates → the report (JSON shape)."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field

from safellm.evals.cases import Resolved
from safellm.evals.evaluators import Evaluator, Output, combine
from safellm.evals.mutations import MutationReport
from safellm.evals.runner import CaseResult
from safellm.evals.suite import Gate, Suite

MODES = ("raw", "guarded")


class CaseRecord(BaseModel):
    id: str
    family: str
    style: str | None = None
    question: str = ""
    mode: str
    text: str
    refused: bool
    fallback_used: bool
    error: str | None
    latency_s: float
    failed: dict[str, str] = Field(description="metric -> why, for the checks this output failed")


class RunSummary(BaseModel):
    model: str
    prompt: str
    followup_prompt: str | None = Field(
        default=None, description="The prompt of the cases with chat history (follow-ups)."
    )
    notes: list[str] = Field(
        default_factory=list, description="What a reader of this run should know (a fallback)."
    )
    cases: int
    cached: int
    metrics: dict[str, dict[str, float | None]] = Field(description="mode -> metric -> value")
    by_family: dict[str, dict[str, dict[str, float | None]]] = Field(
        description="family -> mode -> metric -> value"
    )
    by_style: dict[str, dict[str, dict[str, float | None]]] = Field(
        default_factory=dict,
        description="style -> mode -> metric -> value (metrics declared by_style; cases with a "
        "style)",
    )
    records: list[CaseRecord]

    @property
    def label(self) -> str:
        """`model · prompt`, as gate results name the run."""
        return f"{self.model} · {self.prompt}"


class GateResult(BaseModel):
    metric: str
    mode: str
    target: str
    run: str
    value: float | None
    passed: bool


class EvalReport(BaseModel):
    suite: str
    suite_digest: str
    created: str
    policy: str
    cases: int
    families: dict[str, int]
    runs: list[RunSummary]
    mutation: MutationReport
    detection_rate: float | None = Field(description="Of the guard mutation test.")
    false_flag_rate: float | None = Field(description="Of the guard mutation test.")
    calibration: dict[str, object] | None = None
    descriptions: dict[str, str]
    gates: list[GateResult]
    passed: bool


def summarize(
    model: str,
    prompt: str,
    resolved: list[Resolved],
    results: list[CaseResult],
    evaluators: list[Evaluator],
    cached: int,
    *,
    followup_prompt: str | None = None,
    notes: list[str] | None = None,
) -> RunSummary:
    metrics: dict[str, dict[str, float | None]] = {}
    fam: dict[str, dict[str, dict[str, float | None]]] = {}
    sty: dict[str, dict[str, dict[str, float | None]]] = {}
    records = []
    families = sorted({r.case.family for r in resolved})
    styles = sorted({r.case.style for r in resolved if r.case.style})
    for mode in MODES:
        outs: list[tuple[Resolved, Output]] = [
            (r, getattr(res, mode)) for r, res in zip(resolved, results, strict=True)
        ]
        scored = {ev.name: [(r, o, ev.evaluate(r, o)) for r, o in outs] for ev in evaluators}
        metrics[mode] = {
            ev.name: combine([s for *_, s in scored[ev.name] if s is not None], ev.aggregate)
            for ev in evaluators
        }
        for f in families:
            fam.setdefault(f, {})[mode] = {
                ev.name: combine(
                    [s for r, _, s in scored[ev.name] if s is not None and r.case.family == f],
                    ev.aggregate,
                )
                for ev in evaluators
                if ev.metric.by_family
            }
        for st in styles:
            sty.setdefault(st, {})[mode] = {
                ev.name: combine(
                    [s for r, _, s in scored[ev.name] if s is not None and r.case.style == st],
                    ev.aggregate,
                )
                for ev in evaluators
                if ev.metric.by_style
            }
        for i, (r, o) in enumerate(outs):
            failed = {}
            for ev in evaluators:
                s = scored[ev.name][i][2]
                if s is not None and ev.metric.fails(s.value):
                    failed[ev.name] = s.detail or "failed"
            records.append(
                CaseRecord(
                    id=r.case.id,
                    family=r.case.family,
                    style=r.case.style,
                    question=r.question,
                    mode=mode,
                    text=o.text,
                    refused=o.refused,
                    fallback_used=o.fallback_used,
                    error=o.error,
                    latency_s=o.latency_s,
                    failed=failed,
                )
            )
    return RunSummary(
        model=model,
        prompt=prompt,
        followup_prompt=followup_prompt,
        notes=list(notes or []),
        cases=len(resolved),
        cached=cached,
        metrics=metrics,
        by_family=fam,
        by_style=sty,
        records=records,
    )


def check_gates(
    gates: list[Gate], runs: list[RunSummary], mutation: MutationReport
) -> list[GateResult]:
    out = []
    for g in gates:
        if g.mode == "mutation":
            value = getattr(mutation, g.metric, None)
            out.append(
                GateResult(
                    metric=g.metric,
                    mode=g.mode,
                    target=g.target,
                    run="guard",
                    value=value,
                    passed=g.passes(value),
                )
            )
            continue
        for run in runs:
            value = run.metrics[g.mode].get(g.metric)
            out.append(
                GateResult(
                    metric=g.metric,
                    mode=g.mode,
                    target=g.target,
                    run=run.label,
                    value=value,
                    passed=g.passes(value),
                )
            )
    return out


def family_counts(suite: Suite) -> dict[str, int]:
    return dict(sorted(Counter(c.family for c in suite.cases).items()))
