"""The task registry: what SafeLLM predicts, written once.

Every module that needs to know something about a task (its unit, its target, whether it is a
probability or a number of days, whether the temporal model predicts it, how to say its risk)
asks its `TaskSpec` here instead of comparing task names. The cohort SQL lives with the data
(`safellm.data.cohorts`), the intended use with the model card; both are keyed by these names.

    spec = task_spec("los")          # UnknownNameError for a name that is not a task
    spec.format_risk(4.25)           # '4.2 days'
    temporal_task("los")             # UserInputError: the temporal model predicts only some tasks
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from safellm.errors import UnknownNameError, UserInputError

TaskName = Literal["readmission", "icu_mortality", "los"]
Kind = Literal["classification", "regression"]
Unit = Literal["hadm_id", "icustay_id"]


@dataclass(frozen=True)
class TaskSpec:
    name: TaskName
    label: str  # what is predicted, when (shown to the model and the reader)
    target: str  # the cohort table's label column
    kind: Kind
    unit: Unit  # the id of one predicted unit: an admission or an ICU stay
    temporal: bool  # the temporal model (event sequences) predicts it
    at_discharge: bool  # predicted at discharge: the stay's own coded diagnoses are known

    @property
    def in_days(self) -> bool:
        """The prediction is a number of days (regression), not a probability."""
        return self.kind == "regression"

    @property
    def outcome(self) -> str:
        """What a contribution moves, in words: 'the risk' or 'the predicted length of stay'."""
        return "the predicted length of stay" if self.in_days else "the risk"

    @property
    def unit_name(self) -> str:
        return "ICU stay" if self.unit == "icustay_id" else "admission"

    def format_risk(self, risk: float, digits: int = 1) -> str:
        """'12.3%' for a probability, '4.2 days' for a length of stay."""
        return f"{risk:.{digits}f} days" if self.in_days else f"{risk:.{digits}%}"


TASKS: dict[str, TaskSpec] = {
    s.name: s
    for s in (
        TaskSpec(
            "readmission",
            "30-day readmission risk at discharge",
            "readmit_30d",
            "classification",
            "hadm_id",
            temporal=True,
            at_discharge=True,
        ),
        TaskSpec(
            "icu_mortality",
            "ICU mortality risk, 24 hours into the ICU stay",
            "icu_mortality",
            "classification",
            "icustay_id",
            temporal=True,
            at_discharge=False,
        ),
        TaskSpec(
            "los",
            "Length of stay, predicted 24 hours after admission",
            "los_days",
            "regression",
            "hadm_id",
            temporal=False,
            at_discharge=False,
        ),
    )
}
TASK_NAMES: tuple[TaskName, ...] = get_args(TaskName)
TEMPORAL_TASKS: tuple[str, ...] = tuple(n for n, s in TASKS.items() if s.temporal)
assert tuple(TASKS) == TASK_NAMES, "TaskName and TASKS must list the same tasks in one order"


def task_spec(name: str) -> TaskSpec:
    """The spec of task `name`; UnknownNameError (naming the tasks) for any other name."""
    spec = TASKS.get(name)
    if spec is None:
        raise UnknownNameError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    return spec


def task_names(choice: str) -> list[str]:
    """`all` → every task; a task name → that task (checked)."""
    return list(TASK_NAMES) if choice == "all" else [task_spec(choice).name]


def temporal_task(name: str) -> str:
    """`name`, if the temporal model predicts it."""
    if not task_spec(name).temporal:
        raise UserInputError(
            f"the temporal model predicts {' and '.join(TEMPORAL_TASKS)}, not {name}; "
            f"use the tabular models for it (SAFELLM_RISK_MODEL=tabular)"
        )
    return name
