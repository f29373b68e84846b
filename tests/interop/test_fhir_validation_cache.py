"""Resources remembered as valid by their shape: a resource that differs from one found valid only
in its id, time or value is checked leaf by leaf with the model's own field types, and gets the
same answer as a whole validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from safellm.errors import FhirInputError
from safellm.fhir.ingest import _Problems, _validate, ingest

BASE: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "lab-cache-1",
    "status": "final",
    "code": {"text": "Lactate"},
    "effectiveDateTime": "2131-11-07T13:44:00+00:00",
    "issued": "2131-11-07T15:00:00Z",
    "valueQuantity": {"value": 1.1, "unit": "mmol/L"},
}

CHANGES = [
    ("id", "lab-cache-2"),
    ("id", "a b"),
    ("id", ""),
    ("id", 7),
    ("effectiveDateTime", "2131-11-07"),
    ("effectiveDateTime", "2131-13-07"),
    ("effectiveDateTime", "2131-11-07T13:44:00"),  # no time zone
    ("effectiveDateTime", "2131-11-07T25:44:00Z"),
    ("issued", "2131-11-07"),  # an instant needs a time
    ("issued", "2131-11-08T01:00:00+01:00"),
    ("valueQuantity.value", 3),
    ("valueQuantity.value", "3.5"),
    ("valueQuantity.value", "high"),
    ("valueQuantity.value", True),
    ("valueQuantity.value", None),
]


def _changed(path: str, value: Any) -> dict[str, Any]:
    r = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    target = r
    for p in parents:
        target = target[p]
    target[leaf] = value
    return r


@pytest.mark.parametrize(("path", "value"), CHANGES)
def test_a_remembered_shape_gets_the_models_answer(path: str, value: Any) -> None:
    assert _validate(copy.deepcopy(BASE), "Observation", _Problems())  # remembered
    r = _changed(path, value)
    try:
        get_fhir_model_class("Observation").model_validate(copy.deepcopy(r))
        expected = True
    except ValidationError:
        expected = False
    problems = _Problems()
    assert _validate(r, "Observation", problems) is expected
    if not expected:  # the whole validation's message, naming the field
        assert any(path.split(".")[0] in i.expression for i in problems.issues), problems.issues


def test_a_bad_lab_among_remembered_ones_is_named(demo_bundle: dict[str, Any]) -> None:
    ingest(copy.deepcopy(demo_bundle))  # every resource of the record remembered as valid
    lab = next(
        e["resource"]
        for e in demo_bundle["entry"]
        if e["resource"]["resourceType"] == "Observation" and "valueQuantity" in e["resource"]
    )
    lab["effectiveDateTime"] = "2131-13-07T00:00:00+00:00"
    with pytest.raises(FhirInputError) as err:
        ingest(demo_bundle)
    assert any("effectiveDateTime" in i.expression for i in err.value.issues), err.value.issues
