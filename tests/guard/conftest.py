from __future__ import annotations

import re

import pytest

from safellm.explain.facts import Facts
from safellm.guard.checker import Checker
from safellm.guard.guard import ClinicalGuard
from safellm.guard.policy import load_policy
from safellm.llm.retrieval import EmbeddingSupport, HashEmbedder
from tests.samples import sample_facts


@pytest.fixture(scope="session")
def policy():  # type: ignore[no-untyped-def]
    return load_policy()


@pytest.fixture
def facts() -> Facts:
    return sample_facts()


def overlap_judge(claim: str, evidence: str) -> float:
    """A stand-in for the model judge: the share of the claim's longer words found in the note."""
    words = [w for w in re.findall(r"[a-z]+", claim.lower()) if len(w) > 3]
    ev = evidence.lower()
    return sum(w[:5] in ev for w in words) / max(len(words), 1)


@pytest.fixture
def support():  # type: ignore[no-untyped-def]
    return EmbeddingSupport(HashEmbedder(), judge=overlap_judge, ask_judge_below=0.79)


@pytest.fixture
def checker(policy, support) -> Checker:  # type: ignore[no-untyped-def]
    return Checker(policy, support)


@pytest.fixture
def guard(policy, support) -> ClinicalGuard:  # type: ignore[no-untyped-def]
    return ClinicalGuard(policy, support)
