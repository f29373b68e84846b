"""Evaluation, the use case behind `safellm eval`: load the suite, make its cases concrete on the
built data and models, run each model and prompt raw and guarded, run the guard mutation test,
score, check the gates, write the reports and log to MLflow."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safellm.config import Settings
from safellm.errors import ConfigError, UnknownPatientError
from safellm.evals import render
from safellm.evals.cases import Resolved
from safellm.evals.evaluators import METRICS, MUTATION_METRICS, RUN_METRICS, Context, evaluators
from safellm.evals.mutations import KINDS, MutationReport, mutation_test
from safellm.evals.report import EvalReport, check_gates, family_counts, summarize
from safellm.evals.runner import _slug, resolve_all, run_model
from safellm.evals.suite import Suite, load_suite
from safellm.explain.facts import Facts
from safellm.fsutil import atomic_write_text
from safellm.guard.checker import Checker
from safellm.guard.policy import Policy
from safellm.llm.local import prepare_local_model
from safellm.llm.prompts import Prompt, available, load_prompt
from safellm.progress import Stage, quiet
from safellm.rationale import explain
from safellm.services.calibration import calibrate_grounding
from safellm.services.explanation import ExplanationService

DEFAULT_SUITE = "default.v1.yaml"  # in `settings.evals_dir`


ORDER_NOTE = (
    "cases ran grouped by patient: most questions came after their patient's part of the prompt "
    "was evaluated (as after a pick in the chat), so latencies are those of a prefetched patient"
)


def parse_prompt(spec: str) -> tuple[str, int | None]:
    """`explain-risk` or `explain-risk:1`."""
    name, _, version = spec.partition(":")
    if version and not version.isdigit():
        raise ConfigError(f"prompt {spec!r}: write NAME or NAME:VERSION (e.g. explain-risk:1)")
    return name, int(version) if version else None


def followup_for(prompts_dir: Path, main: Prompt, name: str) -> tuple[Prompt, str | None]:
    """The follow-up (chat) prompt `name` that goes with `main`: the same version (explain-risk v1
    with chat v1, v2 with v2); when `name` has no such version, its highest, and a note that says
    so for the report."""
    versions = available(prompts_dir).get(name, [])
    v = main.spec.version
    if v in versions:
        return load_prompt(prompts_dir, name, v), None
    chosen = load_prompt(prompts_dir, name)  # the highest (or a clear error: no such prompt)
    note = (
        f"{name} has no version {v} (versions: {', '.join(map(str, versions))}): the follow-up "
        f"cases of {main.version} were asked with {chosen.version}"
    )
    return chosen, note


def facts_source(service: ExplanationService) -> Callable[[str, int, str], Facts]:
    def facts_for(task: str, rank: int, question: str) -> Facts:
        risks = service.risks(task)
        if rank > len(risks):
            raise UnknownPatientError(
                f"rank {rank} asked, but the {task} cohort has {len(risks)} units"
            )
        return service.facts_of(task, risks.iloc[rank - 1], question)

    return facts_for


def with_thresholds(policy: Policy, sim: float, judge: float | None) -> Policy:
    rules = [
        r.model_copy(update={"similarity_threshold": sim, "judge_threshold": judge})
        if r.id == "note.unsupported"
        else r
        for r in policy.rules
    ]
    return Policy.model_validate({**policy.model_dump(), "rules": [r.model_dump() for r in rules]})


def calibration(
    suite_path: Path, suite: Suite, service: ExplanationService, out_dir: Path, stage: Stage
) -> dict[str, Any] | None:
    """Note-grounding thresholds tuned on the suite's labelled set (cached in `out_dir`)."""
    if not suite.grounding_set:
        return None
    path = suite_path.parent / suite.grounding_set
    judge_on = service.settings.guard_judge
    digest = hashlib.sha256(path.read_bytes() + str(judge_on).encode()).hexdigest()[:16]
    cached = out_dir / "calibration.json"
    if cached.is_file():
        known = json.loads(cached.read_text(encoding="utf-8"))
        if known.get("digest") == digest:
            return dict(known)
    result = calibrate_grounding(
        service.settings, path, judge=judge_on, embedder=service.embedder, stage=stage
    )
    found = {"digest": digest, **result.model_dump()}
    atomic_write_text(cached, json.dumps(found, indent=1))
    return found


def mutation_bases(resolved: list[Resolved], prompts: list[Prompt]) -> list[tuple[str, Facts]]:
    """Correct rationales for each case's Facts (each Facts once; cases whose right answer is a
    refusal, and cases with planted notes, excluded): the grounded fallback and, for each prompt, the fake model's answer as the
    unguarded pipeline shows it (a slot-based answer rendered), each different text once."""
    from safellm.guard.fallback import fallback_answer
    from safellm.llm.fake import FakeChatModel

    fake = FakeChatModel()
    seen: set[str] = set()
    out = []
    for r in resolved:
        if r.case.expect.refuse or r.case.add_notes or not r.facts.contributions:
            continue  # planted notes (injections, identifiers) make no correct rationale
        key = r.facts.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        texts = [fallback_answer(r.facts).text]
        for p in prompts:
            text = explain(r.facts, fake, p, question=r.question).rationale.text
            if text not in texts:
                texts.append(text)
        out += [(text, r.facts) for text in texts]
    return out


def run_eval(
    settings: Settings,
    *,
    suite_path: Path | None = None,
    models: list[str] | None = None,
    prompts: list[str] | None = None,
    out_dir: Path | None = None,
    service: ExplanationService | None = None,
    stage: Stage = quiet,
    limit: int | None = None,
    mlflow: bool = True,
    fresh: bool = False,
    by_patient: bool = False,
) -> tuple[EvalReport, dict[str, Path]]:
    """Run the suite at `suite_path` [the default suite of `settings.evals_dir`], reports in
    `out_dir` [`$SAFELLM_HOME/eval/SUITE`]; `fresh`: forget the cached case results first;
    `by_patient`: run one patient's cases one after another (see `run_model`)."""
    suite_path = suite_path or settings.evals_dir / DEFAULT_SUITE
    out_dir = out_dir or settings.home / "eval" / suite_path.name.removesuffix(".yaml")
    if fresh and (out_dir / "cases").is_dir():
        shutil.rmtree(out_dir / "cases")
    suite = load_suite(suite_path, set(RUN_METRICS) | set(MUTATION_METRICS))
    if limit is not None:
        suite = suite.model_copy(update={"cases": suite.cases[:limit]})
    service = service or ExplanationService(settings)
    needed = sorted({c.patient.task for c in suite.cases if c.patient is not None})
    missing = [t for t in needed if t not in service.available_tasks()]
    if missing:
        raise ConfigError(
            f"suite {suite.label} needs built data and a trained model for {', '.join(missing)} "
            f"under {settings.home}: run `safellm demo` then `safellm train` (or set SAFELLM_HOME)"
        )
    names = models or [settings.llm_model]
    if "local" in names or settings.guard_judge:
        prepare_local_model(settings, stage)
    chat_models = {name: service.model(name) for name in names}  # unknown names fail here
    variants = prompts or [suite.prompt]
    loaded: dict[str, Prompt] = {}
    for spec in variants:
        name, version = parse_prompt(spec)
        loaded[spec] = load_prompt(settings.prompts_dir, name, version)
    needs_followup = any(c.history for c in suite.cases)
    followups: dict[str, tuple[Prompt, str | None]] = {
        spec: followup_for(settings.prompts_dir, prompt, suite.followup_prompt)
        for spec, prompt in loaded.items()
        if needs_followup
    }

    resolved = resolve_all(suite, facts_source(service), stage("Preparing cases", len(suite.cases)))
    guard = service.guard
    policy: Policy = guard.policy
    calib = calibration(suite_path, suite, service, out_dir, stage)
    # the claim evaluators know the guard's concepts (the MIMIC vocabularies where built), so
    # `unsupported_concepts` counts what the guard's lexicon would; not its meaning check (the
    # embedder), which would send every answer's notes to the judge as well
    concepts = guard.checker.concepts
    note_checker = None
    if calib is not None:
        note_checker = Checker(
            with_thresholds(policy, calib["similarity_threshold"], calib["judge_threshold"]),
            guard.checker.note_support,
            concepts,
        )
    ctx = Context(
        Checker(policy, concepts=concepts), note_checker, suite.refusal_markers, suite.max_words
    )
    evs = evaluators(ctx)

    runs = []
    for name, model in chat_models.items():
        for spec, prompt in loaded.items():
            label = f"{name} · {prompt.version}"
            advance = stage(f"Running {label}", len(resolved))
            followup, note = followups.get(spec, (None, None))
            prompts_of = {suite.prompt: prompt}
            if followup is not None:
                prompts_of[suite.followup_prompt] = followup
            results, cached = run_model(
                resolved,
                model,
                prompts_of,
                guard,
                ctx,
                out_dir / "cases" / _slug(name) / _slug(prompt.version),
                advance,
                by_patient=by_patient,
            )
            runs.append(
                summarize(
                    name,
                    prompt.version,
                    resolved,
                    results,
                    evs,
                    cached,
                    followup_prompt=followup.version if followup is not None else None,
                    notes=[n for n in (note, ORDER_NOTE if by_patient else None) if n],
                )
            )

    bases = mutation_bases(resolved, list(loaded.values()))
    advance = stage("Guard mutation test", len(bases) * (1 + len(KINDS)))

    def flags(text: str, facts: Facts) -> list[str]:
        r = guard.review(text, facts)
        return sorted({v.rule for v in r.blocking + r.fixed})

    mutation: MutationReport = mutation_test(bases, flags, lambda n: advance(n, ""))
    gates = check_gates(suite.gates, runs, mutation)
    descriptions = {m.name: m.description for m in METRICS.values()}
    report = EvalReport(
        suite=suite.label,
        suite_digest=suite.digest(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        policy=policy.label,
        cases=len(resolved),
        families=family_counts(suite),
        runs=runs,
        mutation=mutation,
        detection_rate=mutation.detection_rate,
        false_flag_rate=mutation.false_flag_rate,
        calibration=calib,
        descriptions=descriptions,
        gates=gates,
        passed=all(g.passed for g in gates),
    )
    paths = render.write(report, out_dir)
    if mlflow:
        from safellm.evals.tracking import log_eval

        log_eval(settings.home, report, paths)
    return report, paths
