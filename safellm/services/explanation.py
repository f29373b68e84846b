"""The explanation service: the edge that loads data, model bundles, notes, prompts and LLMs (once
each) and runs the pure pipeline of `safellm.rationale` for one patient. The CLI, the REST API and
the chat all go through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from safellm.config import Settings
from safellm.data import notes as notes_io
from safellm.errors import UnknownPatientError, UserInputError
from safellm.explain.facts import Facts
from safellm.llm.base import ChatModel, TokenSink, get_model
from safellm.llm.prompts import Prompt, load_prompt
from safellm.llm.retrieval import (
    Embedder,
    EmbeddingSupport,
    MiniLMEmbedder,
    query_for,
    retrieve,
)
from safellm.rationale import Explanation, GuardStep, explain


class ExplanationService:
    """Everything needed to explain a patient, loaded lazily and kept."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        guard: GuardStep | None = None,
        models: dict[str, ChatModel] | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self._guard = guard
        self._models: dict[str, ChatModel] = dict(models or {})
        self._tasks: dict[str, Any] = {}
        self._explainers: dict[str, Any] = {}
        self._prompts: dict[str, Prompt] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------ loading
    def task_data(self, task: str) -> Any:
        from safellm.risk.dataset import load_task

        with self._lock:
            if task not in self._tasks:
                self._tasks[task] = load_task(self.settings.data_dir, task)
            return self._tasks[task]

    def explainer(self, task: str) -> Any:
        """The task's explainer for `settings.risk_model`: tabular (SHAP) or temporal (IG)."""
        with self._lock:
            if task not in self._explainers:
                if self.settings.risk_model == "temporal":
                    from safellm.data.events import load_events
                    from safellm.risk.temporal_registry import check_temporal, load_temporal

                    bundle = load_temporal(self.settings.models_dir, check_temporal(task))
                    events = load_events(self.settings.data_dir, task)
                    self._explainers[task] = bundle.explainer(events)
                else:
                    from safellm.risk.registry import load_bundle

                    self._explainers[task] = load_bundle(self.settings.models_dir, task).explainer()
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
                self._prompts[name] = load_prompt(self.settings.prompts_dir, name)
            return self._prompts[name]

    @property
    def guard(self) -> GuardStep:
        """The clinical guard of `SAFELLM_GUARD_POLICY`, built once (an invalid policy fails here,
        at start-up, with the rule named)."""
        with self._lock:
            if self._guard is None:
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
                )
            return self._guard

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = MiniLMEmbedder()
        return self._embedder

    # ------------------------------------------------------------------------------- patients
    def unit(
        self, task: str, hadm_id: int | None = None, icustay_id: int | None = None
    ) -> pd.Series:
        """The row of the task table for this admission or ICU stay."""
        frame = self.task_data(task).frame
        if (hadm_id is None) == (icustay_id is None):
            raise UserInputError("give exactly one of hadm_id or icustay_id")
        if icustay_id is not None:
            if task != "icu_mortality":
                raise UserInputError(f"task {task} is per admission: give hadm_id, not icustay_id")
            rows = frame[frame["icustay_id"] == icustay_id]
            what = f"ICU stay {icustay_id}"
        else:
            rows = frame[frame["hadm_id"] == hadm_id]
            what = f"admission {hadm_id}"
            if len(rows) > 1:
                ids = ", ".join(str(int(i)) for i in rows["icustay_id"])
                raise UserInputError(
                    f"{what} has {len(rows)} ICU stays in the {task} cohort ({ids}): "
                    f"give the icustay_id"
                )
        if rows.empty:
            raise UnknownPatientError(
                f"{what} is not in the {task} cohort (see the cohort definitions in the README)"
            )
        return rows.iloc[0]

    def facts(
        self,
        task: str,
        hadm_id: int | None = None,
        icustay_id: int | None = None,
        question: str | None = None,
    ) -> Facts:
        """Facts for one unit, cut to the top contributions, with its note evidence."""
        row = self.unit(task, hadm_id, icustay_id)
        full = self.explainer(task).facts(row)
        top = full.contributions[: self.settings.explain_top_facts]
        evidence = []
        if self.settings.explain_notes > 0:
            notes = notes_io.before(
                notes_io.load_notes(self.settings.data_dir, full.hadm_id), row["prediction_time"]
            )
            chunks = notes_io.chunks(notes)
            if chunks:
                evidence = retrieve(
                    chunks, query_for(top, question), self.embedder, self.settings.explain_notes
                )
        return full.model_copy(update={"contributions": top, "notes": evidence})

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
                self._tasks[key] = frame.sort_values("risk", ascending=False, kind="stable")
            return self._tasks[key]

    def available_tasks(self) -> list[str]:
        """Tasks with built data and a trained model."""
        from safellm.data.cohorts import TASKS
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
        question: str | None = None,
        model: str | None = None,
        prompt: str = "explain-risk",
        history: list[tuple[str, str]] | None = None,
        on_token: TokenSink | None = None,
    ) -> Explanation:
        facts = self.facts(task, hadm_id, icustay_id, question)
        return self.explain_facts(
            facts, question=question, model=model, prompt=prompt, history=history, on_token=on_token
        )

    def explain_facts(
        self,
        facts: Facts,
        *,
        question: str | None = None,
        model: str | None = None,
        prompt: str = "explain-risk",
        history: list[tuple[str, str]] | None = None,
        on_token: TokenSink | None = None,
        on_llm_error: Callable[[Facts, Exception], Any] | None = None,
    ) -> Explanation:
        """The rationale for Facts already made by `facts` (which this does not repeat)."""
        return explain(
            facts,
            self.model(model),
            self.prompt(prompt),
            question=question,
            history=history,
            guard=self.guard,
            on_token=on_token,
            on_llm_error=on_llm_error,
        )


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
