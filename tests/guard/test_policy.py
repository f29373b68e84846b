"""The guard policy file: the shipped one is valid; broken ones are clear start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from safellm.errors import ConfigError
from safellm.guard.policy import DEFAULT_POLICY, RULES, load_policy


def test_shipped_policy_covers_every_rule() -> None:
    p = load_policy()
    assert p.label == "clinical@v1" and {r.id for r in p.rules} == set(RULES)
    assert p.max_reasks >= 1 and p.disclaimer and p.refusal


def _broken(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    change(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _rule(raw, rid):  # type: ignore[no-untyped-def]
    return next(r for r in raw["rules"] if r["id"] == rid)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda raw: raw["rules"].append(dict(raw["rules"][0])), "duplicate rule id.*fact.number"),
        (lambda raw: raw["rules"].pop(0), "missing from the policy: fact.number"),
        (
            lambda raw: _rule(raw, "phi.leak").update(on_fail="refuse"),
            "phi.leak: on_fail 'refuse' is not allowed",
        ),
        (
            lambda raw: _rule(raw, "dosing.order")["patterns"].update(bad="(unclosed"),
            "dosing.order: invalid pattern",
        ),
        (
            lambda raw: raw["rules"].append({**raw["rules"][0], "id": "fact.vibes"}),
            "unknown rule id.*fact.vibes",
        ),
        (lambda raw: raw.update(max_reasks=-1), "max_reasks"),
        (lambda raw: _rule(raw, "fact.number").update(on_fail="explode"), "on_fail"),
    ],
)
def test_invalid_policy_is_a_clear_error(tmp_path: Path, change, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=match):
        load_policy(_broken(tmp_path, change))


def test_unreadable_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the guard policy"):
        load_policy(tmp_path / "none.yaml")
