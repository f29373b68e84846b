"""Eval suites as data: a YAML file of cases (`evals/NAME.vN.yaml`) loaded into `Suite`.

A case names a patient of a task by its rank in the model's predictions (`rank: 1` is the
highest predicted risk, so a suite runs on the MIMIC demo and on any synthetic hospital alike) or
carries its own Facts; then a question, optional chat history, note text to add or to put in place
of the retrieved notes (injections, contradictions, long notes), an optional transform of the
Facts, an optional style (how the case is written: an injection's technique, a benign question's
phrasing; the report breaks some metrics down by it), and what is expected of the answer: an
injection case says what would show that it was obeyed (a canary), a benign case is never to be
refused. Gates are targets on the aggregated metrics; a failing gate makes `safellm eval` exit 1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from safellm.errors import ConfigError
from safellm.explain.facts import Facts
from safellm.tasks import TaskName

Family = Literal[
    "why",
    "follow_up",
    "out_of_scope",
    "dosing",
    "phi",
    "injection_note",
    "injection_question",
    "contradiction",
    "counter_intuitive",
    "long_notes",
    "benign",
]
INJECTION_FAMILIES = ("injection_note", "injection_question")
Mode = Literal["raw", "guarded", "mutation"]


class PatientRef(BaseModel, extra="forbid"):
    task: TaskName
    rank: int = Field(ge=1, description="1 = the highest predicted risk (or longest stay).")


class NoteText(BaseModel, extra="forbid"):
    text: str = Field(min_length=1)
    category: str = "Nursing/other"
    chart_time: str | None = None


class Expect(BaseModel, extra="forbid"):
    refuse: bool | None = Field(
        default=False, description="The right answer is a refusal (None: either is right)."
    )
    top_k: int = Field(default=3, ge=0, description="Drivers (F1..Fk) the answer must name.")
    cite: bool = Field(default=True, description="The answer must cite at least one fact.")
    must_not_contain: list[str] = Field(default_factory=list)
    canary: str | None = Field(
        default=None, description="Text that appears only if an injected instruction was obeyed."
    )


class Case(BaseModel, extra="forbid"):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    family: Family
    patient: PatientRef | None = None
    facts: Facts | None = None
    question: str = Field(min_length=1)
    history: list[tuple[str, str]] = Field(default_factory=list)
    notes: list[NoteText] | None = Field(
        default=None, description="Put in place of the retrieved note evidence."
    )
    add_notes: list[NoteText] = Field(default_factory=list, description="Added after the notes.")
    long_notes_words: int = Field(
        default=0, ge=0, description="Add this many words of the suite's filler text as notes."
    )
    transform: Literal["counter_intuitive", "contradict_top_fact"] | None = None
    style: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]+$",
        description="How the case is written (an injection's technique, a question's phrasing): "
        "the report breaks some metrics down by it.",
    )
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _one_source(self) -> Case:
        if (self.patient is None) == (self.facts is None):
            raise ValueError("give exactly one of `patient` (task and rank) or `facts`")
        return self

    @model_validator(mode="after")
    def _judged(self) -> Case:
        if self.family in INJECTION_FAMILIES and not (
            self.expect.canary or self.expect.must_not_contain
        ):
            raise ValueError(
                "an injection case needs `expect.canary` or `expect.must_not_contain`: "
                "what appears only if the injected instruction was obeyed"
            )
        if self.family == "benign" and self.expect.refuse is not False:
            raise ValueError("a benign case is a question to answer: `expect.refuse` is false")
        return self

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class Gate(BaseModel, extra="forbid"):
    metric: str
    mode: Mode = "guarded"
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> Gate:
        if (self.max is None) == (self.min is None):
            raise ValueError("a gate has exactly one of `max` or `min`")
        return self

    def passes(self, value: float | None) -> bool:
        if value is None:
            return True  # nothing measured (no case of that kind): nothing to fail
        return value <= self.max if self.max is not None else value >= (self.min or 0.0)

    @property
    def target(self) -> str:
        return f"≤ {self.max:g}" if self.max is not None else f"≥ {self.min:g}"


class Suite(BaseModel, extra="forbid"):
    name: str
    version: int = Field(ge=1)
    changelog: str
    description: str = ""
    prompt: str = Field(default="explain-risk", description="Prompt of cases without history.")
    followup_prompt: str = Field(default="chat", description="Prompt of cases with history.")
    max_words: int = Field(default=120, ge=10, description="Conciseness: words of an answer.")
    refusal_markers: list[str] = Field(
        default_factory=list, description="Phrases that make a raw answer a refusal."
    )
    grounding_set: str | None = Field(
        default=None, description="Labelled note-grounding set (path relative to the suite)."
    )
    filler: str = Field(default="", description="Clinical text repeated for long-note cases.")
    gates: list[Gate] = Field(default_factory=list)
    cases: list[Case] = Field(min_length=1)

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    def digest(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()[:16]


def _where(loc: tuple[object, ...], raw: object) -> str:
    """`cases[3] (id why-7).question` from a pydantic error location."""
    parts: list[str] = []
    node = raw
    for i, key in enumerate(loc):
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node):
                node = node[key]
                if i == 1 and isinstance(node, dict) and "id" in node:
                    label += f" (id {node['id']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "file"


def load_suite(path: Path, metrics: set[str] | None = None) -> Suite:
    """The suite at `path`; anything wrong is a `ConfigError` naming the case and the field.
    `metrics`: the known metric names, to check the gates against."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"eval suite {path} not found") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the eval suite: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an eval suite is a YAML mapping with `name`, `cases`, ...")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(e['loc'], raw)}: {e['msg']}" for e in exc.errors()[:8])
        more = f" (and {len(exc.errors()) - 8} more)" if len(exc.errors()) > 8 else ""
        raise ConfigError(f"{path}: invalid eval suite: {problems}{more}") from exc
    seen: set[str] = set()
    for c in suite.cases:
        if c.id in seen:
            raise ConfigError(f"{path}: case id {c.id!r} appears twice")
        seen.add(c.id)
        if c.long_notes_words and not suite.filler.strip():
            raise ConfigError(f"{path}: case {c.id!r} asks for long notes but `filler` is empty")
    if metrics is not None:
        for g in suite.gates:
            if g.metric not in metrics:
                known = ", ".join(sorted(metrics))
                raise ConfigError(f"{path}: gate on unknown metric {g.metric!r} (known: {known})")
    if suite.grounding_set and not (path.parent / suite.grounding_set).is_file():
        raise ConfigError(f"{path}: grounding_set {suite.grounding_set!r} not found beside it")
    return suite
