"""The guard policy (`guardrails/clinical.yaml`): rules with id, severity, action, thresholds and
patterns, versioned. Loaded and validated here; an invalid policy is a `ConfigError` naming the
rule, raised at start-up rather than in the middle of an answer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from safellm.guard._yaml import load_yaml
from safellm.resources import policy_file

Action = Literal["fix", "reask", "fallback", "refuse", "flag"]
Severity = Literal["info", "warning", "error", "critical"]
DEFAULT_POLICY = policy_file()  # the packaged guardrails/clinical.yaml

# Every rule the code implements, with the actions that make sense for it.
RULES: dict[str, set[str]] = {
    "fact.number": {"reask", "fallback"},
    "fact.feature": {"reask", "fallback"},
    "fact.direction": {"reask", "fallback"},
    "fact.rank": {"reask", "fallback"},
    "fact.risk": {"reask", "fallback"},
    "citation.unknown": {"reask", "fallback"},
    "citation.mismatch": {"reask", "fallback"},
    "citation.missing": {"reask", "fallback", "flag"},
    "note.unsupported": {"reask", "fallback", "flag"},
    "fact.unsupported_concept": {"reask", "fallback", "flag"},
    "fact.qualifier": {"reask", "fallback", "flag"},
    "phi.leak": {"fix", "reask", "fallback"},
    "dosing.order": {"reask", "fallback"},
    "scope.question": {"refuse", "flag"},
    "injection.instruction": {"flag", "refuse"},
    "injection.obeyed": {"reask", "fallback"},
    "disclaimer": {"fix"},
}


class Rule(BaseModel, extra="forbid"):
    id: str
    severity: Severity
    on_fail: Action
    description: str
    relative_tolerance: float | None = Field(default=None, ge=0, le=0.5)
    similarity_threshold: float | None = Field(default=None, ge=-1, le=1)
    judge_threshold: float | None = Field(default=None, ge=0, le=1)
    patterns: dict[str, str] | list[str] | None = None
    replacement: str | None = None
    out_of_scope: list[str] | None = None
    in_scope: list[str] | None = None

    def regexes(self, field: str = "patterns") -> dict[str, re.Pattern[str]]:
        raw: Any = getattr(self, field) or {}
        items = raw.items() if isinstance(raw, dict) else enumerate(raw)
        return {str(k): re.compile(v, re.IGNORECASE | re.MULTILINE) for k, v in items}


class Policy(BaseModel, extra="forbid"):
    name: str
    version: int = Field(ge=1)
    changelog: str = Field(min_length=1)
    max_reasks: int = Field(ge=0, le=5)
    disclaimer: str = Field(min_length=1)
    refusal: str = Field(min_length=1)
    rules: list[Rule]
    lexicon: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"

    def rule(self, rule_id: str) -> Rule:
        return self._by_id[rule_id]

    @model_validator(mode="after")
    def _check(self) -> Policy:
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate rule id(s): {', '.join(dup)}")
        unknown = sorted(set(ids) - set(RULES))
        if unknown:
            raise ValueError(
                f"unknown rule id(s): {', '.join(unknown)} (known: {', '.join(RULES)})"
            )
        missing = sorted(set(RULES) - set(ids))
        if missing:
            raise ValueError(f"rule(s) missing from the policy: {', '.join(missing)}")
        for r in self.rules:
            if r.on_fail not in RULES[r.id]:
                raise ValueError(
                    f"rule {r.id}: on_fail {r.on_fail!r} is not allowed "
                    f"(allowed: {', '.join(sorted(RULES[r.id]))})"
                )
            for field in ("patterns", "out_of_scope", "in_scope"):
                try:
                    r.regexes(field)
                except re.error as exc:
                    raise ValueError(f"rule {r.id}: invalid pattern in {field}: {exc}") from exc
        self._by_id = {r.id: r for r in self.rules}
        return self

    _by_id: dict[str, Rule] = {}


def load_policy(path: Path | None = None) -> Policy:
    """The policy at `path` (default `guardrails/clinical.yaml`), validated."""
    return load_yaml(Path(path or DEFAULT_POLICY), "guard policy", Policy, root="policy")
