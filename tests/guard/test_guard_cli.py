"""`safellm guard check`: exit 0 passed, 1 violations, 2 bad input; JSON as documented; and
`safellm explain` with a hallucinating model shows a guarded answer, never the hallucination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safellm.cli import app
from tests.samples import explain_json

TRUE = "A last creatinine of 2.4 mg/dL raises the risk [F1]. An age of 44 years lowers it [F2]."


def _write(tmp_path: Path, facts, text: str) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    f, t = tmp_path / "facts.json", tmp_path / "text.txt"
    f.write_text(facts.model_dump_json())
    t.write_text(text)
    return f, t


def test_passing_text_exits_0(tmp_path: Path, facts) -> None:  # type: ignore[no-untyped-def]
    f, t = _write(tmp_path, facts, TRUE)
    res = CliRunner().invoke(app, ["guard", "check", "--facts", str(f), "--text", str(t), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["passed"] is True and report["violations"] == []
    assert report["sentences"] == 2 and report["citations"] == ["F1", "F2"]
    assert report["policy"] == "clinical@v1"


def test_violations_exit_1_with_rule_ids(tmp_path: Path, facts) -> None:  # type: ignore[no-untyped-def]
    text = TRUE.replace("raises", "lowers") + " Give 40 mg furosemide daily."
    f, t = _write(tmp_path, facts, text)
    res = CliRunner().invoke(app, ["guard", "check", "--facts", str(f), "--text", str(t), "--json"])
    assert res.exit_code == 1
    rules = {v["rule"] for v in json.loads(res.stdout)["violations"]}
    assert {"fact.direction", "dosing.order"} <= rules
    plain = CliRunner().invoke(app, ["guard", "check", "--facts", str(f), "--text", str(t)])
    assert plain.exit_code == 1 and "fact.direction" in plain.output


def test_a_whole_explanation_is_accepted_as_facts(tmp_path: Path, facts) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "exp.json"
    f.write_text(
        json.dumps({"facts": facts.model_dump(), "rationale": {"text": "", "citations": []}})
    )
    t = tmp_path / "t.txt"
    t.write_text(TRUE)
    assert (
        CliRunner().invoke(app, ["guard", "check", "--facts", str(f), "--text", str(t)]).exit_code
        == 0
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"task": "readmission"}', "not a Facts object"),
        ("[]", "not a Facts object"),
    ],
)
def test_malformed_facts_exit_2(tmp_path: Path, content: str, message: str) -> None:
    f, t = tmp_path / "facts.json", tmp_path / "t.txt"
    f.write_text(content)
    t.write_text(TRUE)
    res = CliRunner().invoke(app, ["guard", "check", "--facts", str(f), "--text", str(t)])
    flat = " ".join(res.output.split())
    assert res.exit_code == 2 and message in flat and "Traceback" not in flat


def test_missing_text_file_exit_2(tmp_path: Path, facts) -> None:  # type: ignore[no-untyped-def]
    f, _ = _write(tmp_path, facts, TRUE)
    res = CliRunner().invoke(
        app, ["guard", "check", "--facts", str(f), "--text", str(tmp_path / "no.txt")]
    )
    assert res.exit_code == 2 and "cannot read the rationale" in " ".join(res.output.split())


def test_explain_with_a_hallucinating_model_is_guarded(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = explain_json(demo_home, "fake:hallucinate", monkeypatch)
    g = exp["guard"]
    assert g["fallback_used"] is False and g["passed"] is True and g["attempts"] == 2
    assert {"fact.direction", "fact.number", "dosing.order"} <= {v["rule"] for v in g["violations"]}
    assert {r["action"] for r in g["repairs"]} == {"replaced", "dropped"}
    text = exp["rationale"]["text"]
    assert "999" not in text and "furosemide" not in text and "9.9 mmol/L" not in text
    assert exp["versions"]["policy"] == "clinical@v1"
