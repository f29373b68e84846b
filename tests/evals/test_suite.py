from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from safellm.errors import ConfigError
from safellm.evals.evaluators import MUTATION_METRICS, RUN_METRICS
from safellm.evals.suite import load_suite
from tests.evals.conftest import EVALS, write_suite

METRICS = set(RUN_METRICS) | set(MUTATION_METRICS)
WHY = {
    "id": "why-1",
    "family": "why",
    "patient": {"task": "readmission", "rank": 1},
    "question": "Why is this patient high risk?",
}


def test_default_suite_has_every_family_and_150_cases() -> None:
    suite = load_suite(EVALS / "default.v1.yaml", METRICS)
    counts = Counter(c.family for c in suite.cases)
    assert len(suite.cases) >= 150
    assert set(counts) == {
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
    }
    assert counts["why"] >= 45 and min(counts.values()) >= 10
    assert {c.patient.task for c in suite.cases if c.patient} == {
        "readmission",
        "icu_mortality",
        "los",
    }
    assert any(c.facts is not None for c in suite.cases)  # inline Facts too
    assert {g.metric for g in suite.gates} >= {"detection_rate", "false_flag_rate", "completeness"}


@pytest.mark.parametrize("name", ["gate.v1.yaml", "smoke.v1.yaml"])
def test_ci_suites_load(name: str) -> None:
    assert load_suite(EVALS / name, METRICS).cases


@pytest.mark.parametrize(
    ("cases", "extra", "message"),
    [
        ([{**WHY, "family": "gossip"}], {}, "cases[0] (id why-1).family"),
        ([{k: v for k, v in WHY.items() if k != "patient"}], {}, "exactly one of `patient`"),
        ([{**WHY, "facts": {"task": "x"}}], {}, "cases[0] (id why-1).facts.prediction"),
        ([WHY, WHY], {}, "case id 'why-1' appears twice"),
        ([{**WHY, "patient": {"task": "readmission", "rank": 0}}], {}, "patient.rank"),
        ([{**WHY, "question": ""}], {}, "question"),
        ([{**WHY, "expect": {"refuse": True, "colour": "red"}}], {}, "expect.colour"),
        ([WHY], {"gates": [{"metric": "charm", "max": 0}]}, "unknown metric 'charm'"),
        ([WHY], {"gates": [{"metric": "phi_leaks", "max": 0, "min": 0}]}, "exactly one of"),
        ([{**WHY, "long_notes_words": 500}], {}, "`filler` is empty"),
        ([WHY], {"grounding_set": "nowhere.yaml"}, "grounding_set 'nowhere.yaml' not found"),
    ],
)
def test_malformed_suites_fail_clearly(tmp_path: Path, cases, extra, message) -> None:  # type: ignore[no-untyped-def]
    path = write_suite(tmp_path / "bad.yaml", cases, **extra)
    with pytest.raises(ConfigError) as err:
        load_suite(path, METRICS)
    assert message in str(err.value)
    assert "bad.yaml" in str(err.value)


def test_unreadable_suites_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        load_suite(broken)
    broken.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_suite(broken)
    write_suite(broken, [])
    with pytest.raises(ConfigError, match="cases"):
        load_suite(broken)
