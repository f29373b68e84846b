"""Bad FHIR input: each kind is a FhirInputError naming the resource and the field, nothing
guessed; what the models do not read is counted, not refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from safellm.errors import FhirInputError
from safellm.fhir import codes
from safellm.fhir.ingest import ingest

Bundle = dict[str, Any]


def _first(
    b: Bundle, rtype: str, pred: Callable[[dict[str, Any]], bool] = lambda r: True
) -> dict[str, Any]:
    return next(
        e["resource"]
        for e in b["entry"]
        if e["resource"]["resourceType"] == rtype and pred(e["resource"])
    )


def _lab(b: Bundle) -> dict[str, Any]:
    return _first(b, "Observation", lambda r: r["id"].startswith("lab-") and "valueQuantity" in r)


def _admission(b: Bundle) -> dict[str, Any]:
    return _first(b, "Encounter", lambda r: r["id"] == "adm-142345")


def wrong_resource_type(b: Bundle) -> Bundle:
    return _first(b, "Patient")


def unknown_resource_type(b: Bundle) -> Bundle:
    b["entry"].append({"resource": {"resourceType": "Patent", "id": "x"}})
    return b


def missing_encounter_start(b: Bundle) -> Bundle:
    del _admission(b)["period"]["start"]
    return b


def unknown_loinc(b: Bundle) -> Bundle:
    lab = _lab(b)
    lab["code"]["coding"] = [{"system": codes.LOINC, "code": "718-8"}]  # check digit is 7
    return b


def unit_mismatch(b: Bundle) -> Bundle:
    lab = _lab(b)
    lab["valueQuantity"]["unit"] = "g/L"
    lab["valueQuantity"]["code"] = "g/L"
    return b


def date_in_future(b: Bundle) -> Bundle:
    _lab(b)["effectiveDateTime"] = "2199-01-01T00:00:00+00:00"
    return b


def duplicate_ids(b: Bundle) -> Bundle:
    lab = _lab(b)
    b["entry"].append({"resource": dict(lab)})
    return b


def no_patient(b: Bundle) -> Bundle:
    b["entry"] = [e for e in b["entry"] if e["resource"]["resourceType"] != "Patient"]
    return b


def invalid_value_type(b: Bundle) -> Bundle:
    _lab(b)["valueQuantity"]["value"] = "high"
    return b


def invalid_status(b: Bundle) -> Bundle:
    _lab(b)["status"] = "bogus"
    return b


def unknown_code_system(b: Bundle) -> Bundle:
    _lab(b)["code"]["coding"] = [{"system": "http://example.org/labs", "code": "HGB"}]
    return b


def icd10_only(b: Bundle) -> Bundle:
    _first(b, "Condition")["code"]["coding"] = [{"system": codes.ICD10_CM, "code": "A41.9"}]
    return b


def dangling_encounter(b: Bundle) -> Bundle:
    _first(b, "Condition")["encounter"] = {"reference": "Encounter/nope"}
    return b


def partial_date(b: Bundle) -> Bundle:
    _lab(b)["effectiveDateTime"] = "2164-10"
    return b


def no_admission_type(b: Bundle) -> Bundle:
    adm = _admission(b)
    adm.pop("priority", None)
    adm["type"] = [t for t in adm["type"] if t["coding"][0]["system"] != codes.ADMISSION_TYPE]
    return b


def not_icd9(b: Bundle) -> Bundle:
    _first(b, "Condition")["code"]["coding"][0]["code"] = "XYZ.1"
    return b


def entry_not_a_list(b: Bundle) -> Bundle:
    b["entry"] = {"resource": {}}
    return b


def other_patient(b: Bundle) -> Bundle:
    _lab(b)["subject"] = {"reference": "Patient/someone-else"}
    return b


KINDS: dict[str, tuple[Callable[[Bundle], Bundle], str]] = {
    "wrong resourceType": (wrong_resource_type, "resourceType"),
    "unknown resourceType": (unknown_resource_type, "resource"),
    "missing Encounter period": (missing_encounter_start, "period.start"),
    "unknown LOINC": (unknown_loinc, "code.coding"),
    "unit mismatch": (unit_mismatch, "valueQuantity.unit"),
    "date in the future": (date_in_future, "effectiveDateTime"),
    "duplicate ids": (duplicate_ids, "resource"),
    "no Patient": (no_patient, "Bundle"),
    "invalid value type": (invalid_value_type, "valueQuantity.value"),
    "invalid status code": (invalid_status, "status"),
    "unknown code system": (unknown_code_system, "code.coding"),
    "ICD-10-CM only": (icd10_only, "code.coding"),
    "dangling Encounter reference": (dangling_encounter, "encounter"),
    "partial date": (partial_date, "effectiveDateTime"),
    "no admission type": (no_admission_type, "priority"),
    "not an ICD-9-CM code": (not_icd9, "code.coding"),
    "entry not a list": (entry_not_a_list, "entry"),
    "another patient's Observation": (other_patient, "subject"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_input_is_named(kind: str, demo_bundle: Bundle) -> None:
    spoil, field = KINDS[kind]
    with pytest.raises(FhirInputError) as err:
        ingest(spoil(demo_bundle))
    issues = err.value.issues
    assert issues and all(i.diagnostics for i in issues)
    assert any(i.expression.endswith(field) for i in issues), [
        (i.expression, i.diagnostics) for i in issues
    ]


def test_the_exported_bundle_itself_is_fine(demo_bundle: Bundle) -> None:
    ing = ingest(demo_bundle)
    assert ing.encounters["adm-142345"] == 142345
    assert len(ing.tables["labevents"]) > 50 and len(ing.tables["diagnoses_icd"]) > 10
    assert ing.ignored == {}


def test_what_is_not_read_is_counted(demo_bundle: Bundle) -> None:
    demo_bundle["entry"] += [
        {"resource": {"resourceType": "Practitioner", "id": "dr"}},
        {
            "resource": {
                "resourceType": "Observation",
                "id": "bmi",
                "status": "final",
                "category": [{"coding": [{"system": codes.OBS_CATEGORY, "code": "vital-signs"}]}],
                "code": {"coding": [{"system": codes.LOINC, "code": "39156-5"}]},
                "subject": {"reference": "Patient/mimic-10006"},
                "effectiveDateTime": "2164-10-24T08:00:00+00:00",
                "valueQuantity": {"value": 22.1, "unit": "kg/m2"},
            }
        },
    ]
    ing = ingest(demo_bundle)
    assert ing.ignored == {
        "Practitioner (not read by the models)": 1,
        "Observation (a LOINC code the models do not read)": 1,
    }


def test_loinc_check_digits() -> None:
    assert all(codes.loinc_valid(c) for c in codes.LAB_LOINC.values())
    assert all(codes.loinc_valid(c) for c in codes.VITAL_LOINC.values())
    assert codes.loinc_valid(codes.ORGANISM_LOINC)
    assert not codes.loinc_valid("718-8") and not codes.loinc_valid("2160-1")
    assert not codes.loinc_valid("abc") and not codes.loinc_valid("7187")


@pytest.mark.parametrize(
    ("plain", "dotted", "procedure"),
    [
        ("4019", "401.9", False),
        ("V4581", "V45.81", False),
        ("E8798", "E879.8", False),
        ("038", "038", False),
        ("3893", "38.93", True),
        ("99", "99", True),
    ],
)
def test_icd9_dots_round_trip(plain: str, dotted: str, procedure: bool) -> None:
    assert codes.icd9_dotted(plain, procedure) == dotted
    assert codes.icd9_undotted(dotted, procedure) == plain


def test_units_equal_but_never_converted() -> None:
    assert codes.unit_accepted("mEq/L", "mmol/L", None)
    assert codes.unit_accepted("K/uL", None, "10*3/uL")
    assert not codes.unit_accepted("g/dL", "g/L", "g/L")
    assert not codes.unit_accepted("mg/dL", None, None)


def _vital(loinc: str, value: float, unit: str, when: str) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Observation",
            "id": f"v-{loinc}-{when[:13].replace(':', '')}-{value}".replace(".", "-"),
            "status": "final",
            "category": [{"coding": [{"system": codes.OBS_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": codes.LOINC, "code": loinc}]},
            "subject": {"reference": "Patient/mimic-10006"},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit},
        }
    }


def test_vital_signs_by_loinc_feed_the_last_value_features(demo_bundle: Bundle) -> None:
    """Vital signs coded by LOINC only (as another EHR sends them): the last value in the 24 h
    before the prediction time, equal times broken towards the larger value, earlier ones and
    later ones not read. (Neither the demo nor the synthetic hospital has CHARTEVENTS.)"""
    from safellm.data.catalogue import features_for
    from safellm.fhir.features import task_rows

    demo_bundle["entry"] += [
        _vital("8867-4", 88, "/min", "2164-10-31T10:00:00+00:00"),  # more than 24 h before
        _vital("8867-4", 97, "beats/min", "2164-11-01T09:00:00+00:00"),
        _vital("8867-4", 101, "/min", "2164-11-01T16:00:00+00:00"),
        _vital("8867-4", 99, "/min", "2164-11-01T16:00:00+00:00"),  # same time: larger wins
        _vital("8310-5", 99.1, "[degF]", "2164-11-01T12:00:00+00:00"),
        _vital("59408-5", 95, "%", "2164-11-01T12:00:00+00:00"),
    ]
    feats = features_for("readmission")
    row = task_rows(ingest(demo_bundle), "readmission", feats)
    row = row[row["hadm_id"] == 142345].iloc[0]
    assert row["vital_heart_rate_last"] == 101
    assert row["vital_temperature_last"] == 99.1 and row["vital_spo2_last"] == 95
    assert row["vital_sbp_last"] != row["vital_sbp_last"]  # none sent: missing (NaN)


def test_a_temperature_in_celsius_is_refused(demo_bundle: Bundle) -> None:
    demo_bundle["entry"].append(_vital("8310-5", 37.2, "Cel", "2164-11-01T12:00:00+00:00"))
    with pytest.raises(FhirInputError) as err:
        ingest(demo_bundle)
    assert "'Cel' is not °F" in err.value.issues[0].diagnostics


def test_every_feature_names_its_fhir_source() -> None:
    from safellm.data.catalogue import FEATURES

    sources = {name: codes.fhir_source(name) for name in FEATURES}
    assert all(sources.values())
    assert sources["lab_creatinine_last"].startswith("Observation (laboratory) LOINC 2160-0")
    assert "Condition, ICD-9-CM" in sources["elix_chf"]
