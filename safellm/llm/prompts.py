"""Prompts as data: one YAML file per prompt and version in `prompts/`, loaded into LangChain
`ChatPromptTemplate`s.

    prompts/explain-risk.v1.yaml      name: explain-risk, version: 1, changelog, variables,
                                      params (temperature, max_tokens), system, user

Every variable a template uses must be declared, and every declared one used; rendering without a
variable is a `PromptError` naming it (never an empty string). `load_prompt(name)` takes the highest
version unless one is asked for.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from safellm.errors import PromptError, UnknownNameError
from safellm.llm.base import ChatMessage, ChatRequest

FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)\.v(?P<version>\d+)\.ya?ml$")


class PromptParams(BaseModel, extra="forbid"):
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=320, ge=1, le=4096)
    stop: list[str] = Field(default_factory=list)


class PromptSpec(BaseModel, extra="forbid"):
    name: str
    version: int = Field(ge=1)
    changelog: str = Field(min_length=1, description="What changed in this version, one line.")
    description: str = ""
    answer: Literal["prose", "slots"] = Field(
        default="prose",
        description="prose: the model writes facts out, cited; slots: it writes references "
        "({F1}, {F1.dir}, ...) that are filled in from the Facts (and decoded under a grammar "
        "on the local model).",
    )
    fence_notes: bool = Field(
        default=False, description="Wrap each note's text in a delimiter drawn per request."
    )
    compact: bool = Field(
        default=False,
        description="Fewer prompt tokens per patient: a fact line gives its label, value and "
        "direction only (not its SHAP value), a note its category only (not its chart time), and a "
        "sentence already shown in an earlier note is left out of a later one.",
    )
    variables: list[str]
    params: PromptParams = Field(default_factory=PromptParams)
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)


class Prompt:
    """A loaded prompt: its spec, file and LangChain template."""

    def __init__(self, spec: PromptSpec, path: Path) -> None:
        self.spec = spec
        self.path = path
        used = set(self.template.input_variables)
        declared = set(spec.variables)
        if used != declared:
            raise PromptError(
                f"{path}: variables used {sorted(used)} but declared {sorted(declared)} "
                f"(undeclared: {sorted(used - declared)}, unused: {sorted(declared - used)})"
            )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        """`name@vN`, the version string that explanations and audit records carry."""
        return f"{self.spec.name}@v{self.spec.version}"

    @cached_property
    def template(self) -> Any:
        from langchain_core.prompts import ChatPromptTemplate

        try:
            return ChatPromptTemplate.from_messages(
                [("system", self.spec.system), ("human", self.spec.user)]
            )
        except (ValueError, KeyError) as exc:
            raise PromptError(f"{self.path}: invalid template: {exc}") from exc

    def render(self, **variables: object) -> list[ChatMessage]:
        missing = [v for v in self.spec.variables if variables.get(v) is None]
        if missing:
            raise PromptError(
                f"prompt {self.version} ({self.path.name}) needs variable(s) "
                f"{', '.join(missing)}; got {', '.join(sorted(variables)) or 'none'}"
            )
        extra = sorted(set(variables) - set(self.spec.variables))
        if extra:
            raise PromptError(f"prompt {self.version} takes no variable(s) {', '.join(extra)}")
        msgs = self.template.format_messages(**{k: str(v) for k, v in variables.items()})
        role = {"system": "system", "human": "user", "ai": "assistant"}
        return [ChatMessage(role=role[m.type], content=str(m.content)) for m in msgs]  # type: ignore[arg-type]

    def request(self, **variables: object) -> ChatRequest:
        """The rendered messages with this prompt's model parameters."""
        p = self.spec.params
        return ChatRequest(
            messages=self.render(**variables),
            temperature=p.temperature,
            max_tokens=p.max_tokens,
            stop=list(p.stop),
        )


def available(prompts_dir: Path) -> dict[str, list[int]]:
    """Prompt names in `prompts_dir` and their versions, ascending."""
    found: dict[str, list[int]] = {}
    if Path(prompts_dir).is_dir():
        for p in Path(prompts_dir).iterdir():
            m = FILE.match(p.name)
            if m:
                found.setdefault(m["name"], []).append(int(m["version"]))
    return {k: sorted(v) for k, v in sorted(found.items())}


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`explain-risk` → (explain-risk, None: the highest version); `explain-risk:1` or
    `explain-risk@v1` → (explain-risk, 1)."""
    m = re.fullmatch(r"\s*([a-z0-9][a-z0-9-]*)\s*(?:(?::|@v?)\s*(\d+))?\s*", ref)
    if m is None:
        raise PromptError(f"prompt {ref!r}: write NAME or NAME:VERSION (e.g. explain-risk:1)")
    return m.group(1), int(m.group(2)) if m.group(2) else None


def load_prompt(prompts_dir: Path, name: str, version: int | None = None) -> Prompt:
    """Prompt `name` (highest version unless `version` is given) from `prompts_dir`."""
    have = available(prompts_dir)
    if name not in have:
        listed = ", ".join(have) or "none"
        raise UnknownNameError(f"unknown prompt {name!r} in {prompts_dir} (available: {listed})")
    v = version if version is not None else have[name][-1]
    if v not in have[name]:
        raise UnknownNameError(f"prompt {name!r} has no version {v} (versions: {have[name]})")
    path = next(
        p
        for p in Path(prompts_dir).iterdir()
        if (m := FILE.match(p.name)) and m["name"] == name and int(m["version"]) == v
    )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"{path}: cannot read the prompt file: {exc}") from exc
    try:
        spec = PromptSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise PromptError(f"{path}: invalid prompt file: {problems}") from exc
    if (spec.name, spec.version) != (name, v):
        raise PromptError(
            f"{path}: the file says {spec.name} v{spec.version}, its name says {name} v{v}"
        )
    return Prompt(spec, path)
