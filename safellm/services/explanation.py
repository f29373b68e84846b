"""Explanation, the use case behind `safellm explain`, `safellm demo`, the REST API and the chat:
predict → Facts → note evidence → rationale → guard → audit, for one patient.

`ExplanationService` loads data, model bundles, notes, prompts, the guard and LLMs once each and
runs the pure pipeline of `safellm.rationale`. Every explanation it serves, from any front end, is
appended to the audit trail here and nowhere else; `stream` is the one streaming helper of the
API and the chat (the explanation runs on a worker thread, its tokens come out as events).

Several users share one model: every explanation's model work goes through the service's
`FairQueue` (first come, first served; at most `SAFELLM_QUEUE_MAX_WAITING` wait, beyond that
`QueueFullError`), and `stream` tells its caller how many questions are ahead. `prefetch` hands a
model that can prefill (`safellm.llm.base.Prefetching`) a patient's prompt in the background while
the queue is idle, so the question that follows is answered sooner (`SAFELLM_PREFETCH`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from safellm.audit import AuditRecord, AuditTrail, now, sha256
from safellm.cancel import CancelToken, cancelling
from safellm.config import Settings
from safellm.data import notes as notes_io
from safellm.errors import Cancelled, SafeLLMError, UnknownPatientError, UserInputError
from safellm.explain.facts import Facts
from safellm.llm.base import ChatModel, ChatRequest, ChatResponse, Prefetching, TokenSink
from safellm.llm.prompts import Prompt, load_prompt, parse_ref
from safellm.llm.registry import get_model
from safellm.llm.retrieval import (
    Embedder,
    EmbeddingSupport,
    MiniLMEmbedder,
    query_for,
    retrieve,
)
from safellm.queueing import FairQueue, Place, background
from safellm.rationale import DEFAULT_QUESTION, Explanation, build_request, explain
from safellm.stores import open_trail
from safellm.tasks import TASKS, task_spec

if TYPE_CHECKING:  # scikit-learn, shap, guardrails: loaded when first needed
    from safellm.explain.loader import Explainer
    from safellm.guard.guard import ClinicalGuard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who asked, as the audit trail records it: a key id (never the key) and the route."""

    key_id: str
    route: str
    request_id: str | None = None  # the front end's id of the request (X-Request-ID)


@dataclass(frozen=True)
class Ask:
    """What is asked (None: the prompt's default question), of which model (None: the settings'
    default) with which prompt, after which earlier questions and answers (the chat prompt)."""

    question: str | None = None
    model: str | None = None
    prompt: str = "explain-risk"
    history: list[tuple[str, str]] | None = None


@dataclass(frozen=True)
class Event:
    """One event of a streamed explanation: while it waits for the model, `queued` with how many
    questions are `ahead` (the one being answered included; 0: it is next), each time that
    changes; then a `token` of shown text at a time, then either the finished Explanation
    (`done`) or the error that stopped it (`error`, a `QueueFullError` when too many wait)."""

    kind: str  # "queued" | "token" | "done" | "error" | "tick" (nothing new: see `stream`)
    text: str = ""
    explanation: Explanation | None = None
    error: Exception | None = None
    ahead: int = 0


def audit_record(exp: Explanation, caller: Caller) -> AuditRecord:
    """What the audit trail keeps of an explanation: ids, versions, outcome, latency, hashes."""
    return AuditRecord(
        at=now(),
        key_id=caller.key_id,
        route=caller.route,
        task=exp.task,
        subject_id=exp.subject_id,
        hadm_id=exp.hadm_id,
        icustay_id=exp.icustay_id,
        risk_model=exp.versions.risk_model,
        prompt=exp.versions.prompt,
        policy=exp.versions.policy,
        llm=exp.versions.llm,
        guard_passed=exp.guard.passed,
        fallback_used=exp.guard.fallback_used,
        attempts=exp.guard.attempts,
        violations=exp.guard.rules,
        latency_ms=round(exp.latency_s * 1000, 1),
        answer_sha256=sha256(exp.rationale.text),
        question_sha256=sha256(exp.question),
        request_id=caller.request_id,
    )


def given_up_record(
    facts: Facts, caller: Caller, ask: Ask, reason: str, seconds: float
) -> AuditRecord:
    """What the audit trail keeps of work given up (`reason`: "cancelled" or "timed_out"):
    nothing was delivered, so no answer hash."""
    return AuditRecord(
        at=now(),
        key_id=caller.key_id,
        route=caller.route,
        task=facts.task,
        subject_id=facts.subject_id,
        hadm_id=facts.hadm_id,
        icustay_id=facts.icustay_id,
        risk_model=f"{facts.model}@{facts.model_version}",
        prompt=None,
        policy=None,
        llm=None,
        guard_passed=False,
        fallback_used=False,
        attempts=0,
        violations=[],
        latency_ms=round(seconds * 1000, 1),
        answer_sha256="",
        question_sha256=sha256(ask.question or ""),
        request_id=caller.request_id,
        outcome=reason,
    )


class CancellableModel:
    """A chat model whose calls stop between two tokens once `token` is set (`Cancelled`)."""

    def __init__(self, model: ChatModel, token: CancelToken) -> None:
        self.model, self.token, self.name = model, token, model.name

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        self.token.check()

        def sink(text: str) -> None:
            self.token.check()  # raised inside the model's token loop: it stops there
            if on_token is not None:
                on_token(text)

        with cancelling(self.token):  # also checked between a local model's prompt pieces
            response = self.model.chat(request, on_token=sink)
        self.token.check()
        return response


class ExplanationService:
    """Everything needed to explain a patient, loaded lazily and kept."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        guard: ClinicalGuard | None = None,
        models: dict[str, ChatModel] | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self._guard = guard
        self._audit = audit
        self._models: dict[str, ChatModel] = dict(models or {})
        self._tasks: dict[str, Any] = {}
        self._explainers: dict[str, Explainer] = {}
        self._prompts: dict[str, Prompt] = {}
        self._lock = threading.RLock()
        self.queue = FairQueue(settings.queue_max_waiting, per_owner=settings.queue_per_key)
        self._prefetching = False  # one background prefetch at a time

    # ------------------------------------------------------------------------------ loading
    def task_data(self, task: str) -> Any:
        from safellm.risk.dataset import load_task

        with self._lock:
            if task not in self._tasks:
                self._tasks[task] = load_task(self.settings.data_dir, task)
            return self._tasks[task]

    def explainer(self, task: str) -> Explainer:
        """The task's explainer for `settings.risk_model`: tabular (SHAP) or temporal (IG)."""
        from safellm.explain.loader import load_explainer

        with self._lock:
            if task not in self._explainers:
                self._explainers[task] = load_explainer(
                    self.settings.models_dir,
                    self.settings.data_dir,
                    task,
                    self.settings.risk_model,
                )
            return self._explainers[task]

    def model(self, name: str | None = None) -> ChatModel:
        name = name or self.settings.llm_model
        with self._lock:
            if name not in self._models:
                self._models[name] = get_model(name, self.settings)
            return self._models[name]

    def prompt(self, name: str) -> Prompt:
        with self._lock:
            if name not in self._prompts:
                self._prompts[name] = load_prompt(self.settings.prompts_dir, *parse_ref(name))
            return self._prompts[name]

    @property
    def guard(self) -> ClinicalGuard:
        """The clinical guard of `SAFELLM_GUARD_POLICY`, built once (an invalid policy fails here,
        at start-up, with the rule named), its checker with the clinical concept lexicon of these
        settings (the curated one plus the vocabularies of the MIMIC folder the data comes from,
        built once and cached under `$SAFELLM_HOME/cache/concepts/`)."""
        with self._lock:
            if self._guard is None:
                from safellm.guard.concepts import concept_lexicon
                from safellm.guard.guard import ClinicalGuard
                from safellm.guard.policy import load_policy

                policy = load_policy(self.settings.guard_policy)
                rule = policy.rule("note.unsupported")
                judge = _LazyJudge(self.settings) if self.settings.guard_judge else None
                self._guard = ClinicalGuard(
                    policy,
                    note_support=EmbeddingSupport(
                        _LazyEmbedder(self),
                        judge=judge,
                        ask_judge_below=rule.similarity_threshold or 1.0,
                    ),
                    concepts=concept_lexicon(self.settings),
                )
            return self._guard

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = MiniLMEmbedder()
        return self._embedder

    @property
    def audit(self) -> AuditTrail:
        """The audit trail given, else the settings' (`$SAFELLM_HOME/audit.sqlite`, or
        PostgreSQL at `SAFELLM_AUDIT_URL`)."""
        with self._lock:
            if self._audit is None:
                self._audit = open_trail(self.settings)
            return self._audit

    # ------------------------------------------------------------------------------- patients
    def locate(self, task: str, hadm_id: int | None = None, icustay_id: int | None = None) -> int:
        """The position, in the task table, of the row of this admission or ICU stay (a lookup
        in an index built once per task: a prediction does not scan the table)."""
        spec = task_spec(task)
        if (hadm_id is None) == (icustay_id is None):
            raise UserInputError("give exactly one of hadm_id or icustay_id")
        by_hadm, by_icu = self.row_index(task)
        if icustay_id is not None:
            if spec.unit != "icustay_id":
                raise UserInputError(f"task {task} is per admission: give hadm_id, not icustay_id")
            rows, what = by_icu.get(icustay_id, []), f"ICU stay {icustay_id}"
        else:
            rows, what = by_hadm.get(hadm_id, []), f"admission {hadm_id}"  # type: ignore[arg-type]
            if len(rows) > 1:
                column = self.task_data(task).frame["icustay_id"].to_numpy()
                ids = ", ".join(str(int(column[i])) for i in rows)
                raise UserInputError(
                    f"{what} has {len(rows)} ICU stays in the {task} cohort ({ids}): "
                    f"give the icustay_id"
                )
        if not rows:
            raise UnknownPatientError(
                f"{what} is not in the {task} cohort (see the cohort definitions in the README)"
            )
        return rows[0]

    def row_index(self, task: str) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        """Row positions of the task table by hadm_id and by icustay_id (built once)."""
        with self._lock:
            key = f"index:{task}"
            if key not in self._tasks:
                frame = self.task_data(task).frame
                by_hadm: dict[int, list[int]] = {}
                by_icu: dict[int, list[int]] = {}
                for i, h in enumerate(frame["hadm_id"].to_numpy()):
                    by_hadm.setdefault(int(h), []).append(i)
                for i, u in enumerate(frame["icustay_id"].to_numpy(dtype=float)):
                    if u == u:  # not NaN
                        by_icu.setdefault(int(u), []).append(i)
                self._tasks[key] = (by_hadm, by_icu)
            return self._tasks[key]

    def unit(
        self, task: str, hadm_id: int | None = None, icustay_id: int | None = None
    ) -> pd.Series:
        """The row of the task table for this admission or ICU stay."""
        return self.task_data(task).frame.iloc[self.locate(task, hadm_id, icustay_id)]

    def risk_of(
        self, task: str, hadm_id: int | None = None, icustay_id: int | None = None
    ) -> tuple[float, str]:
        """The predicted risk and band of one unit (the cached `risks`, by position)."""
        pos = self.locate(task, hadm_id, icustay_id)
        self.risks(task)
        risk, bands = self._tasks[f"risk_by_row:{task}"]
        return float(risk[pos]), str(bands[pos])

    def facts(
        self,
        task: str,
        hadm_id: int | None = None,
        icustay_id: int | None = None,
        question: str | None = None,
    ) -> Facts:
        """Facts for one unit, cut to the top contributions (the others summed into one
        remainder, so the Facts still add up), with its note evidence."""
        background(self.settings.worker_nice)
        row = self.unit(task, hadm_id, icustay_id)
        notes = (
            notes_io.load_notes(self.settings.data_dir, int(row["hadm_id"]))
            if self.settings.explain_notes > 0
            else None
        )
        return self.facts_for_row(task, row, notes, question)

    def facts_for_row(
        self, task: str, row: pd.Series, notes: pd.DataFrame | None, question: str | None = None
    ) -> Facts:
        """Facts for a feature row from any route (the built table, a FHIR Bundle), with evidence
        from `notes` (the admission's notes; only those charted before the row's prediction time
        are read)."""
        facts = self.explainer(task).facts(row).cut(self.settings.explain_top_facts)
        evidence = []
        if self.settings.explain_notes > 0 and notes is not None:
            chunks = notes_io.chunks(notes_io.before(notes, row["prediction_time"]))
            if chunks:
                evidence = retrieve(
                    chunks,
                    query_for(facts.contributions, question),
                    self.embedder,
                    self.settings.explain_notes,
                )
        return facts.model_copy(update={"notes": evidence})

    def facts_of(self, task: str, row: Any, question: str | None = None) -> Facts:
        """`facts` for a row of `risks(task)` (or of the task table): its unit id picked by the
        task's unit."""
        unit = task_spec(task).unit
        return self.facts(task, **{unit: int(row[unit])}, question=question)

    def risks(self, task: str) -> pd.DataFrame:
        """Every unit of the task with its predicted risk and band, highest first (cached)."""
        from safellm.explain.facts import band_for

        with self._lock:
            key = f"risks:{task}"
            if key not in self._tasks:
                td = self.task_data(task)
                ex = self.explainer(task)
                risk = ex.risk(ex.outputs(td.frame))
                frame = td.frame[["subject_id", "hadm_id", "icustay_id"]].copy()
                frame["risk"] = risk
                frame["band"] = [band_for(float(r), ex.bands) for r in risk]
                self._tasks[f"risk_by_row:{task}"] = (frame["risk"].to_numpy(), list(frame["band"]))
                self._tasks[key] = frame.sort_values("risk", ascending=False, kind="stable")
            return self._tasks[key]

    def available_tasks(self) -> list[str]:
        """Tasks with built data and a trained model."""
        from safellm.data.events import events_file
        from safellm.risk.temporal_registry import task_dir

        temporal = self.settings.risk_model == "temporal"
        data, models = self.settings.data_dir, self.settings.models_dir
        return [
            t
            for t in TASKS
            if (events_file(data, t) if temporal else data / f"{t}.parquet").is_file()
            and ((task_dir(models, t) if temporal else models / t) / "LATEST").is_file()
        ]

    def highest_risk(self, task: str) -> pd.Series:
        """The unit with the highest predicted risk (or longest predicted stay)."""
        return self.task_data(task).frame.loc[self.risks(task).index[0]]

    # -------------------------------------------------------------------------------- explain
    def explain(
        self,
        task: str,
        hadm_id: int | None = None,
        icustay_id: int | None = None,
        *,
        caller: Caller,
        ask: Ask = Ask(),
        on_token: TokenSink | None = None,
        fallback: bool = False,
        cancel: CancelToken | None = None,
        place: Place | None = None,
    ) -> Explanation:
        """Facts, evidence and the guarded rationale for one unit, audited. The question's
        place in the queue is reserved before the Facts are made (a full queue refuses at once),
        unless the caller reserved it already (`place`)."""
        place = place or self.queue.reserve(caller.key_id)
        try:
            facts = self.facts(task, hadm_id, icustay_id, ask.question)
            return self.explain_facts(
                facts,
                caller=caller,
                ask=ask,
                on_token=on_token,
                fallback=fallback,
                cancel=cancel,
                place=place,
            )
        finally:
            self.queue.release(place)

    def explain_facts(
        self,
        facts: Facts,
        *,
        caller: Caller,
        ask: Ask = Ask(),
        on_token: TokenSink | None = None,
        fallback: bool = False,
        on_position: Callable[[int], None] | None = None,
        cancel: CancelToken | None = None,
        place: Place | None = None,
    ) -> Explanation:
        """The guarded rationale for Facts already made by `facts` (which this does not repeat),
        appended to the audit trail. `fallback`: a failing model gives the grounded fallback
        instead of an LLMError. The model work waits its turn in `self.queue` (in the `place`
        reserved for it, if any): `on_position(n)` hears how many are ahead while it waits, and
        a full queue raises `QueueFullError`. A set
        `cancel` token (client gone, deadline passed) stops the work in the queue or between two
        tokens: `Cancelled` is raised, and the audit trail records it as given up."""
        background(self.settings.worker_nice)
        model, prompt, guard = self.model(ask.model), self.prompt(ask.prompt), self.guard
        if cancel is not None:
            model = CancellableModel(model, cancel)
        started = time.perf_counter()
        try:
            with self.queue.enter(on_position, cancel=cancel, owner=caller.key_id, place=place):
                exp = explain(
                    facts,
                    model,
                    prompt,
                    question=ask.question,
                    history=ask.history,
                    guard=guard,
                    on_token=on_token,
                    fallback=fallback,
                )
                if cancel is not None:
                    cancel.check()  # done, but given up meanwhile: not delivered
        except Cancelled as exc:
            seconds = time.perf_counter() - started
            self.audit.append(given_up_record(facts, caller, ask, exc.reason, seconds))
            raise
        self.audit.append(audit_record(exp, caller))
        return exp

    def stream(
        self,
        facts: Facts,
        *,
        caller: Caller,
        ask: Ask = Ask(),
        cancel: CancelToken | None = None,
        tick_s: float | None = None,
        place: Place | None = None,
    ) -> Iterator[Event]:
        """`explain_facts` (with the fallback on model faults) on a worker thread: how many
        questions are ahead while it waits for the model (`queued`), its shown text token by
        token, then the Explanation, or the error that stopped it. `tick_s`: a `tick` event
        whenever nothing else came for that long (a front end then looks whether its client is
        still there, and sets `cancel` if not). `place`: the queue place reserved for it."""
        events: queue.Queue[Event | None] = queue.Queue()

        def work() -> None:
            background(self.settings.worker_nice)
            try:
                exp = self.explain_facts(
                    facts,
                    caller=caller,
                    ask=ask,
                    on_token=lambda t: events.put(Event("token", text=t)),
                    fallback=True,
                    on_position=lambda n: events.put(Event("queued", ahead=n)),
                    cancel=cancel,
                    place=place,
                )
                events.put(Event("done", explanation=exp))
            except Exception as exc:  # handed to the front end, which says it without a traceback
                events.put(Event("error", error=exc))
            finally:
                self.queue.release(place)
                events.put(None)

        threading.Thread(target=work, name="safellm-explain", daemon=True).start()
        while True:
            try:
                event = events.get(timeout=tick_s)
            except queue.Empty:
                yield Event("tick")
                continue
            if event is None:
                return
            yield event

    # ------------------------------------------------------------------------------- prefetch
    def prefetch(self, facts: Facts, ask: Ask = Ask()) -> bool:
        """Hand the model the request a later `explain_facts(facts, ask=ask)` would send (the
        prompt's default question unless `ask` has one), on a background thread, so that its
        prompt is evaluated before the question comes. Only when `SAFELLM_PREFETCH` is on, the
        model can prefetch (`Prefetching`), the queue is idle and no other prefetch is under way:
        a question that arrives meanwhile waits behind this one prefetch at most. Whether it was
        started."""
        return self._prefetch(lambda: facts, ask)

    def prefetch_unit(
        self,
        task: str,
        hadm_id: int | None = None,
        icustay_id: int | None = None,
        *,
        ask: Ask = Ask(),
    ) -> bool:
        """`prefetch` for one unit, its Facts (`facts`) made on the background thread too: the
        caller (a prediction of the API) never waits for them."""
        return self._prefetch(lambda: self.facts(task, hadm_id, icustay_id), ask)

    def _prefetch(self, make_facts: Callable[[], Facts], ask: Ask) -> bool:
        if not self.settings.prefetch or not self.queue.idle():
            return False
        try:
            model = self.model(ask.model)
        except SafeLLMError:  # not ready: the question will say why; a prefetch stays quiet
            return False
        if not isinstance(model, Prefetching):
            return False
        with self._lock:
            if self._prefetching:
                return False
            self._prefetching = True

        def work() -> None:
            background(self.settings.worker_nice)
            try:
                question = (ask.question or "").strip() or DEFAULT_QUESTION
                screened = self.guard.screen(question, make_facts())
                if screened.refusal is not None:  # explain would not ask the model either
                    return
                request = build_request(
                    screened.facts, self.prompt(ask.prompt), question, ask.history
                )
                with self.queue.enter_if_idle() as ours:
                    if ours:  # else a question came first: it needs the model more
                        model.prefetch(request)
            except Exception as exc:  # only a lost speed-up; the question will say what is wrong
                log.warning("prefetch failed: %s", type(exc).__name__)
            finally:
                with self._lock:
                    self._prefetching = False

        try:
            threading.Thread(target=work, name="safellm-prefetch", daemon=True).start()
        except RuntimeError:  # no thread to be had: no speed-up, nothing else lost
            with self._lock:
                self._prefetching = False
            return False
        return True


class _LazyEmbedder:
    """The service's embedder, loaded only when a sentence cites a note."""

    name = "lazy"

    def __init__(self, service: ExplanationService) -> None:
        self.service = service

    def embed(self, texts: Any) -> np.ndarray:
        return self.service.embedder.embed(texts)


class _LazyJudge:
    """The local model as note-grounding judge, loaded only when a sentence cites a note."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._judge: Any = None

    def __call__(self, claim: str, evidence: str) -> float:
        if self._judge is None:
            from safellm.llm.local import LocalJudge

            self._judge = LocalJudge(self.settings)
        return float(self._judge(claim, evidence))
