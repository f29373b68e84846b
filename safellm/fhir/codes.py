"""Code systems, codes and units of the FHIR route: which FHIR resource and code feeds each
feature group (the table in the README's FHIR section is this module, in words).

Labs are coded by LOINC (MIMIC-III's D_LABITEMS carries the LOINC of every panel item) and by the
MIMIC item id; vital signs by LOINC and the CHARTEVENTS item id. A Bundle from another system needs
only the LOINC codings; one exported by `safellm fhir export` carries both, so that a round trip
keeps the exact item (several CHARTEVENTS items feed one vital sign).
"""

from __future__ import annotations

import re

from safellm.data.catalogue import LABS, VITALS

BASE = "https://safellm.dev/fhir"
LOINC = "http://loinc.org"
ICD9_CM = "http://hl7.org/fhir/sid/icd-9-cm"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"

# identifiers of MIMIC rows, so that an exported Bundle keeps MIMIC's ids
SUBJECT_ID = f"{BASE}/sid/mimic-subject-id"
HADM_ID = f"{BASE}/sid/mimic-hadm-id"
ICUSTAY_ID = f"{BASE}/sid/mimic-icustay-id"
NOTE_ID = f"{BASE}/sid/mimic-note-id"
# code systems of MIMIC values that have no standard terminology
LAB_ITEM = f"{BASE}/CodeSystem/mimic-labitem"
CHART_ITEM = f"{BASE}/CodeSystem/mimic-chartitem"
ENCOUNTER_KIND = f"{BASE}/CodeSystem/encounter-kind"  # admission | icu-stay | service
ADMISSION_TYPE = f"{BASE}/CodeSystem/mimic-admission-type"
SERVICE = f"{BASE}/CodeSystem/mimic-service"
CARE_UNIT = f"{BASE}/CodeSystem/mimic-careunit"
# extensions for MIMIC columns that FHIR R4 has no element for
EXT_INSURANCE = f"{BASE}/StructureDefinition/insurance"
EXT_ETHNICITY = f"{BASE}/StructureDefinition/ethnicity"
EXT_TRANSFER_EVENT = f"{BASE}/StructureDefinition/transfer-event"

# Admission types: MIMIC's value <-> v3-ActPriority (a Bundle from another EHR gives the priority)
PRIORITY = {"EMERGENCY": "EM", "URGENT": "UR", "ELECTIVE": "EL"}
FROM_PRIORITY = {v: k for k, v in PRIORITY.items()}

# LOINC of the organism found by a culture (MICROBIOLOGYEVENTS: positive cultures)
ORGANISM_LOINC = "11475-1"

# LOINC of each panel lab (from MIMIC-III's D_LABITEMS) and of each vital sign
LAB_LOINC: dict[int, str] = {
    50813: "32693-4",
    50862: "1751-7",
    50882: "1963-8",
    50912: "2160-0",
    50931: "2345-7",
    50971: "2823-3",
    50983: "2951-2",
    51006: "3094-0",
    51222: "718-7",
    51265: "777-3",
    51301: "804-5",
}
assert set(LAB_LOINC) == {itemid for itemid, _, _ in LABS.values()}, "a LOINC per panel lab"
LOINC_LAB: dict[str, int] = {v: k for k, v in LAB_LOINC.items()}

VITAL_LOINC: dict[str, str] = {
    "heart_rate": "8867-4",
    "sbp": "8480-6",
    "resp_rate": "9279-1",
    "spo2": "59408-5",
    "temperature": "8310-5",
}
assert set(VITAL_LOINC) == set(VITALS), "a LOINC per vital sign"
# a LOINC-only vital sign is stored under the first CHARTEVENTS item of its sign (features read the
# sign, not the item)
LOINC_VITAL_ITEM: dict[str, int] = {VITAL_LOINC[s]: items[0] for s, (items, _, _) in VITALS.items()}
CHART_ITEMS: dict[int, str] = {i: s for s, (items, _, _) in VITALS.items() for i in items}

# UCUM code of each catalogue unit, and the units accepted for it as equal (no conversion is made:
# any other unit is refused)
UCUM_OF: dict[str, str] = {
    "g/dL": "g/dL",
    "mg/dL": "mg/dL",
    "mEq/L": "meq/L",
    "K/uL": "10*3/uL",
    "mmol/L": "mmol/L",
    "beats/min": "/min",
    "breaths/min": "/min",
    "mmHg": "mm[Hg]",
    "%": "%",
    "°F": "[degF]",
}
_SAME: dict[str, set[str]] = {
    "mEq/L": {"meq/l", "mmol/l"},  # the panel's mEq/L labs are monovalent ions
    "K/uL": {"k/ul", "10*3/ul", "10^3/ul", "10*9/l", "10^9/l", "x10e3/ul"},
    "beats/min": {"/min", "1/min", "bpm", "{beats}/min"},
    "breaths/min": {"/min", "1/min", "{breaths}/min"},
    "mmHg": {"mm[hg]", "mmhg"},
    "°F": {"[degf]", "degf", "°f", "f"},
}


def unit_accepted(expected: str, unit: str | None, code: str | None) -> bool:
    """Whether a Quantity's `unit` / `code` names the catalogue unit `expected` (case-insensitive;
    equal units such as mmol/L for a monovalent ion's mEq/L count)."""
    allowed = {expected.lower(), UCUM_OF.get(expected, expected).lower()} | _SAME.get(
        expected, set()
    )
    given = [u.strip().lower() for u in (unit, code) if u]
    return bool(given) and all(u in allowed for u in given)


_LOINC_RE = re.compile(r"^(\d{1,7})-(\d)$")


def loinc_valid(code: str) -> bool:
    """A LOINC code's form and check digit (LOINC's mod 10 algorithm)."""
    m = _LOINC_RE.match(code.strip())
    if not m:
        return False
    digits = m.group(1)[::-1]  # position 1 is the rightmost digit
    odd = int(digits[0::2][::-1]) * 2
    even = digits[1::2][::-1]
    total = sum(int(d) for d in f"{even}{odd}")
    return (10 - total % 10) % 10 == int(m.group(2))


_ICD9_DIAG = re.compile(r"^(\d{3}(\.?\d{1,2})?|V\d{2}(\.?\d{1,2})?|E\d{3}(\.?\d)?)$")
_ICD9_PROC = re.compile(r"^\d{2}(\.?\d{1,2})?$")


def icd9_dotted(code: str, procedure: bool = False) -> str:
    """MIMIC's undotted ICD-9-CM code as ICD-9-CM writes it (4019 -> 401.9, V4581 -> V45.81,
    E8798 -> E879.8; procedures 3893 -> 38.93)."""
    head = 2 if procedure else (4 if code.startswith("E") else 3)
    return code if len(code) <= head else f"{code[:head]}.{code[head:]}"


def icd9_undotted(code: str, procedure: bool = False) -> str | None:
    """The MIMIC form of an ICD-9-CM code, or None when it is not one."""
    c = code.strip().upper()
    if not (_ICD9_PROC if procedure else _ICD9_DIAG).match(c):
        return None
    return c.replace(".", "")


def fhir_source(feature: str) -> str:
    """Which FHIR resource (and code) feeds catalogue feature `feature`, in words (the README's
    table, per feature)."""
    from safellm.data.catalogue import FEATURES

    f = FEATURES[feature]
    for stem, (itemid, label, unit) in LABS.items():
        if feature.startswith(f"lab_{stem}_"):
            return f"Observation (laboratory) LOINC {LAB_LOINC[itemid]} {label}, {UCUM_OF[unit]}"
    for stem, (_, label, unit) in VITALS.items():
        if feature.startswith(f"vital_{stem}_"):
            return f"Observation (vital-signs) LOINC {VITAL_LOINC[stem]} {label}, {UCUM_OF[unit]}"
    by_table = {
        "PATIENTS": "Patient (gender, birthDate)",
        "ADMISSIONS": "Encounter of the admission (period, priority, hospitalization, extensions)",
        "ICUSTAYS": "Encounter partOf the admission, kind icu-stay (period, location)",
        "DIAGNOSES_ICD": "Condition, ICD-9-CM, encounter-diagnosis",
        "PROCEDURES_ICD": "Procedure, ICD-9-CM",
        "PRESCRIPTIONS": "MedicationRequest (medication, authoredOn)",
        "MICROBIOLOGYEVENTS": f"Observation LOINC {ORGANISM_LOINC} (organism found)",
        "TRANSFERS": "Encounter.location of the admission (care unit, period)",
        "SERVICES": "Encounter partOf the admission, kind service (serviceType)",
    }
    return "; ".join(by_table[s] for s in f.sources)
