"""Sample values and small helpers shared by the tests."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from safellm.explain.facts import Facts, NoteEvidence, Prediction, ranked
from safellm.llm.base import ChatRequest
from safellm.llm.fake import FakeChatModel

# the top-level keys of an Explanation, wherever it is served (`explain`, the API)
EXPLANATION_KEYS = (
    "task",
    "subject_id",
    "hadm_id",
    "prediction",
    "facts",
    "rationale",
    "guard",
    "versions",
)


def sample_facts() -> Facts:
    """A made-up readmission patient: creatinine and albumin raise the risk, age lowers it, the
    discharge destination raises it a little; one nursing note."""
    return Facts(
        task="readmission",
        subject_id=1,
        hadm_id=10,
        model="hgb",
        model_version="v1",
        prediction=Prediction(
            risk=0.4213, band="high", base_value=-2.0, space="log-odds", model_output=-0.32
        ),
        contributions=ranked(
            [
                ("lab_creatinine_last", "Creatinine (last)", 2.4, "mg/dL", 0.61),
                ("age", "Age", 44.0, "years", -0.30),
                ("lab_albumin_min", "Albumin (lowest)", 2.7, "g/dL", 0.21),
                ("discharge_location", "Discharge destination", "SNF", "category", 0.12),
            ]
        ),
        notes=[
            NoteEvidence(
                id="N1",
                note_id=5,
                category="Nursing",
                chart_time="2150-01-01 08:00",
                text="Poor urine output overnight; creatinine trending up, nephrology consulted.",
            ),
        ],
    )


def first_hadm(home: Path, task: str = "readmission") -> int:
    """The hadm_id of the first unit of a built task table under SAFELLM_HOME `home`."""
    return int(pd.read_parquet(home / "data" / f"{task}.parquet")["hadm_id"].iloc[0])


def explain_json(home: Path, model: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`safellm explain --json` with `model` on the first readmission unit of `home`, which must
    succeed; the Explanation it prints."""
    from typer.testing import CliRunner

    from safellm.cli import app

    monkeypatch.setenv("SAFELLM_HOME", str(home))
    hadm = str(first_hadm(home))
    args = ["explain", "--task", "readmission", "--hadm-id", hadm, "--model", model, "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return dict(json.loads(res.stdout))


class PrefetchingFake(FakeChatModel):
    """The fake model, able to prefetch (`safellm.llm.base.Prefetching`): it records each request
    it is handed in `prefetched` and sets `done`."""

    def __init__(self) -> None:
        super().__init__()
        self.prefetched: list[ChatRequest] = []
        self.done = threading.Event()

    def prefetch(self, request: ChatRequest) -> None:
        self.prefetched.append(request)
        self.done.set()


def home_over(built: Path, home: Path) -> Path:
    """`home` (made if missing) with the data and models of the home `built` linked in, and
    everything else (audit trail, caches, outputs) its own."""
    home.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "models"):
        (home / sub).symlink_to(built / sub)
    return home


# answers to `answer_grammar(["F1", "F2", "F3", "F4"], ["N1", "N2"])` and whether it allows them
GRAMMAR_CASES: list[tuple[str, bool]] = [
    ("{F1} {F1.dir} the risk the most. {F2} {F2.dir} it as well. {F3} {F3.dir} it.", True),
    ("{F1} {F1.dir} it. {F2} {F2.dir} it. {F3} {F3.dir} it. A note reports falls [N2].", True),
    (
        "{F1} {F1.dir} it. {F2} {F2.dir} it. {F3} {F3.dir} it. Also {F4.label} {F4.dir} it.",
        True,
    ),
    ("{F1} {F1.dir} it by 12 points. {F2} {F2.dir} it. {F3} {F3.dir} it.", False),  # digit
    ("{F1} {F1.dir} it by ³ points. {F2} {F2.dir} it. {F3} {F3.dir} it.", False),  # any digit
    ("{F1} {F1.dir} it. {F2} {F2.dir} it. {F3} {F3.dir} it. {F7} {F7.dir} it.", False),  # no F7
    ("{F1} {F1.dir} it. {F3} {F3.dir} it. {F2} {F2.dir} it.", False),  # F2 comes second
    ("{F1} raises it. {F2} {F2.dir} it. {F3} {F3.dir} it.", False),  # the direction is a slot
    ("Because {F1} {F1.dir} it. {F2} {F2.dir} it. {F3} {F3.dir} it.", False),  # F1 opens
    ("{F1} {F1.dir} it [F1]. {F2} {F2.dir} it. {F3} {F3.dir} it.", False),  # cited by hand
    (
        "{F1} {F1.dir} it. {F2} {F2.dir} it. {F3} {F3.dir} it. Notes say so [N3].",
        False,
    ),  # no N3
    ("{F1} {F1.dir}    it. {F2} {F2.dir} it. {F3} {F3.dir} it.", False),  # padding spaces
    (f"{{F1}} {{F1.dir}} {'ient' * 8}. {{F2}} {{F2.dir}} it. {{F3}} {{F3.dir}} it.", True),
    (
        f"{{F1}} {{F1.dir}} {'ient' * 9}. {{F2}} {{F2.dir}} it. {{F3}} {{F3.dir}} it.",
        False,
    ),  # a loop
]
