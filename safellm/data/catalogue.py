"""The FEATURES catalogue: every model input with its clinical label, unit, source, time window and
display precision (the decimals a clinician reads it with: labs as the laboratory reports them).

Later layers explain predictions with these labels and units, so they are written for clinicians.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from safellm.tasks import TASK_NAMES

Kind = Literal["numeric", "binary", "categorical"]

# Lab panel: feature stem -> (ITEMID, label, unit)
LABS: dict[str, tuple[int, str, str]] = {
    "hemoglobin": (51222, "Haemoglobin", "g/dL"),
    "creatinine": (50912, "Creatinine", "mg/dL"),
    "bun": (51006, "Blood urea nitrogen", "mg/dL"),
    "sodium": (50983, "Sodium", "mEq/L"),
    "potassium": (50971, "Potassium", "mEq/L"),
    "wbc": (51301, "White blood cell count", "K/uL"),
    "platelets": (51265, "Platelet count", "K/uL"),
    "lactate": (50813, "Lactate", "mmol/L"),
    "bicarbonate": (50882, "Bicarbonate", "mEq/L"),
    "glucose": (50931, "Glucose", "mg/dL"),
    "albumin": (50862, "Albumin", "g/dL"),
}

# Decimals each lab is usually reported with, which is how its values are shown.
LAB_DECIMALS: dict[str, int] = {
    "hemoglobin": 1,
    "creatinine": 1,
    "bun": 0,
    "sodium": 0,
    "potassium": 1,
    "wbc": 1,
    "platelets": 0,
    "lactate": 1,
    "bicarbonate": 0,
    "glucose": 0,
    "albumin": 1,
}

# Vital signs from CHARTEVENTS (optional table): stem -> (ITEMIDs, label, unit)
VITALS: dict[str, tuple[tuple[int, ...], str, str]] = {
    "heart_rate": ((211, 220045), "Heart rate", "beats/min"),
    "sbp": ((51, 442, 455, 6701, 220179, 220050), "Systolic blood pressure", "mmHg"),
    "resp_rate": ((618, 615, 220210, 224690), "Respiratory rate", "breaths/min"),
    "spo2": ((646, 220277), "Oxygen saturation (SpO2)", "%"),
    "temperature": ((223761, 678), "Temperature", "°F"),
}
# Plausible values of each vital sign (inclusive): a charted value outside is a typing slip or a
# device artefact (a heart rate of 800 or 8, a temperature of 986 °F) and is not read.
VITAL_VALID: dict[str, tuple[float, float]] = {
    "heart_rate": (20.0, 300.0),
    "sbp": (40.0, 300.0),
    "resp_rate": (3.0, 80.0),
    "spo2": (50.0, 100.0),
    "temperature": (85.0, 110.0),
}
VITAL_DECIMALS: dict[str, int] = {
    "heart_rate": 0,
    "sbp": 0,
    "resp_rate": 0,
    "spo2": 0,
    "temperature": 1,
}

# Adult reference intervals of the labs and vital signs, in the catalogue's units, for words such
# as "low", "high", "normal" about a value (the guard's fact.qualifier rule). Each is (low, high,
# core low, core high): (low, high) is the widest usual interval, where a value may be called
# normal; (core low, core high) the narrowest, below which a value may be called low and above
# which high. They differ where the interval depends on sex (haemoglobin, creatinine) or on the
# laboratory or guideline; between the two, either word is accepted. The temporal model's lab bins
# (`safellm.risk.sequences.REFERENCE`) lie between the two.
REFERENCE_RANGES: dict[str, tuple[float, float, float, float]] = {
    "lab_hemoglobin": (12.0, 17.5, 13.5, 16.0),
    "lab_creatinine": (0.5, 1.3, 0.7, 1.1),
    "lab_bun": (6.0, 25.0, 8.0, 20.0),
    "lab_sodium": (133.0, 146.0, 136.0, 145.0),
    "lab_potassium": (3.3, 5.1, 3.5, 5.0),
    "lab_wbc": (4.0, 11.0, 4.0, 11.0),
    "lab_platelets": (140.0, 450.0, 150.0, 400.0),
    "lab_lactate": (0.5, 2.2, 0.5, 2.0),
    "lab_bicarbonate": (22.0, 32.0, 23.0, 29.0),
    "lab_glucose": (70.0, 180.0, 70.0, 100.0),
    "lab_albumin": (3.4, 5.4, 3.5, 5.0),
    "vital_heart_rate": (50.0, 100.0, 60.0, 90.0),
    "vital_sbp": (90.0, 140.0, 100.0, 120.0),
    "vital_resp_rate": (10.0, 22.0, 12.0, 20.0),
    "vital_spo2": (92.0, 100.0, 95.0, 100.0),
    "vital_temperature": (96.8, 100.4, 97.7, 99.1),
}

# Medication classes matched on the lower-case drug name. High-alert classes (ISMP) are counted.
MED_CLASSES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "anticoagulant": (
        "Anticoagulant",
        (
            "heparin",
            "warfarin",
            "enoxaparin",
            "apixaban",
            "rivaroxaban",
            "dabigatran",
            "argatroban",
            "bivalirudin",
            "fondaparinux",
        ),
        True,
    ),
    "insulin": ("Insulin", ("insulin",), True),
    "opioid": (
        "Opioid",
        (
            "morphine",
            "hydromorphone",
            "oxycodone",
            "fentanyl",
            "methadone",
            "hydrocodone",
            "meperidine",
            "tramadol",
        ),
        True,
    ),
    "benzodiazepine": (
        "Benzodiazepine",
        ("lorazepam", "midazolam", "diazepam", "alprazolam", "clonazepam"),
        True,
    ),
    "diuretic": (
        "Diuretic",
        (
            "furosemide",
            "bumetanide",
            "torsemide",
            "hydrochlorothiazide",
            "spironolactone",
            "metolazone",
        ),
        False,
    ),
    "vasopressor": (
        "Vasopressor or inotrope",
        (
            "norepinephrine",
            "epinephrine",
            "vasopressin",
            "phenylephrine",
            "dopamine",
            "dobutamine",
            "milrinone",
        ),
        False,
    ),
    "antibiotic": (
        "Intravenous/oral antibiotic",
        (
            "vancomycin",
            "piperacillin",
            "cefepime",
            "ceftriaxone",
            "meropenem",
            "levofloxacin",
            "ciprofloxacin",
            "metronidazole",
            "ampicillin",
            "cefazolin",
            "azithromycin",
            "linezolid",
            "clindamycin",
            "gentamicin",
            "ceftazidime",
            "nafcillin",
        ),
        False,
    ),
}


# Elixhauser comorbidity groups (Quan et al. 2005, ICD-9-CM, codes written without the dot as in
# MIMIC) with van Walraven weights.  group -> (label, vw weight, code prefixes)
def _rng(a: int, b: int, width: int = 3) -> tuple[str, ...]:
    return tuple(str(i).zfill(width) for i in range(a, b + 1))


ELIXHAUSER: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "chf": (
        "Congestive heart failure",
        7,
        (
            "39891",
            "40201",
            "40211",
            "40291",
            "40401",
            "40403",
            "40411",
            "40413",
            "40491",
            "40493",
            *_rng(4254, 4259, 4),
            "428",
        ),
    ),
    "arrhythmia": (
        "Cardiac arrhythmia",
        5,
        (
            "4260",
            "42613",
            "4267",
            "4269",
            "42610",
            "42612",
            *_rng(4270, 4274, 4),
            *_rng(4276, 4279, 4),
            "7850",
            "99601",
            "99604",
            "V450",
            "V533",
        ),
    ),
    "valvular": (
        "Valvular disease",
        -1,
        ("0932", *_rng(394, 397), "424", *_rng(7463, 7466, 4), "V422", "V433"),
    ),
    "pulm_circ": (
        "Pulmonary circulation disorder",
        4,
        ("4150", "4151", "416", "4170", "4178", "4179"),
    ),
    "pvd": (
        "Peripheral vascular disease",
        2,
        ("0930", "4373", "440", "441", *_rng(4431, 4439, 4), "4471", "5571", "5579", "V434"),
    ),
    "hypertension": ("Hypertension", 0, ("401", *_rng(402, 405))),
    "paralysis": ("Paralysis", 7, ("3341", "342", "343", *_rng(3440, 3446, 4), "3449")),
    "neuro_other": (
        "Other neurological disorder",
        6,
        (
            "3319",
            "3320",
            "3321",
            "3334",
            "3335",
            "33392",
            "334",
            "335",
            "3362",
            "340",
            "341",
            "345",
            "3481",
            "3483",
            "7803",
            "7843",
        ),
    ),
    "chronic_pulmonary": (
        "Chronic pulmonary disease",
        3,
        ("4168", "4169", *_rng(490, 505), "5064", "5081", "5088"),
    ),
    "diabetes": ("Diabetes", 0, ("250",)),
    "hypothyroidism": ("Hypothyroidism", 0, ("2409", "243", "244", "2461", "2468")),
    "renal_failure": (
        "Renal failure",
        5,
        (
            "40301",
            "40311",
            "40391",
            "40402",
            "40403",
            "40412",
            "40413",
            "40492",
            "40493",
            "585",
            "586",
            "5880",
            "V420",
            "V451",
            "V56",
        ),
    ),
    "liver_disease": (
        "Liver disease",
        11,
        (
            "07022",
            "07023",
            "07032",
            "07033",
            "07044",
            "07054",
            "0706",
            "0709",
            "4560",
            "4561",
            "4562",
            "570",
            "571",
            *_rng(5722, 5728, 4),
            "5733",
            "5734",
            "5738",
            "5739",
            "V427",
        ),
    ),
    "peptic_ulcer": (
        "Peptic ulcer disease",
        0,
        ("5317", "5319", "5327", "5329", "5337", "5339", "5347", "5349"),
    ),
    "aids": ("HIV/AIDS", 0, ("042", "043", "044")),
    "lymphoma": ("Lymphoma", 9, ("200", "201", "202", "2030", "2386")),
    "metastatic_cancer": ("Metastatic cancer", 12, _rng(196, 199)),
    "solid_tumor": ("Solid tumour without metastasis", 4, (*_rng(140, 172), *_rng(174, 195))),
    "rheumatic": (
        "Rheumatoid arthritis / collagen vascular disease",
        0,
        (
            "446",
            "7010",
            *_rng(7100, 7104, 4),
            "7108",
            "7109",
            "7112",
            "714",
            "7193",
            "720",
            "725",
            "7285",
            "72889",
            "72930",
        ),
    ),
    "coagulopathy": ("Coagulopathy", 3, ("286", "2871", "2873", "2874", "2875")),
    "obesity": ("Obesity", -4, ("2780",)),
    "weight_loss": ("Weight loss", 6, (*_rng(260, 263), "7832", "7994")),
    "fluid_electrolyte": ("Fluid and electrolyte disorder", 5, ("2536", "276")),
    "blood_loss_anemia": ("Blood loss anaemia", -2, ("2800",)),
    "deficiency_anemia": ("Deficiency anaemia", -2, (*_rng(2801, 2809, 4), "281")),
    "alcohol_abuse": (
        "Alcohol abuse",
        0,
        (
            "2652",
            "2911",
            "2912",
            "2913",
            *_rng(2915, 2919, 4),
            "3030",
            "3039",
            "3050",
            "3575",
            "4255",
            "5353",
            *_rng(5710, 5713, 4),
            "980",
            "V113",
        ),
    ),
    "drug_abuse": ("Drug abuse", -7, ("292", "304", *_rng(3052, 3059, 4), "V6542")),
    "psychoses": (
        "Psychoses",
        0,
        ("2938", "295", "29604", "29614", "29644", "29654", "297", "298"),
    ),
    "depression": ("Depression", -3, ("2962", "2963", "2965", "3004", "309", "311")),
}
# Groups offered to the models as individual flags (the rest count towards the totals only).
ELIX_FLAGS = (
    "chf",
    "arrhythmia",
    "renal_failure",
    "liver_disease",
    "metastatic_cancer",
    "chronic_pulmonary",
    "diabetes",
    "fluid_electrolyte",
    "coagulopathy",
    "deficiency_anemia",
)

ICU_UNITS = ("MICU", "SICU", "CCU", "CSRU", "TSICU", "NICU")


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    unit: str
    source: str
    window: str
    kind: Kind = "numeric"
    tasks: tuple[str, ...] = TASK_NAMES
    # decimals a value is shown with; None: not a number to show (flags, categories). Numeric
    # features not given one count something and are shown as whole numbers.
    decimals: int | None = None
    # reference interval of a lab or vital value (`REFERENCE_RANGES`): widest (low, high) and
    # narrowest (core_low, core_high); None for every other feature
    low: float | None = None
    high: float | None = None
    core_low: float | None = None
    core_high: float | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.source.split(","))


_ADM = "current admission"
_LABWIN = "from 12 h before admission to the prediction time"
_BEFORE = "admissions before the current one"


def _catalogue() -> dict[str, Feature]:
    f: list[Feature] = [
        Feature(
            "age", "Age", "years", "PATIENTS,ADMISSIONS", "at admission (capped at 90)", decimals=0
        ),
        Feature("sex", "Sex", "", "PATIENTS", "static", "categorical"),
        Feature("ethnicity_group", "Ethnicity group", "", "ADMISSIONS", _ADM, "categorical"),
        Feature("insurance", "Insurance", "", "ADMISSIONS", _ADM, "categorical"),
        Feature("admission_type", "Admission type", "", "ADMISSIONS", _ADM, "categorical"),
        Feature("admission_location", "Admitted from", "", "ADMISSIONS", _ADM, "categorical"),
        Feature(
            "discharge_location",
            "Discharge destination",
            "",
            "ADMISSIONS",
            _ADM,
            "categorical",
            ("readmission",),
        ),
        Feature(
            "prior_adm_6m",
            "Admissions in the previous 6 months",
            "admissions",
            "ADMISSIONS",
            "6 months before admission",
        ),
        Feature(
            "prior_adm_12m",
            "Admissions in the previous 12 months",
            "admissions",
            "ADMISSIONS",
            "12 months before admission",
        ),
        Feature(
            "days_since_last_discharge",
            "Days since last discharge",
            "days",
            "ADMISSIONS",
            _BEFORE,
            decimals=1,
        ),
        Feature("prior_icu_stays", "ICU stays in earlier admissions", "stays", "ICUSTAYS", _BEFORE),
        Feature(
            "icu_stays_so_far",
            "ICU stays so far this admission",
            "stays",
            "ICUSTAYS",
            "current admission, started before the prediction time",
        ),
        Feature(
            "elix_count",
            "Number of Elixhauser comorbidities",
            "conditions",
            "DIAGNOSES_ICD",
            "current and earlier admissions (earlier only unless readmission)",
        ),
        Feature(
            "elix_vw_score",
            "Elixhauser comorbidity score (van Walraven)",
            "points",
            "DIAGNOSES_ICD",
            "current and earlier admissions (earlier only unless readmission)",
        ),
    ]
    for g in ELIX_FLAGS:
        f.append(
            Feature(
                f"elix_{g}",
                ELIXHAUSER[g][0],
                "",
                "DIAGNOSES_ICD",
                "current and earlier admissions (earlier only unless readmission)",
                "binary",
            )
        )
    f += [
        Feature(
            "n_diag_current",
            "Diagnoses coded this admission",
            "codes",
            "DIAGNOSES_ICD",
            "current admission (coded at discharge)",
            tasks=("readmission",),
        ),
        Feature(
            "n_proc_current",
            "Procedures coded this admission",
            "codes",
            "PROCEDURES_ICD",
            "current admission (coded at discharge)",
            tasks=("readmission",),
        ),
        Feature(
            "n_diag_prior",
            "Diagnoses coded in earlier admissions",
            "codes",
            "DIAGNOSES_ICD",
            _BEFORE,
        ),
        Feature(
            "n_meds",
            "Distinct medications prescribed",
            "drugs",
            "PRESCRIPTIONS",
            "current admission, started the day before the prediction time or earlier",
        ),
        Feature(
            "n_high_risk_med_classes",
            "High-alert medication classes prescribed",
            "classes",
            "PRESCRIPTIONS",
            "current admission (anticoagulant, insulin, opioid, benzodiazepine)",
        ),
    ]
    for cls, (label, _, _) in MED_CLASSES.items():
        f.append(
            Feature(
                f"med_{cls}",
                f"{label} prescribed",
                "",
                "PRESCRIPTIONS",
                "current admission, before the prediction time",
                "binary",
            )
        )
    for stem, (_, label, unit) in LABS.items():
        d = LAB_DECIMALS[stem]
        f += [
            Feature(f"lab_{stem}_last", f"{label} (last)", unit, "LABEVENTS", _LABWIN, decimals=d),
            Feature(f"lab_{stem}_min", f"{label} (lowest)", unit, "LABEVENTS", _LABWIN, decimals=d),
            Feature(
                f"lab_{stem}_max", f"{label} (highest)", unit, "LABEVENTS", _LABWIN, decimals=d
            ),
            Feature(
                f"lab_{stem}_n_abnormal",
                f"{label}: abnormal results",
                "results",
                "LABEVENTS",
                _LABWIN,
            ),
        ]
    f += [
        Feature(
            "n_positive_cultures",
            "Positive microbiology cultures",
            "organisms",
            "MICROBIOLOGYEVENTS",
            "current admission, specimens taken at least 72 h before the prediction time "
            "(when the organism is reported)",
        ),
        Feature(
            "n_transfers",
            "Ward/unit transfers",
            "transfers",
            "TRANSFERS",
            "current admission, before the prediction time",
        ),
        Feature(
            "n_icu_transfers",
            "Transfers into an ICU",
            "transfers",
            "TRANSFERS",
            "current admission, before the prediction time",
        ),
        Feature(
            "n_services",
            "Clinical services involved",
            "services",
            "SERVICES",
            "current admission, before the prediction time",
        ),
        Feature(
            "last_service",
            "Current clinical service",
            "",
            "SERVICES",
            "current admission, before the prediction time",
            "categorical",
        ),
        Feature(
            "los_so_far_days",
            "Length of stay",
            "days",
            "ADMISSIONS",
            "admission to discharge",
            tasks=("readmission",),
            decimals=1,
        ),
        Feature(
            "hours_before_icu",
            "Hours in hospital before ICU admission",
            "hours",
            "ADMISSIONS,ICUSTAYS",
            "admission to ICU intime",
            tasks=("icu_mortality",),
            decimals=1,
        ),
        Feature(
            "icu_first_careunit",
            "ICU type",
            "",
            "ICUSTAYS",
            "current ICU stay",
            "categorical",
            ("icu_mortality",),
        ),
    ]
    for stem, (_, label, unit) in VITALS.items():
        f.append(
            Feature(
                f"vital_{stem}_last",
                f"{label} (last)",
                unit,
                "CHARTEVENTS",
                "24 h before the prediction time",
                decimals=VITAL_DECIMALS[stem],
            )
        )
    default_unit = {"binary": "yes/no", "categorical": "category"}
    f = [
        replace(
            x,
            unit=x.unit or default_unit.get(x.kind, ""),
            decimals=x.decimals if x.decimals is not None or x.kind != "numeric" else 0,
        )
        for x in f
    ]
    f = [_with_reference(x) for x in f]
    return {x.name: x for x in f}


def _with_reference(x: Feature) -> Feature:
    """A lab's last/lowest/highest value or a vital sign with its reference interval (not the
    count of abnormal results, which is no value of the lab)."""
    m = re.match(r"^((?:lab|vital)_\w+?)_(?:last|min|max)$", x.name)
    if m is None or m.group(1) not in REFERENCE_RANGES:
        return x
    low, high, core_low, core_high = REFERENCE_RANGES[m.group(1)]
    return replace(x, low=low, high=high, core_low=core_low, core_high=core_high)


FEATURES: dict[str, Feature] = _catalogue()


def display_decimals(feature: str) -> int | None:
    """The decimals a value of `feature` is shown with: the catalogue's, the lab's for an event
    concept of the temporal model (`lab_creatinine`), else None (no known precision)."""
    if feature in FEATURES:
        return FEATURES[feature].decimals
    if feature.startswith("lab_"):
        return LAB_DECIMALS.get(feature.removeprefix("lab_"))
    return None


def reference_range(feature: str) -> tuple[float, float, float, float] | None:
    """(low, high, core low, core high) of a feature's value (`REFERENCE_RANGES`): a catalogue
    lab or vital feature's, or an event concept's of the temporal model (`lab_creatinine`); None
    for any other (counts, flags, categories)."""
    f = FEATURES.get(feature)
    if f is not None:
        if f.low is None or f.high is None:
            return None
        core_low = f.core_low if f.core_low is not None else f.low
        core_high = f.core_high if f.core_high is not None else f.high
        return f.low, f.high, core_low, core_high
    return REFERENCE_RANGES.get(feature)


def features_for(task: str) -> list[Feature]:
    """The catalogue entries a task uses, in catalogue order."""
    return [f for f in FEATURES.values() if task in f.tasks]
