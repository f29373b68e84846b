"""Eval tests: a tiny suite written per test, and the sample Facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from safellm.explain.facts import Facts
from safellm.resources import evals_dir
from tests.samples import sample_facts

EVALS = evals_dir()  # the packaged evals/


@pytest.fixture
def facts() -> Facts:
    return sample_facts()


def write_suite(path: Path, cases: list[dict[str, Any]], **extra: Any) -> Path:
    doc = {"name": "tiny", "version": 1, "changelog": "test", "cases": cases, **extra}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
