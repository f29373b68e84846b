"""`safellm guard check`: any rationale, from any system, checked offline against a Facts JSON."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from safellm.config import Settings
from safellm.errors import UserInputError
from safellm.explain.facts import Facts
from safellm.guard.checker import sentences
from safellm.rationale import Violation


class CheckReport(BaseModel):
    passed: bool
    policy: str
    sentences: int
    citations: list[str]
    violations: list[Violation]


def load_facts(path: Path) -> Facts:
    """Facts from a JSON file: the `facts` object of an Explanation (or a whole Explanation)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the Facts file: {exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: not valid JSON: {exc}") from exc
    if isinstance(raw, dict) and "facts" in raw and "rationale" in raw:
        raw = raw["facts"]  # a whole Explanation: take its facts
    try:
        return Facts.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'facts'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise UserInputError(f"{path}: not a Facts object: {problems}") from exc


def check_text(text: str, facts: Facts, settings: Settings) -> CheckReport:
    from safellm.guard.guard import ClinicalGuard
    from safellm.guard.policy import load_policy
    from safellm.llm.retrieval import EmbeddingSupport, MiniLMEmbedder
    from safellm.rationale import citations

    guard = ClinicalGuard(load_policy(settings.guard_policy), EmbeddingSupport(MiniLMEmbedder()))
    review = guard.review(text, facts)
    found = review.fixed + review.blocking
    body = guard.checker.strip_disclaimer(text)
    return CheckReport(
        passed=not found,
        policy=guard.policy_version,
        sentences=len(sentences(body)),
        citations=citations(body),
        violations=found,
    )
