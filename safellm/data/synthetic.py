"""A seeded, deterministic, MIMIC-III-shaped synthetic hospital.

`synthesize(out_dir, patients, seed)` writes the 14 tables the project reads as `<TABLE>.csv.gz`:
PATIENTS, ADMISSIONS, ICUSTAYS, LABEVENTS, DIAGNOSES_ICD, PROCEDURES_ICD, PRESCRIPTIONS,
MICROBIOLOGYEVENTS, TRANSFERS, SERVICES, NOTEEVENTS and the dictionaries D_LABITEMS,
D_ICD_DIAGNOSES, D_ICD_PROCEDURES (listing only what the generator uses). Headers are the demo
release's lower-case column lists, timestamps `YYYY-MM-DD HH:MM:SS` in the years 2100-2200, nulls
empty, ids in MIMIC's ranges. No MIMIC row is used: only public coding-system facts are embedded
(ICD-9-CM codes and titles, LABEVENTS item ids with LOINC codes and units, a few microbiology item
ids, drug names).

Same `(patients, seed, batch_size)` gives byte-identical files: patients are made in batches, each
from its own `numpy.random.Generator` seeded with `SeedSequence(seed, spawn_key=(batch,))`, and
streamed into gzip files in a temporary sibling folder that replaces `out_dir` only at the end.
Full MIMIC size (46,000 patients, ~27 M lab rows) takes about a minute and < 1 GB of memory.

Generative model (vectorised over a batch of patients)
------------------------------------------------------
Patient: sex; 10 % NEWBORN (NICU) patients; adult age ~ N(63, 17) clipped to 18..100 (90 and over
get a date of birth ~300 years before the first admission, as in MIMIC); latent frailty
z ~ N(0, 1) + 0.025 (age - 63); 17 chronic conditions drawn from logistic(a + b age + c z) with
couplings (diabetes -> CKD, alcohol -> cirrhosis, CAD -> CHF, CHF -> atrial fibrillation), each with
one fixed ICD-9 code (CHF 4280/42822/42832, CKD 585x/40391, cirrhosis 5715/5712, metastases
197x/1983/1985, diabetes 250xx, COPD 496/4928, AF 42731, anaemia 2859, ...); per-patient baseline
lab values (CKD raises creatinine, BUN, phosphate; cirrhosis lowers platelets and albumin and raises
INR and bilirubin; anaemia, CKD and cancer lower haemoglobin).

Admission: a reason (sepsis, pneumonia, CHF or COPD exacerbation, GI bleed, MI, stroke, AKI, hip
fracture, respiratory failure; elective CABG, valve, PCI, joint replacement, colectomy; newborn)
weighted by the comorbidities; severity s = 0.5 z + reason effect + 0.25 (age - 65) / 15 + N(0, 0.8)
and complications (septic shock, AKI, UTI, pneumonia, respiratory failure, ventilation). Labs:
    value(t) = baseline + acute * exp(-t / tau)    (log scale for creatinine, BUN, WBC, lactate...)
with acute deviations from s and the complications (sepsis: WBC and lactate up, bicarbonate down;
GI bleed and surgery: haemoglobin down; AKI: creatinine up), so first-day labs already show the
severity. Some admissions (more with CKD, CHF, AKI, high s) carry a RISING creatinine over the last
48 h of the stay (+25..80 %, also seen in BUN and phosphate).

ICU and death: nearly every admission has an ICU stay (9 % a second one), care unit by reason. In-
hospital death: logit p = -3.2 + 0.55 clip(lactate_d1 - 2, -1, 8) + 0.035 (age - 65)
    + 0.6 ln(creatinine_d1) + 0.10 max(0, 22 - bicarbonate_d1) + 0.8 sepsis + 0.6 shock
    + care unit (MICU +0.3, CSRU -1.2, ...) + 0.4 metastatic cancer + 0.4 liver disease + 0.15 z,
minus 1.5 outside the ICU, 0.3 % for newborns (d1 = latent value 6 h after admission). 88 % of
deaths happen in the ICU (outtime = deathtime = dischtime); a terminal day raises lactate and
potassium and lowers bicarbonate. About 10 % of ICU stays of >= 24 h end with a death in the
ICU (~12 % with a death in hospital).

Length of stay: pre-ICU delay + ICU stay(s) + post-ICU ward time, each log-normal with log-means
rising with s, sepsis, respiratory failure, frailty, age and elective surgery (one log-normal LOS
without ICU): median ~6 days, mean ~8.

Discharge and drugs: survivors go HOME, HOME HEALTH CARE, SNF, REHAB/DISTINCT PART HOSP, LONG TERM
CARE HOSPITAL, HOSPICE-HOME, ... by a multinomial logit in age, frailty, LOS, orthopaedics, stroke,
cancer. Drugs follow the reason and comorbidities (vancomycin, piperacillin-tazobactam for sepsis,
norepinephrine for shock, furosemide for CHF, insulin for diabetes, warfarin or a heparin drip for
AF and MI, opioids after surgery, ...); high-risk classes: anticoagulants, insulin, opioids.

30-day readmission: after an adult survivor's discharge an EMERGENCY (88 %) or URGENT admission
follows within 1-30 days with probability sigmoid(r),
    r = -4.6 + 0.12 Elixhauser count + 0.45 (CHF + renal failure + COPD + metastatic cancer)
        + 0.35 min(admissions in the previous 12 months, 4) + 0.30 clip(11 - Hb_end, 0, 5)
        + 0.55 clip(ln(creatinine_end / 1.1), 0, 2) + 0.012 clip(BUN_end - 20, 0, 80)
        + 1.1 clip(creatinine rise over the last 48 h in mg/dL, 0, 2)
        + discharge location (SNF/rehab/LTC +0.45, home health +0.2, against advice +0.9,
          hospice -1.0) + 0.22 high-risk drug classes + 0.25 ln(1 + LOS) + 0.012 (age - 65),
with the comorbidities as coded on that admission and latent end-of-stay labs: ~12 % of eligible
admissions. Otherwise 2 % get a planned ELECTIVE admission within 30 days, and
sigmoid(-1.95 + 0.3 z + 0.25 major comorbidities) a later one after > 30 days (EMERGENCY, ELECTIVE
or URGENT); ~1.25 admissions per patient. Patients leaving alive may die later (PATIENTS.dod from
the SSN source only) with a probability in age, frailty, cancer, CHF, CKD, COPD (hospice: soon).

Other tables: lab panels (CBC, chemistry, Mg/Ca/Phos, lactate, albumin, coagulation, liver tests)
at admission, ~2 a day on the ward and ~4 a day in the ICU, 1-2 days before discharge and on the
last day, plus outpatient panels (empty hadm_id) in the year around the admissions; `flag` is
'abnormal' outside the reference range. Cultures (blood, urine, sputum, MRSA screen, stool) turn
positive more often with sepsis, UTI, pneumonia and list antibiotic sensitivities. TRANSFERS follow
the ward/ICU path of the stay, SERVICES the reason. NOTEEVENTS: one discharge summary per admission
(chartdate = discharge date, no charttime) and nursing, physician and radiology notes charted during
the stay, written from the patient's own record (reason, comorbidities, lab values drawn for them,
drugs, course, disposition) with MIMIC's de-identification markers (`[**Known lastname 123**]`,
`[**Hospital1 18**]`, `[**2150-3-4**]`).
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

__all__ = ["TABLE_COLUMNS", "SynthSummary", "synthesize"]

Arr = npt.NDArray[Any]

# --------------------------------------------------------------------------------------------
# Output tables: exactly the demo release's columns, in its order.
# --------------------------------------------------------------------------------------------

# The demo release's header of each table (lower case, in its order).
_HEADERS: dict[str, str] = {
    "PATIENTS": "row_id,subject_id,gender,dob,dod,dod_hosp,dod_ssn,expire_flag",
    "ADMISSIONS": (
        "row_id,subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,"
        "admission_location,discharge_location,insurance,language,religion,marital_status,"
        "ethnicity,edregtime,edouttime,diagnosis,hospital_expire_flag,has_chartevents_data"
    ),
    "ICUSTAYS": (
        "row_id,subject_id,hadm_id,icustay_id,dbsource,first_careunit,last_careunit,first_wardid,"
        "last_wardid,intime,outtime,los"
    ),
    "LABEVENTS": "row_id,subject_id,hadm_id,itemid,charttime,value,valuenum,valueuom,flag",
    "DIAGNOSES_ICD": "row_id,subject_id,hadm_id,seq_num,icd9_code",
    "PROCEDURES_ICD": "row_id,subject_id,hadm_id,seq_num,icd9_code",
    "PRESCRIPTIONS": (
        "row_id,subject_id,hadm_id,icustay_id,startdate,enddate,drug_type,drug,drug_name_poe,"
        "drug_name_generic,formulary_drug_cd,gsn,ndc,prod_strength,dose_val_rx,dose_unit_rx,"
        "form_val_disp,form_unit_disp,route"
    ),
    "MICROBIOLOGYEVENTS": (
        "row_id,subject_id,hadm_id,chartdate,charttime,spec_itemid,spec_type_desc,org_itemid,"
        "org_name,isolate_num,ab_itemid,ab_name,dilution_text,dilution_comparison,dilution_value,"
        "interpretation"
    ),
    "TRANSFERS": (
        "row_id,subject_id,hadm_id,icustay_id,dbsource,eventtype,prev_careunit,curr_careunit,"
        "prev_wardid,curr_wardid,intime,outtime,los"
    ),
    "SERVICES": "row_id,subject_id,hadm_id,transfertime,prev_service,curr_service",
    "NOTEEVENTS": (
        "row_id,subject_id,hadm_id,chartdate,charttime,storetime,category,description,cgid,"
        "iserror,text"
    ),
    "D_LABITEMS": "row_id,itemid,label,fluid,category,loinc_code",
    "D_ICD_DIAGNOSES": "row_id,icd9_code,short_title,long_title",
    "D_ICD_PROCEDURES": "row_id,icd9_code,short_title,long_title",
}
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(h.split(",")) for t, h in _HEADERS.items()}


class SynthSummary(BaseModel):
    """What synthesize() wrote: counts per table (upper-case table name -> rows)."""

    out_dir: Path
    patients: int
    admissions: int
    icustays: int
    rows: dict[str, int]
    seed: int


# --------------------------------------------------------------------------------------------
# Embedded coding-system facts (ICD-9-CM codes and titles, lab item ids, LOINC codes, units).
# --------------------------------------------------------------------------------------------

_DX: dict[str, tuple[str, str]] = {
    "0389": ("Septicemia NOS", "Unspecified septicemia"),
    "99591": ("Sepsis", "Sepsis"),
    "99592": ("Severe sepsis", "Severe sepsis"),
    "78552": ("Septic shock", "Septic shock"),
    "486": ("Pneumonia, organism NOS", "Pneumonia, organism unspecified"),
    "5070": ("Food/vomit pneumonitis", "Pneumonitis due to inhalation of food or vomitus"),
    "5849": ("Acute kidney failure NOS", "Acute kidney failure, unspecified"),
    "5990": ("Urin tract infection NOS", "Urinary tract infection, site not specified"),
    "51881": ("Acute respiratry failure", "Acute respiratory failure"),
    "5789": ("Gastrointest hemorr NOS", "Hemorrhage of gastrointestinal tract, unspecified"),
    "41071": ("Subendo infarct, initial", "Subendocardial infarction, initial episode of care"),
    "43491": (
        "Crbl art ocl NOS w infrc",
        "Cerebral artery occlusion, unspecified with cerebral infarction",
    ),
    "82021": (
        "Intertrochanteric fx-cl",
        "Closed fracture of intertrochanteric section of neck of femur",
    ),
    "42833": ("Ac on chr diast hrt fail", "Acute on chronic diastolic heart failure"),
    "49121": (
        "Obs chr bronc w(ac) exac",
        "Obstructive chronic bronchitis with (acute) exacerbation",
    ),
    "41401": ("Crnry athrscl natve vssl", "Coronary atherosclerosis of native coronary artery"),
    "4241": ("Aortic valve disorder", "Aortic valve disorders"),
    "71535": (
        "Loc osteoarth NOS-pelvis",
        "Osteoarthrosis, localized, not specified whether primary or secondary, pelvic region "
        "and thigh",
    ),
    "71536": (
        "Loc osteoarth NOS-l/leg",
        "Osteoarthrosis, localized, not specified whether primary or secondary, lower leg",
    ),
    "1539": ("Malignant neo colon NOS", "Malignant neoplasm of colon, unspecified site"),
    "1629": ("Mal neo bronch/lung NOS", "Malignant neoplasm of bronchus and lung, unspecified"),
    "1749": ("Malign neopl breast NOS", "Malignant neoplasm of breast (female), unspecified"),
    "185": ("Malign neopl prostate", "Malignant neoplasm of prostate"),
    "4280": ("CHF NOS", "Congestive heart failure, unspecified"),
    "42822": ("Chr systolic hrt failure", "Chronic systolic heart failure"),
    "42832": ("Chr diastolic hrt fail", "Chronic diastolic heart failure"),
    "5859": ("Chronic kidney dis NOS", "Chronic kidney disease, unspecified"),
    "5853": ("Chr kidney dis stage III", "Chronic kidney disease, Stage III (moderate)"),
    "5854": ("Chr kidney dis stage IV", "Chronic kidney disease, Stage IV (severe)"),
    "5856": ("End stage renal disease", "End stage renal disease"),
    "40391": (
        "Hyp kid NOS w cr kid V",
        "Hypertensive chronic kidney disease, unspecified, with chronic kidney disease stage V "
        "or end stage renal disease",
    ),
    "5715": ("Cirrhosis of liver NOS", "Cirrhosis of liver without mention of alcohol"),
    "5712": ("Alcohol cirrhosis liver", "Alcoholic cirrhosis of liver"),
    "5723": ("Portal hypertension", "Portal hypertension"),
    "1970": ("Secondary malig neo lung", "Secondary malignant neoplasm of lung"),
    "1977": ("Second malig neo liver", "Malignant neoplasm of liver, secondary"),
    "1983": ("Sec mal neo brain/spine", "Secondary malignant neoplasm of brain and spinal cord"),
    "1985": ("Secondary malig neo bone", "Secondary malignant neoplasm of bone and bone marrow"),
    "25000": (
        "DMII wo cmp nt st uncntr",
        "Diabetes mellitus without mention of complication, type II or unspecified type, not "
        "stated as uncontrolled",
    ),
    "25001": (
        "DMI wo cmp nt st uncntrl",
        "Diabetes mellitus without mention of complication, type I [juvenile type], not stated "
        "as uncontrolled",
    ),
    "25040": (
        "DMII renl nt st uncntrld",
        "Diabetes with renal manifestations, type II or unspecified type, not stated as "
        "uncontrolled",
    ),
    "25060": (
        "DMII neuro nt st uncntrl",
        "Diabetes with neurological manifestations, type II or unspecified type, not stated as "
        "uncontrolled",
    ),
    "496": ("Chr airway obstruct NEC", "Chronic airway obstruction, not elsewhere classified"),
    "4928": ("Emphysema NEC", "Other emphysema"),
    "42731": ("Atrial fibrillation", "Atrial fibrillation"),
    "42732": ("Atrial flutter", "Atrial flutter"),
    "4271": ("Parox ventric tachycard", "Paroxysmal ventricular tachycardia"),
    "2859": ("Anemia NOS", "Anemia, unspecified"),
    "2800": ("Chr blood loss anemia", "Iron deficiency anemia secondary to blood loss (chronic)"),
    "28529": ("Anemia-other chronic dis", "Anemia of other chronic disease"),
    "2851": ("Ac posthemorrhag anemia", "Acute posthemorrhagic anemia"),
    "2761": ("Hyposmolality", "Hyposmolality and/or hyponatremia"),
    "2762": ("Acidosis", "Acidosis"),
    "2767": ("Hyperpotassemia", "Hyperpotassemia"),
    "2768": ("Hypopotassemia", "Hypopotassemia"),
    "27651": ("Dehydration", "Dehydration"),
    "2869": ("Coagulat defect NEC/NOS", "Other and unspecified coagulation defects"),
    "2875": ("Thrombocytopenia NOS", "Thrombocytopenia, unspecified"),
    "4019": ("Hypertension NOS", "Unspecified essential hypertension"),
    "2724": ("Hyperlipidemia NEC/NOS", "Other and unspecified hyperlipidemia"),
    "2449": ("Hypothyroidism NOS", "Unspecified acquired hypothyroidism"),
    "311": ("Depressive disorder NEC", "Depressive disorder, not elsewhere classified"),
    "27800": ("Obesity NOS", "Obesity, unspecified"),
    "30500": ("Alcohol abuse-unspec", "Alcohol abuse, unspecified"),
    "4439": ("Periph vascular dis NOS", "Peripheral vascular disease, unspecified"),
    "2639": ("Protein-cal malnutr NOS", "Unspecified protein-calorie malnutrition"),
    "3051": ("Tobacco use disorder", "Tobacco use disorder"),
    "53081": ("Esophageal reflux", "Esophageal reflux"),
    "73300": ("Osteoporosis NOS", "Osteoporosis, unspecified"),
    "5119": ("Pleural effusion NOS", "Unspecified pleural effusion"),
    "78097": ("Altered mental status", "Altered mental status"),
    "V5861": ("Long-term use anticoagul", "Long-term (current) use of anticoagulants"),
    "V5867": ("Long-term use of insulin", "Long-term (current) use of insulin"),
    "V4581": ("Aortocoronary bypass", "Aortocoronary bypass status"),
    "V4582": ("Status-post ptca", "Percutaneous transluminal coronary angioplasty status"),
    "V1254": (
        "Hx TIA/stroke w/o resid",
        "Personal history of transient ischemic attack (TIA), and cerebral infarction without "
        "residual deficits",
    ),
    "V1582": ("History of tobacco use", "Personal history of tobacco use"),
    "V3000": (
        "Single lb in-hosp w/o cs",
        "Single liveborn, born in hospital, delivered without mention of cesarean section",
    ),
    "V3001": (
        "Single lb in-hosp w cs",
        "Single liveborn, born in hospital, delivered by cesarean section",
    ),
    "V053": (
        "Need prphyl vc vrl hepat",
        "Need for prophylactic vaccination and inoculation against viral hepatitis",
    ),
    "V290": ("NB obsrv suspct infect", "Observation for suspected infectious condition"),
    "7746": ("Fetal/neonatal jaund NOS", "Unspecified fetal and neonatal jaundice"),
    "76519": ("Preterm NEC 2500+g", "Other preterm infants, 2,500 grams and over"),
    "7706": ("NB transitory tachypnea", "Transitory tachypnea of newborn"),
}

_PX: dict[str, tuple[str, str]] = {
    "9604": ("Insert endotracheal tube", "Insertion of endotracheal tube"),
    "9671": (
        "Cont inv mec ven <96 hrs",
        "Continuous invasive mechanical ventilation for less than 96 consecutive hours",
    ),
    "9672": (
        "Cont inv mec ven 96+ hrs",
        "Continuous invasive mechanical ventilation for 96 consecutive hours or more",
    ),
    "9390": ("Non-invasive mech vent", "Non-invasive mechanical ventilation"),
    "3893": ("Venous cath NEC", "Venous catheterization, not elsewhere classified"),
    "3891": ("Arterial catheterization", "Arterial catheterization"),
    "9904": ("Packed cell transfusion", "Transfusion of packed cells"),
    "3995": ("Hemodialysis", "Hemodialysis"),
    "3615": ("1 int mam-cor art bypass", "Single internal mammary-coronary artery bypass"),
    "3612": ("Aortocor bypas-2 cor art", "(Aorto)coronary bypass of two coronary arteries"),
    "3613": ("Aortocor bypas-3 cor art", "(Aorto)coronary bypass of three coronary arteries"),
    "3961": (
        "Extracorporeal circulat",
        "Extracorporeal circulation auxiliary to open heart surgery",
    ),
    "3521": (
        "Opn/oth rep aort vlv-tis",
        "Open and other replacement of aortic valve with tissue graft",
    ),
    "3522": ("Opn/oth rep aortic valve", "Open and other replacement of aortic valve"),
    "3722": ("Left heart cardiac cath", "Left heart cardiac catheterization"),
    "8856": ("Coronar arteriogr-2 cath", "Coronary arteriography using two catheters"),
    "0066": ("PTCA", "Percutaneous transluminal coronary angioplasty [PTCA]"),
    "3607": ("Ins drug-elut coronry st", "Insertion of drug-eluting coronary artery stent(s)"),
    "8872": ("Dx ultrasound-heart", "Diagnostic ultrasound of heart"),
    "4513": ("Sm bowel endoscopy NEC", "Other endoscopy of small intestine"),
    "4516": ("Egd with closed biopsy", "Esophagogastroduodenoscopy [EGD] with closed biopsy"),
    "8154": ("Total knee replacement", "Total knee replacement"),
    "8151": ("Total hip replacement", "Total hip replacement"),
    "7915": (
        "Closed red-int fix femur",
        "Closed reduction of fracture with internal fixation, femur",
    ),
    "7935": (
        "Open reduc-int fix femur",
        "Open reduction of fracture with internal fixation, femur",
    ),
    "4573": ("Opn rt hemicolectomy NEC", "Open and other right hemicolectomy"),
    "4575": ("Opn lft hemicolectmy NEC", "Open and other left hemicolectomy"),
    "966": ("Entral infus nutrit sub", "Enteral infusion of concentrated nutritional substances"),
    "9915": (
        "Parent infus nutrit sub",
        "Parenteral infusion of concentrated nutritional substances",
    ),
    "3404": ("Insert intercostal cath", "Insertion of intercostal catheter for drainage"),
    "5491": ("Percu abdominal drainage", "Percutaneous abdominal drainage"),
    "311": ("Temporary tracheostomy", "Temporary tracheostomy"),
    "4311": ("Percu endosc gastrostomy", "Percutaneous [endoscopic] gastrostomy [PEG]"),
    "9925": (
        "Inject ca chemother NEC",
        "Injection or infusion of cancer chemotherapeutic substance",
    ),
    "9955": ("Vaccination NEC", "Prophylactic administration of vaccine against other diseases"),
    "9983": ("Other phototherapy", "Other phototherapy"),
    "640": ("Circumcision", "Circumcision"),
}


class _Lab(NamedTuple):
    key: str
    itemid: int
    label: str
    fluid: str
    category: str
    loinc: str
    unit: str | None
    lo: float
    hi: float
    dec: int
    noise_kind: str  # "mul": log-normal CV, "add": normal SD
    noise: float
    vmin: float
    vmax: float
    short: str  # as written in MIMIC discharge summaries ("Creat", "UreaN", ...)


_LABS: tuple[_Lab, ...] = (
    _Lab("wbc", 51301, "White Blood Cells", "Blood", "Hematology", "804-5", "K/uL",
         4.0, 11.0, 1, "mul", 0.08, 0.1, 150.0, "WBC"),
    _Lab("hgb", 51222, "Hemoglobin", "Blood", "Hematology", "718-7", "g/dL",
         12.0, 16.0, 1, "add", 0.3, 3.0, 22.0, "Hgb"),
    _Lab("hct", 51221, "Hematocrit", "Blood", "Hematology", "4544-3", "%",
         36.0, 48.0, 1, "add", 0.8, 10.0, 65.0, "Hct"),
    _Lab("plt", 51265, "Platelet Count", "Blood", "Hematology", "777-3", "K/uL",
         150.0, 440.0, 0, "mul", 0.07, 5.0, 1500.0, "Plt Ct"),
    _Lab("na", 50983, "Sodium", "Blood", "Chemistry", "2951-2", "mEq/L",
         133.0, 145.0, 0, "add", 1.3, 105.0, 175.0, "Na"),
    _Lab("k", 50971, "Potassium", "Blood", "Chemistry", "2823-3", "mEq/L",
         3.3, 5.1, 1, "add", 0.22, 2.0, 8.5, "K"),
    _Lab("cl", 50902, "Chloride", "Blood", "Chemistry", "2075-0", "mEq/L",
         96.0, 108.0, 0, "add", 1.3, 70.0, 140.0, "Cl"),
    _Lab("hco3", 50882, "Bicarbonate", "Blood", "Chemistry", "1963-8", "mEq/L",
         22.0, 32.0, 0, "add", 1.2, 5.0, 50.0, "HCO3"),
    _Lab("bun", 51006, "Urea Nitrogen", "Blood", "Chemistry", "3094-0", "mg/dL",
         6.0, 20.0, 0, "mul", 0.07, 2.0, 250.0, "UreaN"),
    _Lab("cr", 50912, "Creatinine", "Blood", "Chemistry", "2160-0", "mg/dL",
         0.4, 1.1, 1, "mul", 0.05, 0.1, 20.0, "Creat"),
    _Lab("glu", 50931, "Glucose", "Blood", "Chemistry", "2345-7", "mg/dL",
         70.0, 105.0, 0, "mul", 0.18, 20.0, 1200.0, "Glucose"),
    _Lab("ag", 50868, "Anion Gap", "Blood", "Chemistry", "1863-0", "mEq/L",
         8.0, 20.0, 0, "add", 0.0, 0.0, 45.0, "AnGap"),
    _Lab("mg", 50960, "Magnesium", "Blood", "Chemistry", "2601-3", "mg/dL",
         1.6, 2.6, 1, "add", 0.12, 0.7, 5.0, "Mg"),
    _Lab("ca", 50893, "Calcium, Total", "Blood", "Chemistry", "2000-8", "mg/dL",
         8.4, 10.3, 1, "add", 0.25, 5.0, 14.0, "Calcium"),
    _Lab("phos", 50970, "Phosphate", "Blood", "Chemistry", "2777-1", "mg/dL",
         2.7, 4.5, 1, "mul", 0.08, 0.5, 15.0, "Phos"),
    _Lab("lac", 50813, "Lactate", "Blood", "Blood Gas", "32693-4", "mmol/L",
         0.5, 2.0, 1, "mul", 0.1, 0.3, 25.0, "Lactate"),
    _Lab("alb", 50862, "Albumin", "Blood", "Chemistry", "1751-7", "g/dL",
         3.4, 4.8, 1, "add", 0.12, 1.0, 5.5, "Albumin"),
    _Lab("inr", 51237, "INR(PT)", "Blood", "Hematology", "5895-7", None,
         0.9, 1.1, 1, "mul", 0.05, 0.8, 12.0, "INR(PT)"),
    _Lab("pt", 51274, "PT", "Blood", "Hematology", "5902-2", "sec",
         10.4, 13.4, 1, "add", 0.35, 9.0, 120.0, "PT"),
    _Lab("ptt", 51275, "PTT", "Blood", "Hematology", "3173-2", "sec",
         22.0, 35.0, 1, "mul", 0.08, 18.0, 150.0, "PTT"),
    _Lab("alt", 50861, "Alanine Aminotransferase (ALT)", "Blood", "Chemistry", "1742-6", "IU/L",
         0.0, 40.0, 0, "mul", 0.1, 3.0, 8000.0, "ALT"),
    _Lab("ast", 50878, "Asparate Aminotransferase (AST)", "Blood", "Chemistry", "1920-8", "IU/L",
         0.0, 40.0, 0, "mul", 0.1, 3.0, 8000.0, "AST"),
    _Lab("bili", 50885, "Bilirubin, Total", "Blood", "Chemistry", "1975-2", "mg/dL",
         0.0, 1.5, 1, "mul", 0.08, 0.1, 40.0, "TotBili"),
)  # fmt: skip
_LAB_IDX = {lab.key: i for i, lab in enumerate(_LABS)}
_GROUPS: dict[str, tuple[str, ...]] = {
    "CBC": ("wbc", "hgb", "hct", "plt"),
    "CHEM": ("na", "k", "cl", "hco3", "bun", "cr", "glu", "ag"),
    "MCP": ("mg", "ca", "phos"),
    "LAC": ("lac",),
    "ALB": ("alb",),
    "COAG": ("inr", "pt", "ptt"),
    "LFT": ("alt", "ast", "bili"),
}


class _Cond(NamedTuple):
    key: str
    codes: tuple[str, ...]
    code_p: tuple[float, ...]
    a: float
    b_age: float
    c_frail: float
    elix: bool


_CONDS: tuple[_Cond, ...] = (
    _Cond("ALCOHOL", ("30500",), (1.0,), -2.9, -0.5, 0.2, True),
    _Cond("DIAB", ("25000", "25001", "25040", "25060"), (0.7, 0.08, 0.12, 0.1),
          -1.25, 0.1, 0.3, True),
    _Cond("CAD", ("41401",), (1.0,), -1.3, 0.5, 0.2, False),
    _Cond("HTN", ("4019",), (1.0,), -0.2, 0.4, 0.1, True),
    _Cond("HLD", ("2724",), (1.0,), -1.0, 0.2, 0.0, False),
    _Cond("RENAL", ("5859", "5853", "5854", "5856", "40391"), (0.35, 0.25, 0.12, 0.18, 0.10),
          -2.4, 0.35, 0.45, True),
    _Cond("LIVER", ("5715", "5712"), (0.6, 0.4), -3.1, -0.2, 0.4, True),
    _Cond("CHF", ("4280", "42822", "42832"), (0.5, 0.25, 0.25), -1.8, 0.5, 0.5, True),
    _Cond("ARRHY", ("42731", "42732", "4271"), (0.8, 0.12, 0.08), -1.6, 0.7, 0.3, True),
    _Cond("COPD", ("496", "4928"), (0.8, 0.2), -2.2, 0.3, 0.4, True),
    _Cond("METS", ("1970", "1977", "1983", "1985"), (0.35, 0.3, 0.15, 0.2), -3.0, 0.1, 0.5, True),
    _Cond("ANEMIA", ("2859", "2800", "28529"), (0.6, 0.2, 0.2), -2.1, 0.2, 0.5, True),
    _Cond("HYPOTHY", ("2449",), (1.0,), -2.6, 0.3, 0.1, True),
    _Cond("DEPRESS", ("311",), (1.0,), -2.5, -0.1, 0.2, True),
    _Cond("OBESITY", ("27800",), (1.0,), -2.8, -0.2, 0.1, True),
    _Cond("PVD", ("4439",), (1.0,), -3.0, 0.4, 0.3, True),
    _Cond("MALNUT", ("2639",), (1.0,), -3.6, 0.3, 0.6, True),
)  # fmt: skip
_CI = {c.key: i for i, c in enumerate(_CONDS)}
_COUPLING: dict[str, tuple[tuple[str, float], ...]] = {
    "RENAL": (("DIAB", 0.6), ("HTN", 0.4)),
    "LIVER": (("ALCOHOL", 1.6),),
    "CHF": (("CAD", 0.6), ("HTN", 0.2)),
    "ARRHY": (("CHF", 0.5),),
    "PVD": (("DIAB", 0.5),),
}
_MAJOR = ("CHF", "RENAL", "COPD", "METS")
_PRIMARY_CANCER = ("1629", "1749", "1539", "185")  # lung, breast, colon, prostate

_WORDS: dict[str, str] = {
    "4280": "congestive heart failure",
    "42822": "chronic systolic heart failure (EF 30%)",
    "42832": "diastolic heart failure",
    "5859": "chronic kidney disease",
    "5853": "CKD stage III",
    "5854": "CKD stage IV",
    "5856": "ESRD on hemodialysis",
    "40391": "hypertensive ESRD on HD",
    "5715": "cirrhosis",
    "5712": "alcoholic cirrhosis",
    "1970": "metastatic cancer to the lung",
    "1977": "metastatic cancer to the liver",
    "1983": "metastatic cancer to the brain",
    "1985": "metastatic cancer to the bone",
    "25000": "type 2 diabetes mellitus",
    "25001": "type 1 diabetes mellitus",
    "25040": "diabetes with nephropathy",
    "25060": "diabetes with neuropathy",
    "496": "COPD",
    "4928": "emphysema",
    "42731": "atrial fibrillation",
    "42732": "atrial flutter",
    "4271": "paroxysmal ventricular tachycardia",
    "2859": "chronic anemia",
    "2800": "iron deficiency anemia",
    "28529": "anemia of chronic disease",
    "4019": "hypertension",
    "2724": "hyperlipidemia",
    "41401": "coronary artery disease",
    "2449": "hypothyroidism",
    "311": "depression",
    "27800": "obesity",
    "30500": "alcohol abuse",
    "4439": "peripheral vascular disease",
    "2639": "malnutrition",
    "1629": "lung cancer",
    "1749": "breast cancer",
    "1539": "colon cancer",
    "185": "prostate cancer",
}


class _Reason(NamedTuple):
    key: str
    texts: tuple[str, ...]
    dx: str
    services: tuple[str, ...]
    service_p: tuple[float, ...]
    careunit: str
    sev: float
    p_icu: float
    surgical: bool
    w_emerg: float
    w_elect: float
    words: str  # discharge-summary wording
    complaint: str


_REASONS: tuple[_Reason, ...] = (
    _Reason("SEPSIS", ("SEPSIS", "FEVER", "HYPOTENSION", "UROSEPSIS"), "0389", ("MED", "OMED"),
            (0.9, 0.1), "MICU", 0.9, 0.98, False, 0.15, 0.0, "sepsis", "fever and hypotension"),
    _Reason("PNEUMONIA", ("PNEUMONIA", "SHORTNESS OF BREATH", "HYPOXIA"), "486", ("MED",), (1.0,),
            "MICU", 0.5, 0.97, False, 0.13, 0.0, "community acquired pneumonia",
            "cough, fever and shortness of breath"),
    _Reason("CHF_EXAC", ("CONGESTIVE HEART FAILURE", "SHORTNESS OF BREATH", "DYSPNEA"), "4280",
            ("CMED", "MED"), (0.85, 0.15), "CCU", 0.5, 0.96, False, 0.10, 0.0,
            "acute on chronic congestive heart failure", "dyspnea on exertion and leg swelling"),
    _Reason("COPD_EXAC", ("COPD EXACERBATION", "SHORTNESS OF BREATH"), "49121", ("MED",), (1.0,),
            "MICU", 0.4, 0.96, False, 0.06, 0.0, "COPD exacerbation",
            "worsening shortness of breath"),
    _Reason("GI_BLEED", ("GASTROINTESTINAL BLEED", "UPPER GI BLEED", "LOWER GI BLEED"), "5789",
            ("MED", "SURG"), (0.8, 0.2), "MICU", 0.4, 0.97, False, 0.10, 0.0,
            "gastrointestinal bleed", "melena and lightheadedness"),
    _Reason("AMI", ("CHEST PAIN", "ST ELEVATION MYOCARDIAL INFARCTION\\CATH",
                    "NON-ST SEGMENT ELEVATION MYOCARDIAL INFARCTION"), "41071", ("CMED",), (1.0,),
            "CCU", 0.3, 0.97, False, 0.12, 0.0, "NSTEMI", "substernal chest pain"),
    _Reason("STROKE", ("STROKE", "STROKE;TELEMETRY;TRANSIENT ISCHEMIC ATTACK",
                       "ALTERED MENTAL STATUS"), "43491", ("NMED", "NSURG"), (0.7, 0.3), "SICU",
            0.4, 0.96, False, 0.08, 0.0, "acute ischemic stroke",
            "right sided weakness and aphasia"),
    _Reason("AKI", ("ACUTE RENAL FAILURE", "HYPERKALEMIA", "ALTERED MENTAL STATUS"), "5849",
            ("MED",), (1.0,), "MICU", 0.4, 0.95, False, 0.06, 0.0, "acute kidney injury",
            "decreased urine output and weakness"),
    _Reason("HIP_FX", ("HIP FRACTURE", "S/P FALL"), "82021", ("ORTHO", "TRAUM", "TSURG"),
            (0.6, 0.25, 0.15), "TSICU", 0.2, 0.9, True, 0.06, 0.0, "hip fracture after a fall",
            "hip pain after a mechanical fall"),
    _Reason("RESP_FAIL", ("RESPIRATORY FAILURE", "HYPOXIA", "RESPIRATORY DISTRESS"), "51881",
            ("MED",), (1.0,), "MICU", 0.8, 0.99, False, 0.07, 0.0, "hypoxic respiratory failure",
            "respiratory distress"),
    _Reason("CABG", ("CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA",), "41401",
            ("CSURG",), (1.0,), "CSRU", 0.0, 0.99, True, 0.0, 0.35,
            "coronary artery disease s/p CABG", "exertional angina"),
    _Reason("VALVE", ("AORTIC STENOSIS\\AORTIC VALVE REPLACEMENT /SDA",), "4241", ("CSURG",),
            (1.0,),
            "CSRU", 0.0, 0.99, True, 0.0, 0.15, "aortic stenosis s/p aortic valve replacement",
            "dyspnea on exertion"),
    _Reason("PCI", ("CORONARY ARTERY DISEASE\\CARDIAC CATHETERIZATION",), "41401", ("CMED",),
            (1.0,),
            "CCU", -0.2, 0.9, False, 0.0, 0.15, "coronary artery disease s/p PCI", "stable angina"),
    _Reason("JOINT", ("OSTEOARTHRITIS/SDA", "LEFT KNEE OSTEOARTHRITIS/SDA"), "71536", ("ORTHO",),
            (1.0,), "SICU", -0.3, 0.75, True, 0.0, 0.15, "osteoarthritis s/p joint replacement",
            "chronic knee pain"),
    _Reason("COLECTOMY", ("COLON CANCER/SDA",), "1539", ("SURG",), (1.0,), "SICU", 0.1, 0.95, True,
            0.0, 0.20, "colon cancer s/p hemicolectomy", "colon mass found on colonoscopy"),
    _Reason("NEWBORN", ("NEWBORN",), "V3000", ("NB",), (1.0,), "NICU", 0.0, 1.0, False, 0.0, 0.0,
            "newborn", "prematurity"),
)  # fmt: skip
_RI = {r.key: i for i, r in enumerate(_REASONS)}

_SERVICES = ("MED", "CMED", "SURG", "CSURG", "VSURG", "NSURG", "TSURG", "ORTHO", "NMED", "OMED",
             "TRAUM", "NB")  # fmt: skip
_SVC = {s: i for i, s in enumerate(_SERVICES)}
_SERVICE_WORDS = {
    "MED": "MEDICINE", "CMED": "MEDICINE", "SURG": "SURGERY", "CSURG": "CARDIOTHORACIC",
    "VSURG": "SURGERY", "NSURG": "NEUROSURGERY", "TSURG": "SURGERY", "ORTHO": "ORTHOPAEDICS",
    "NMED": "NEUROLOGY", "OMED": "MEDICINE", "TRAUM": "SURGERY", "NB": "NEONATOLOGY",
}  # fmt: skip
_CAREUNITS = ("MICU", "SICU", "CCU", "CSRU", "TSICU", "NICU")
_CU = {c: i for i, c in enumerate(_CAREUNITS)}
_CU_WARDS: tuple[tuple[int, ...], ...] = ((15, 50, 52), (33, 57), (7,), (12, 54), (14,), (56,))
_FLOOR_WARDS = (1, 2, 3, 4, 6, 17, 23, 24, 25, 26, 27, 36, 45, 49, 55)
_CU_DEATH_EFFECT = np.array([0.3, -0.1, 0.0, -1.2, 0.1, 0.0])

_ADM_TYPES = ("EMERGENCY", "ELECTIVE", "URGENT", "NEWBORN")
_EMERG, _ELECT, _URG, _NB = 0, 1, 2, 3
_ADM_LOCS = (
    "EMERGENCY ROOM ADMIT", "TRANSFER FROM HOSP/EXTRAM", "CLINIC REFERRAL/PREMATURE",
    "PHYS REFERRAL/NORMAL DELI", "TRANSFER FROM SKILLED NUR", "TRANSFER FROM OTHER HEALT",
)  # fmt: skip
_DIS_LOCS = (
    "HOME", "HOME HEALTH CARE", "SNF", "REHAB/DISTINCT PART HOSP", "LONG TERM CARE HOSPITAL",
    "SHORT TERM HOSPITAL", "HOSPICE-HOME", "LEFT AGAINST MEDICAL ADVI", "HOME WITH HOME IV PROVIDR",
    "DISCH-TRAN TO PSYCH HOSP", "ICF", "OTHER FACILITY", "DEAD/EXPIRED",
)  # fmt: skip
_DEAD = 12
_DIS_WORDS = (
    "Home", "Home With Service", "Extended Care", "Extended Care", "Extended Care",
    "Extended Care", "Home With Service", "Home", "Home With Service", "Extended Care",
    "Extended Care", "Extended Care", "Expired",
)  # fmt: skip
_INSURANCE = ("Medicare", "Private", "Medicaid", "Government", "Self Pay")
_LANGUAGES = ("ENGL", "SPAN", "RUSS", "PTUN", "CANT", "MAND", "PORT", "HAIT")
_LANG_P = (0.55, 0.05, 0.015, 0.01, 0.01, 0.008, 0.008, 0.006)  # rest: empty
_RELIGIONS = (
    "CATHOLIC", "NOT SPECIFIED", "UNOBTAINABLE", "PROTESTANT QUAKER", "JEWISH", "OTHER",
    "EPISCOPALIAN", "GREEK ORTHODOX", "CHRISTIAN SCIENTIST", "BUDDHIST", "MUSLIM",
    "JEHOVAH'S WITNESS", "UNITARIAN-UNIVERSALIST", "HINDU", "ROMANIAN EAST. ORTH",
)  # fmt: skip
_RELIGION_P = (0.35, 0.2, 0.13, 0.13, 0.09, 0.04, 0.015, 0.012, 0.01, 0.008, 0.008, 0.007, 0.005,
               0.004, 0.002)  # fmt: skip
_MARITAL = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED", "SEPARATED", "UNKNOWN (DEFAULT)",
            "LIFE PARTNER")  # fmt: skip
_MARITAL_P = (0.46, 0.25, 0.14, 0.065, 0.012, 0.008, 0.001)  # rest: empty
_ETHNICITY = (
    "WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC OR LATINO", "HISPANIC/LATINO - PUERTO RICAN",
    "ASIAN", "ASIAN - CHINESE", "UNKNOWN/NOT SPECIFIED", "OTHER", "UNABLE TO OBTAIN",
    "PATIENT DECLINED TO ANSWER", "WHITE - RUSSIAN", "BLACK/CAPE VERDEAN", "MULTI RACE ETHNICITY",
    "AMERICAN INDIAN/ALASKA NATIVE", "MIDDLE EASTERN", "PORTUGUESE",
)  # fmt: skip
_ETHNICITY_P = (0.70, 0.09, 0.03, 0.01, 0.03, 0.006, 0.075, 0.025, 0.015, 0.01, 0.004, 0.003,
                0.002, 0.001, 0.001, 0.001)  # fmt: skip


class _Drug(NamedTuple):
    key: str
    drug: str
    poe: str
    generic: str
    formulary: str
    strength: str
    dose: str
    unit: str
    form_val: str
    form_unit: str
    route: str
    dtype: str
    early: bool  # usually started on the admission day
    days: float  # typical order length (days); 0 = until discharge
    hr: str  # high-risk class: "anticoag", "insulin", "opioid" or ""
    po_home: bool  # continued at discharge (listed in the discharge summary)


_DRUGS: tuple[_Drug, ...] = (
    _Drug("HEP_SC", "Heparin", "Heparin", "Heparin Sodium", "HEPA5I", "5000 Units / mL- 1mL Vial",
          "5000", "UNIT", "1", "mL", "SC", "MAIN", True, 0, "", False),
    _Drug("ENOX_PR", "Enoxaparin Sodium", "Enoxaparin Sodium", "Enoxaparin Sodium", "ENOX40I",
          "40mg / 0.4 mL Syringe", "40", "mg", "0.4", "mL", "SC", "MAIN", True, 0, "", False),
    _Drug("HEP_DRIP", "Heparin Sodium", "", "", "HEPPREMIX", "25000 unit Premix Bag", "25000",
          "UNIT", "1", "BAG", "IV", "MAIN", True, 3, "anticoag", False),
    _Drug("ENOX_TX", "Enoxaparin Sodium", "Enoxaparin Sodium", "Enoxaparin Sodium", "ENOX80I",
          "80mg / 0.8 mL Syringe", "80", "mg", "0.8", "mL", "SC", "MAIN", False, 0, "anticoag",
          True),
    _Drug("WARF", "Warfarin", "Warfarin", "Warfarin", "WARF5", "5mg Tablet", "5", "mg", "1", "TAB",
          "PO", "MAIN", False, 0, "anticoag", True),
    _Drug("INS_SS", "Insulin", "Insulin", "Insulin - Sliding Scale", "INSULIN",
          "Dummy Package for Sliding Scale", "0", "UNIT", "0", "VIAL", "SC", "MAIN", True, 0,
          "insulin", False),
    _Drug("INS_GLAR", "Insulin Glargine", "Insulin Glargine", "Insulin Glargine", "GLAR100I",
          "100 Units / mL - 10mL Vial", "20", "UNIT", "0.2", "mL", "SC", "MAIN", True, 0, "insulin",
          True),
    _Drug("MORPH", "Morphine Sulfate", "Morphine Sulfate", "Morphine Sulfate", "MORP2I",
          "2mg Carpuject", "2", "mg", "1", "SYR", "IV", "MAIN", True, 2, "opioid", False),
    _Drug("HYDRO", "HYDROmorphone (Dilaudid)", "HYDROmorphone (Dilaudid)", "HYDROmorphone",
          "HYDR2I", "2mg/mL Carpuject", "0.5", "mg", "0.25", "mL", "IV", "MAIN", False, 3, "opioid",
          False),
    _Drug("OXY", "OxycoDONE (Immediate Release) ", "OxycoDONE (Immediate Release) ", "Oxycodone",
          "OXYC5", "5mg Tablet", "5", "mg", "1", "TAB", "PO", "MAIN", False, 4, "opioid", True),
    _Drug("FENT", "Fentanyl Citrate", "Fentanyl Citrate", "Fentanyl Citrate", "FENT2I",
          "100mcg/2mL Amp", "25", "mcg", "0.5", "mL", "IV", "MAIN", True, 2, "opioid", False),
    _Drug("FURO_IV", "Furosemide", "Furosemide", "Furosemide", "FURO40I", "40mg/4mL Vial", "40",
          "mg", "1", "VIAL", "IV", "MAIN", True, 3, "", False),
    _Drug("FURO_PO", "Furosemide", "Furosemide", "Furosemide", "FURO20", "20mg Tablet", "20", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("NOREPI", "Norepinephrine", "Norepinephrine", "Norepinephrine Bitartrate", "NORE4I",
          "4mg Vial", "0.06", "mcg/kg/min", "1", "VIAL", "IV DRIP", "MAIN", True, 2, "", False),
    _Drug("VANC", "Vancomycin", "Vancomycin", "Vancomycin HCl", "VANC1F", "1g Frozen Bag", "1000",
          "mg", "1", "BAG", "IV", "MAIN", True, 5, "", False),
    _Drug("PIPTAZ", "Piperacillin-Tazobactam Na", "Piperacillin-Tazobactam Na",
          "Piperacillin-Tazobactam", "PTZ4F", "4.5 g Frozen Bag", "4.5", "g", "1", "BAG", "IV",
          "MAIN", True, 5, "", False),
    _Drug("CTX", "CeftriaXONE", "CeftriaXONE", "CeftriaXONE", "CEFT1I", "1g Vial", "1", "gm", "1",
          "VIAL", "IV", "MAIN", True, 4, "", False),
    _Drug("AZITH", "Azithromycin", "Azithromycin", "Azithromycin", "AZIT500I", "500mg Vial", "500",
          "mg", "1", "VIAL", "IV", "MAIN", True, 3, "", False),
    _Drug("LEVO", "Levofloxacin", "Levofloxacin", "Levofloxacin", "LEVO750PM",
          "750mg/150mL Premix", "750", "mg", "1", "BAG", "IV", "MAIN", True, 5, "", False),
    _Drug("CEFAZ", "CeFAZolin", "CeFAZolin", "CeFAZolin", "CEFA1I", "1g Vial", "2", "g", "2",
          "VIAL", "IV", "MAIN", True, 1, "", False),
    _Drug("METRO", "MetRONIDAZOLE (FLagyl)", "MetRONIDAZOLE (FLagyl)", "MetRONIDAZOLE",
          "METR500PM", "500mg/100mL Premix", "500", "mg", "1", "BAG", "IV", "MAIN", False, 5, "",
          False),
    _Drug("ACET", "Acetaminophen", "Acetaminophen", "Acetaminophen", "ACET325", "325mg Tablet",
          "650", "mg", "2", "TAB", "PO", "MAIN", True, 0, "", False),
    _Drug("DOCU", "Docusate Sodium", "Docusate Sodium", "Docusate Sodium", "DOCU100",
          "100mg Capsule", "100", "mg", "1", "CAP", "PO", "MAIN", True, 0, "", False),
    _Drug("SENNA", "Senna", "Senna", "Senna", "SENN187", "1 Tablet", "1", "TAB", "1", "TAB", "PO",
          "MAIN", True, 0, "", False),
    _Drug("PANTO", "Pantoprazole", "Pantoprazole", "Pantoprazole", "PANT40", "40mg Tablet", "40",
          "mg", "1", "TAB", "PO", "MAIN", True, 0, "", True),
    _Drug("FLUSH", "Sodium Chloride 0.9%  Flush", "Sodium Chloride 0.9%  Flush",
          "Sodium Chloride 0.9%  Flush", "NACLFLUSH", "Syringe", "3", "mL", "0.6", "SYR", "IV",
          "MAIN", True, 0, "", False),
    _Drug("NS", "0.9% Sodium Chloride", "", "", "NS1000", "1000mL Bag", "1000", "mL", "1", "BAG",
          "IV", "BASE", True, 1, "", False),
    _Drug("KCL", "Potassium Chloride", "Potassium Chloride", "Potassium Chloride", "KCL20PM",
          "20mEq/50mL Premix", "40", "mEq", "2", "BAG", "IV", "MAIN", False, 1, "", False),
    _Drug("MAG", "Magnesium Sulfate", "Magnesium Sulfate", "Magnesium Sulfate", "MAG2PM",
          "2 g / 50 mL Premix Bag", "2", "gm", "1", "BAG", "IV", "MAIN", False, 1, "", False),
    _Drug("METOP", "Metoprolol Tartrate", "Metoprolol Tartrate", "Metoprolol Tartrate", "METO25",
          "25mg Tablet", "25", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("LISIN", "Lisinopril", "Lisinopril", "Lisinopril", "LISI10", "10mg Tablet", "10", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("ATORVA", "Atorvastatin", "Atorvastatin", "Atorvastatin", "ATOR40", "40mg Tablet", "40",
          "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("ASA", "Aspirin", "Aspirin", "Aspirin", "ASA81", "81mg Tab", "81", "mg", "1", "TAB", "PO",
          "MAIN", True, 0, "", True),
    _Drug("CLOPI", "Clopidogrel Bisulfate", "Clopidogrel Bisulfate", "Clopidogrel Bisulfate",
          "CLOP75", "75mg Tablet", "75", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("ALBUT", "Albuterol 0.083% Neb Soln", "Albuterol 0.083% Neb Soln",
          "Albuterol 0.083% Neb Soln", "ALBU3H", "0.083%;3mL Vial", "1", "NEB", "1", "VIAL", "IH",
          "MAIN", True, 0, "", False),
    _Drug("IPRA", "Ipratropium Bromide Neb", "Ipratropium Bromide Neb", "Ipratropium Bromide Neb",
          "IPRA2H", "2.5mL Vial", "1", "NEB", "1", "VIAL", "IH", "MAIN", True, 0, "", False),
    _Drug("PRED", "PredniSONE", "PredniSONE", "PredniSONE", "PRED10", "10mg Tablet", "40", "mg",
          "4",
          "TAB", "PO", "MAIN", True, 5, "", True),
    _Drug("LACTU", "Lactulose", "Lactulose", "Lactulose", "LACT30L", "30mL UD Cup", "30", "mL", "1",
          "UDCUP", "PO", "MAIN", False, 0, "", True),
    _Drug("RIFAX", "Rifaximin", "Rifaximin", "Rifaximin", "RIFA550", "550mg Tablet", "550", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("SEVEL", "Sevelamer Carbonate", "Sevelamer Carbonate", "Sevelamer Carbonate", "SEVE800",
          "800mg Tablet", "800", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("EPO", "Epoetin Alfa", "Epoetin Alfa", "Epoetin Alfa", "EPOE10I", "10000 Units/mL Vial",
          "10000", "UNIT", "1", "mL", "SC", "MAIN", False, 3, "", False),
    _Drug("AMIO", "Amiodarone HCl", "Amiodarone HCl", "Amiodarone HCl", "AMIO200", "200mg Tablet",
          "200", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("DILT", "Diltiazem", "Diltiazem", "Diltiazem", "DILT30", "30mg Tablet", "30", "mg", "1",
          "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("METF", "MetFORMIN (Glucophage)", "MetFORMIN (Glucophage)", "MetFORMIN", "METF500",
          "500mg Tablet", "500", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("ONDAN", "Ondansetron", "Ondansetron", "Ondansetron", "ONDA4I", "2mg/mL-2mL Vial", "4",
          "mg", "2", "mL", "IV", "MAIN", False, 2, "", False),
    _Drug("PROPO", "Propofol", "Propofol", "Propofol", "PROP100IG", "1000mg/100mL Vial", "10",
          "mcg/kg/min", "1", "VIAL", "IV DRIP", "MAIN", True, 3, "", False),
    _Drug("FESO4", "Ferrous Sulfate", "Ferrous Sulfate", "Ferrous Sulfate", "FESO4",
          "325mg Tablet", "325", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("LEVOTHY", "Levothyroxine Sodium", "Levothyroxine Sodium", "Levothyroxine Sodium",
          "LEVO50", "50mcg Tablet", "50", "mcg", "1", "TAB", "PO", "MAIN", True, 0, "", True),
    _Drug("SERTR", "Sertraline", "Sertraline", "Sertraline", "SERT50", "50mg Tablet", "50", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("THIAM", "Thiamine", "Thiamine", "Thiamine HCl", "THIA100", "100mg Tablet", "100", "mg",
          "1", "TAB", "PO", "MAIN", True, 0, "", True),
    _Drug("LORAZ", "Lorazepam", "Lorazepam", "Lorazepam", "LORA1I", "2mg/mL Vial", "1", "mg", "0.5",
          "mL", "IV", "MAIN", False, 2, "", False),
    _Drug("DEXA", "Dexamethasone", "Dexamethasone", "Dexamethasone", "DEXA4", "4mg Tablet", "4",
          "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    _Drug("AMP", "Ampicillin Sodium", "Ampicillin Sodium", "Ampicillin Sodium", "AMP500I",
          "500mg Vial", "50", "mg/kg", "1", "VIAL", "IV", "MAIN", True, 2, "", False),
    _Drug("GENT", "Gentamicin", "Gentamicin", "Gentamicin Sulfate", "GENT20I", "20mg/2mL Vial", "4",
          "mg/kg", "1", "VIAL", "IV", "MAIN", True, 2, "", False),
    _Drug("HEPB", "Hepatitis B Vaccine", "Hepatitis B Vaccine", "Hepatitis B Vaccine", "HEPBVAC",
          "10mcg/0.5mL Syringe", "0.5", "mL", "1", "SYR", "IM", "MAIN", True, 1, "", False),
    _Drug("VITK", "Phytonadione", "Phytonadione", "Phytonadione", "PHYT1I", "1mg/0.5mL Amp", "1",
          "mg", "0.5", "mL", "IM", "MAIN", True, 1, "", False),
)  # fmt: skip
_DI = {d.key: i for i, d in enumerate(_DRUGS)}
_HR_CLASSES = ("anticoag", "insulin", "opioid")

# Microbiology: MIMIC specimen, organism and antibiotic item ids.
_SPECS = (
    (70012, "BLOOD CULTURE"),
    (70079, "URINE"),
    (70062, "SPUTUM"),
    (70091, "MRSA SCREEN"),
    (70064, "STOOL"),
)
_ORGS = (
    (80002, "ESCHERICHIA COLI", "gn"),
    (80023, "STAPH AUREUS COAG +", "staph"),
    (80155, "STAPHYLOCOCCUS, COAGULASE NEGATIVE", "staph"),
    (80004, "KLEBSIELLA PNEUMONIAE", "gn"),
    (80053, "ENTEROCOCCUS SP.", "entero"),
    (80076, "STREPTOCOCCUS PNEUMONIAE", "strep"),
    (80026, "PSEUDOMONAS AERUGINOSA", "pseudo"),
    (80017, "PROTEUS MIRABILIS", "gn"),
    (80075, "YEAST", "none"),
    (80014, "SERRATIA MARCESCENS", "gn"),
    (80293, "POSITIVE FOR METHICILLIN RESISTANT STAPH AUREUS", "none"),
    (80139, "CLOSTRIDIUM DIFFICILE", "none"),
)
_ORG_P = (  # per specimen type, over _ORGS
    (0.25, 0.2, 0.25, 0.12, 0.1, 0.05, 0.03, 0, 0, 0, 0, 0),
    (0.5, 0, 0, 0.15, 0.1, 0, 0.08, 0.1, 0.07, 0, 0, 0),
    (0.1, 0.3, 0, 0.15, 0, 0.15, 0.2, 0, 0, 0.1, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0),
)
_ABX = {
    90004: "AMPICILLIN", 90022: "AMPICILLIN/SULBACTAM", 90005: "CEFAZOLIN", 90018: "CEFTRIAXONE",
    90017: "CEFTAZIDIME", 90028: "CEFEPIME", 90019: "CIPROFLOXACIN", 90012: "GENTAMICIN",
    90013: "TOBRAMYCIN", 90029: "MEROPENEM", 90026: "PIPERACILLIN/TAZO",
    90008: "TRIMETHOPRIM/SULFA",
    90010: "NITROFURANTOIN", 90016: "OXACILLIN", 90015: "VANCOMYCIN", 90007: "CLINDAMYCIN",
    90006: "ERYTHROMYCIN", 90025: "LEVOFLOXACIN", 90011: "TETRACYCLINE", 90027: "RIFAMPIN",
    90002: "PENICILLIN", 90003: "PENICILLIN G", 90031: "LINEZOLID", 90020: "IMIPENEM",
    90014: "AMIKACIN",
}  # fmt: skip
_ABX_PANELS: dict[str, tuple[int, ...]] = {
    "gn": (90004, 90022, 90005, 90018, 90017, 90028, 90019, 90012, 90013, 90029, 90026, 90008),
    "staph": (90016, 90015, 90012, 90007, 90006, 90025, 90011, 90027, 90008, 90002),
    "entero": (90004, 90015, 90003, 90031, 90010),
    "strep": (90003, 90018, 90006, 90025, 90015),
    "pseudo": (90028, 90017, 90019, 90012, 90013, 90029, 90026, 90020, 90014),
}
_DIL_S = ("<=0.25", "<=0.5", "<=1", "<=2", "<=4", "1", "2", "4")
_DIL_I = ("8", "16")
_DIL_R = ("=>4", "=>8", "=>16", "=>32", "=>64")

_DAY = 86400
_HOUR = 3600
_T2100 = int(np.datetime64("2100-01-01T00:00:00", "s").astype(np.int64))
_T2187 = int(np.datetime64("2187-01-01T00:00:00", "s").astype(np.int64))
_T2200 = int(np.datetime64("2200-12-31T00:00:00", "s").astype(np.int64))
_YEAR = 365.2425 * _DAY
_HORIZON = 12 * 365 * _DAY  # a patient's admissions span at most ~12 years, as in MIMIC
_MAX_ROUNDS = 40
_ID_PRIME = 99991  # ids are an affine permutation modulo this prime, then sequential


# --------------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------------


def _sig(x: Arr) -> Arr:
    return 1.0 / (1.0 + np.exp(-x))


def _choice(rng: np.random.Generator, n: int, p: Sequence[float]) -> Arr:
    """n draws of an index with probabilities p (renormalised)."""
    cum = np.cumsum(np.asarray(p, dtype=float))
    idx = np.searchsorted(cum / cum[-1], rng.random(n), side="right")
    return np.minimum(idx, len(cum) - 1).astype(np.int64)


def _choice_rows(rng: np.random.Generator, w: Arr) -> Arr:
    """One index per row of the non-negative weight matrix w."""
    cum = np.cumsum(w, axis=1)
    u = rng.random(w.shape[0]) * cum[:, -1]
    idx = (cum <= u[:, None]).sum(axis=1)
    return np.minimum(idx, w.shape[1] - 1).astype(np.int64)


def _gumbel_argmax(rng: np.random.Generator, logits: Arr) -> Arr:
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int64)


def _lognormal(rng: np.random.Generator, log_mean: Arr | float, sd: float, n: int) -> Arr:
    return np.exp(log_mean + sd * rng.standard_normal(n))


def _secs(days: Arr) -> Arr:
    return np.round(np.asarray(days) * _DAY).astype(np.int64)


def _minute(t: Arr) -> Arr:
    return (np.asarray(t) // 60) * 60


def _day(t: Arr) -> Arr:
    return (np.asarray(t) // _DAY) * _DAY


def _perm_ids(k: Arr, base: int, overflow_base: int, a: int, b: int) -> Arr:
    k = np.asarray(k, dtype=np.int64)
    inside = base + (a * k + b) % _ID_PRIME
    return np.where(k < _ID_PRIME, inside, overflow_base + k)


def _rank_in_group(group: Arr) -> Arr:
    """0-based position of each element within its run of equal (sorted) group values."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, group[1:] != group[:-1]]
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(starts, idx, 0))
    return (idx - first).astype(np.int64)


# --------------------------------------------------------------------------------------------
# CSV writing: values become strings in Arrow, rows are joined and streamed into gzip.
# --------------------------------------------------------------------------------------------

_NEEDS_QUOTES = r'[",\r\n]'


def _s_int(x: Arr, mask: Arr | None = None) -> pa.Array:
    return pa.array(np.asarray(x, dtype=np.int64), mask=mask).cast(pa.string())


def _s_float(x: Arr, decimals: int, mask: Arr | None = None) -> pa.Array:
    v = np.round(np.asarray(x, dtype=np.float64), decimals) + 0.0
    return pa.array(v, mask=mask).cast(pa.string())


def _s_ts(t: Arr, mask: Arr | None = None) -> pa.Array:
    v = np.asarray(t, dtype=np.int64).astype("datetime64[s]")
    return pa.array(v, mask=mask).cast(pa.string())


def _s_cat(labels: Sequence[str | None], idx: Arr, mask: Arr | None = None) -> pa.Array:
    return pc.take(
        pa.array(list(labels), pa.string()), pa.array(np.asarray(idx, np.int64), mask=mask)
    )


def _quoted(arr: pa.Array) -> pa.Array:
    """CSV-quote the values that need it (comma, quote, newline), as the demo release does."""
    needs = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_QUOTES), False)
    if not pc.any(needs).as_py():
        return arr
    q = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(needs, q, arr)


class _GzCsv:
    def __init__(self, path: Path, columns: Sequence[str], level: int) -> None:
        self.columns = tuple(columns)
        self.rows = 0
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(
            filename="", mode="wb", compresslevel=level, fileobj=self._raw, mtime=0
        )
        self._gz.write((",".join(self.columns) + "\n").encode())

    def write(self, cols: dict[str, pa.Array]) -> None:
        if tuple(cols) != self.columns:
            raise AssertionError(f"columns {tuple(cols)} != {self.columns}")
        n = len(cols[self.columns[0]])
        if n == 0:
            return
        arrays = [c if isinstance(c, pa.Array) else pa.array(c) for c in cols.values()]
        if any(len(a) != n for a in arrays):
            raise AssertionError("columns of unequal length")
        line = pc.binary_join_element_wise(
            *arrays, ",", null_handling="replace", null_replacement=""
        )
        line = pc.binary_join_element_wise(line, "", "\n")
        bufs = line.buffers()
        offs = np.frombuffer(bufs[1], dtype=np.int32, count=len(line) + 1, offset=line.offset * 4)
        self._gz.write(memoryview(bufs[2])[int(offs[0]) : int(offs[-1])])
        self.rows += n

    def close(self) -> None:
        try:
            self._gz.close()
        finally:
            self._raw.close()


# --------------------------------------------------------------------------------------------
# Lab latent model
# --------------------------------------------------------------------------------------------

_TAU = {"cr": 2.0, "bun": 2.5, "wbc": 2.5, "plt": 3.0, "na": 2.0, "k": 1.0, "hco3": 1.5, "glu": 1.5,
        "lac": 0.7, "inr": 2.0, "lft": 2.0}  # fmt: skip


def _ramp(q: dict[str, Arr], t: Arr) -> Arr:
    los = q["los"]
    span = np.minimum(2.0, np.maximum(los, 1e-3))
    return np.clip((t - np.maximum(los - 2.0, 0.0)) / span, 0.0, 1.0)


def _terminal(q: dict[str, Arr], t: Arr) -> Arr:
    return q["die"] * np.clip(t - (q["los"] - 1.0), 0.0, 1.0)


def _latent(key: str, q: dict[str, Arr], t: Arr) -> Arr:
    """Noise-free value of lab `key` at t days after admission (q: per-row parameters)."""
    e = np.exp
    if key == "cr":
        return e(np.log(q["cr_b"]) + q["cr_a"] * e(-t / _TAU["cr"]) + q["rise"] * _ramp(q, t))
    if key == "bun":
        dev = q["cr_a"] * e(-t / _TAU["cr"]) + q["rise"] * _ramp(q, t)
        return e(np.log(q["bun_b"]) + 0.8 * dev + q["bunx_a"] * e(-t / _TAU["bun"]))
    if key == "hgb":
        return q["hgb_b"] + q["hgb_a"] * (0.7 + 0.3 * (1.0 - e(-t / 1.5)))
    if key == "wbc":
        return e(np.log(q["wbc_b"]) + q["wbc_a"] * e(-t / _TAU["wbc"]))
    if key == "plt":
        return e(np.log(q["plt_b"]) + q["plt_a"] * e(-t / _TAU["plt"]))
    if key == "na":
        return q["na_b"] + q["na_a"] * e(-t / _TAU["na"])
    if key == "k":
        return q["k_b"] + q["k_a"] * e(-t / _TAU["k"]) + 0.6 * _terminal(q, t)
    if key == "hco3":
        return q["hco3_b"] + q["hco3_a"] * e(-t / _TAU["hco3"]) - 5.0 * _terminal(q, t)
    if key == "glu":
        return e(np.log(q["glu_b"]) + q["glu_a"] * e(-t / _TAU["glu"]))
    if key == "lac":
        return e(np.log(q["lac_b"]) + q["lac_a"] * e(-t / _TAU["lac"]) + 1.0 * _terminal(q, t))
    if key == "alb":
        return q["alb_b"] + q["alb_a"] * (0.8 + 0.2 * (1.0 - e(-t / 3.0)))
    if key == "mg":
        return q["mg_b"] + 0.0 * t
    if key == "ca":
        return q["ca_b"] + 0.8 * q["alb_a"] * (0.8 + 0.2 * (1.0 - e(-t / 3.0)))
    if key == "phos":
        dev = q["cr_a"] * e(-t / _TAU["cr"]) + q["rise"] * _ramp(q, t)
        return q["phos_b"] * e(0.5 * dev)
    if key == "inr":
        return e(np.log(q["inr_b"]) + q["inr_a"] * e(-t / _TAU["inr"]))
    if key == "ptt":
        return q["ptt_b"] * (1.0 + 1.2 * q["hep"]) + 0.0 * t
    if key in ("alt", "ast"):
        return e(np.log(q[f"{key}_b"]) + q["lft_a"] * e(-t / _TAU["lft"]))
    if key == "bili":
        return e(np.log(q["bili_b"]) + 0.5 * q["lft_a"] * e(-t / 3.0))
    raise KeyError(key)


_BASE_KEYS = ("cr_b", "bun_b", "hgb_b", "wbc_b", "plt_b", "na_b", "k_b", "hco3_b", "glu_b", "lac_b",
              "alb_b", "mg_b", "ca_b", "phos_b", "inr_b", "ptt_b", "alt_b", "ast_b", "bili_b",
              "ag_b")  # fmt: skip
_ACUTE_KEYS = ("cr_a", "bunx_a", "hgb_a", "wbc_a", "plt_a", "na_a", "k_a", "hco3_a", "glu_a",
               "lac_a",
               "alb_a", "inr_a", "lft_a", "rise", "los", "die", "hep")  # fmt: skip


# --------------------------------------------------------------------------------------------
# One batch of patients
# --------------------------------------------------------------------------------------------


class _Batch:
    """Generates every table for n patients with local indices (ids are assigned later)."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng = rng
        self.n = n
        self.P: dict[str, Arr] = {}
        self.A: dict[str, Arr] = {}

    # ---------------------------------------------------------------- patients
    def patients(self) -> None:
        rng, n = self.rng, self.n
        nb = rng.random(n) < 0.10
        male = rng.random(n) < np.where(nb, 0.52, 0.56)
        age0 = np.where(nb, 0.0, np.clip(rng.normal(63.0, 17.0, n), 18.0, 100.0))
        frail = rng.standard_normal(n) + np.where(nb, 0.0, 0.025 * (age0 - 63.0))
        age_s = (age0 - 65.0) / 15.0
        com = np.zeros((n, len(_CONDS)), dtype=bool)
        code = np.zeros((n, len(_CONDS)), dtype=np.int64)
        for j, c in enumerate(_CONDS):
            lin = c.a + c.b_age * age_s + c.c_frail * frail
            for other, coef in _COUPLING.get(c.key, ()):
                lin = lin + coef * com[:, _CI[other]]
            if c.key == "HYPOTHY":
                lin = lin + 0.7 * ~male
            if c.key == "ALCOHOL":
                lin = lin + 0.7 * male
            com[:, j] = (rng.random(n) < _sig(lin)) & ~nb
            code[:, j] = _choice(rng, n, c.code_p)
        primary_cancer = _choice(rng, n, (0.4, 0.25, 0.25, 0.1))
        primary_cancer = np.where(male & (primary_cancer == 1), 3, primary_cancer)
        primary_cancer = np.where(~male & (primary_cancer == 3), 1, primary_cancer)
        renal_code = np.array(_CONDS[_CI["RENAL"]].codes)[code[:, _CI["RENAL"]]]
        esrd = com[:, _CI["RENAL"]] & np.isin(renal_code, ("5856", "40391"))
        warf = com[:, _CI["ARRHY"]] & (rng.random(n) < 0.5)
        tobacco = (rng.random(n) < 0.22) & ~nb
        gerd = (rng.random(n) < 0.15) & ~nb
        prem = nb & (frail > 1.2)

        def has(k: str) -> Arr:
            return com[:, _CI[k]].astype(float)

        ln = rng.standard_normal
        renal, liver, mets = has("RENAL"), has("LIVER"), has("METS")
        cr_b = np.where(male, 0.95, 0.75) * np.exp(0.15 * ln(n)) * (1 + 0.004 * (age0 - 65))
        cr_b = cr_b * (1.0 + renal * rng.uniform(0.6, 2.2, n))
        cr_b = np.where(esrd, rng.uniform(4.0, 8.0, n), cr_b)
        P: dict[str, Arr] = {
            "nb": nb, "male": male, "age0": age0, "frail": frail, "com": com, "code": code,
            "primary_cancer": primary_cancer, "esrd": esrd, "warf": warf, "tobacco": tobacco,
            "gerd": gerd, "prem": prem,
        }  # fmt: skip
        P["cr_b"] = np.where(nb, 0.5 * np.exp(0.15 * ln(n)), cr_b)
        P["bun_b"] = np.where(nb, 8.0, 14.0 * (cr_b / 0.85) ** 0.8) * np.exp(0.22 * ln(n))
        hgb = (np.where(male, 14.2, 12.8) + 0.9 * ln(n) - 2.0 * has("ANEMIA") - 1.0 * renal
               - 1.2 * mets - 0.8 * liver - 0.3 * has("CHF"))  # fmt: skip
        P["hgb_b"] = np.where(nb, 16.5 + 1.5 * ln(n), np.maximum(hgb, 7.0))
        P["wbc_b"] = np.where(nb, 14.0, 7.2) * np.exp(0.22 * ln(n)) * (1 - 0.15 * mets)
        P["plt_b"] = np.where(nb, 260.0, 250.0) * np.exp(0.25 * ln(n)) * (1 - 0.55 * liver)
        P["na_b"] = 139.5 + 1.8 * ln(n) - 2.5 * has("CHF") - 3.0 * liver
        P["k_b"] = np.where(nb, 4.8, 4.1) + 0.25 * ln(n) + 0.4 * renal
        P["hco3_b"] = np.where(nb, 22.0, 25.5) + 1.5 * ln(n) - 2.0 * renal + 3.0 * has("COPD")
        P["glu_b"] = np.where(nb, 75.0, np.where(com[:, _CI["DIAB"]], 150.0, 98.0)) * np.exp(
            0.12 * ln(n)
        )
        P["lac_b"] = np.where(nb, 1.8, 1.1) * np.exp(0.2 * ln(n)) * (1 + 0.4 * liver)
        alb = 4.0 + 0.25 * ln(n) - 0.9 * liver - 0.5 * mets - 0.6 * has("MALNUT") - 0.2 * renal
        P["alb_b"] = np.where(nb, 3.3, alb - 0.15 * np.clip(frail, -2, 3))
        P["mg_b"] = 2.0 + 0.12 * ln(n) + 0.2 * renal
        P["ca_b"] = 9.1 + 0.3 * ln(n)
        P["phos_b"] = np.where(nb, 5.5, 3.5) * np.exp(0.1 * ln(n)) + 1.2 * renal
        P["inr_b"] = np.exp(0.05 * ln(n)) * (1 + 0.5 * liver) + 1.4 * warf
        P["ptt_b"] = 29.0 * np.exp(0.08 * ln(n))
        P["alt_b"] = 22.0 * np.exp(0.35 * ln(n)) * (1 + 0.8 * liver)
        P["ast_b"] = 25.0 * np.exp(0.3 * ln(n)) * (1 + 1.0 * liver)
        P["bili_b"] = np.where(nb, 6.0, 0.6) * np.exp(0.3 * ln(n)) * (1 + 2.5 * liver)
        P["ag_b"] = 11.0 + 1.2 * ln(n) + 2.0 * renal
        # demographics (patient level)
        P["ethnicity"] = _choice(rng, n, _ETHNICITY_P)
        ins_old = _choice(rng, n, (0.85, 0.1, 0.03, 0.01, 0.01))
        ins_young = _choice(rng, n, (0.15, 0.55, 0.22, 0.05, 0.03))
        ins_nb = _choice(rng, n, (0.0, 0.65, 0.33, 0.02, 0.0))
        P["insurance"] = np.where(nb, ins_nb, np.where(age0 >= 65, ins_old, ins_young))
        lang = _choice(rng, n, (*_LANG_P, 1 - sum(_LANG_P)))
        P["language"] = np.where(nb, len(_LANGUAGES), lang)  # == len -> empty
        rel = _choice(rng, n, _RELIGION_P)
        P["religion"] = np.where(nb, 1, rel)
        mar = _choice(rng, n, (*_MARITAL_P, 1 - sum(_MARITAL_P)))
        mar = np.where((age0 < 30) & (mar == 2), 1, mar)
        P["marital"] = np.where(nb, len(_MARITAL), mar)
        P["first_admit"] = _minute(rng.integers(_T2100, _T2187, n))
        P["lastname"] = rng.integers(100, 99999, n)
        self.P = P

    # ---------------------------------------------------------------- admissions chain
    def admissions(self) -> None:
        rng, P, n = self.rng, self.P, self.n
        rounds: list[dict[str, Arr]] = []
        hist = np.full((n, _MAX_ROUNDS + 1), -np.inf)
        pat = np.arange(n)
        admit = P["first_admit"].copy()
        atype = np.where(P["nb"], _NB, _choice(rng, n, (0.82, 0.15, 0.03)))
        kind = np.zeros(n, dtype=np.int64)  # 0 first, 1 readmit30, 2 planned30, 3 later
        prev_dis = np.full(n, -1, dtype=np.int64)
        r = 0
        while len(pat) and r < _MAX_ROUNDS:
            prior12 = (hist[pat, :r] >= (admit - 365 * _DAY)[:, None]).sum(axis=1)
            hist[pat, r] = admit
            R = self._admission_round(pat, admit, atype, prior12, prev_dis)
            R["round"] = np.full(len(pat), r)
            R["kind"] = kind
            rounds.append(R)
            # next admission of each patient
            m = len(pat)
            alive = R["died"] == 0
            adult = ~P["nb"][pat]
            u = rng.random(m)
            readmit = alive & adult & (u < R["p_readmit"])
            planned = alive & adult & ~readmit & (rng.random(m) < 0.02)
            maj = P["com"][pat][:, [_CI[k] for k in _MAJOR]].sum(axis=1)
            p_later = _sig(-1.95 + 0.3 * P["frail"][pat] + 0.25 * maj)
            later = alive & adult & ~readmit & ~planned & (rng.random(m) < p_later)
            gap = np.where(
                readmit,
                1.0 + 29.0 * rng.beta(1.0, 1.8, m),
                np.where(planned, rng.uniform(7.0, 30.0, m), 31.0 + rng.exponential(420.0, m)),
            )
            nxt = _minute(R["dischtime"] + _secs(gap))
            go = (readmit | planned | later) & (nxt < P["first_admit"][pat] + _HORIZON)
            go &= nxt < _T2200
            t_later = _choice(rng, m, (0.70, 0.22, 0.08))
            t_readmit = np.where(rng.random(m) < 0.88, _EMERG, _URG)
            new_type = np.where(readmit, t_readmit, np.where(planned, _ELECT, t_later))
            new_kind = np.where(readmit, 1, np.where(planned, 2, 3))
            pat, admit, atype = pat[go], nxt[go], new_type[go]
            kind, prev_dis = new_kind[go], R["discharge_location"][go]
            r += 1
        A = {k: np.concatenate([R[k] for R in rounds]) for k in rounds[0]}
        order = np.lexsort((A["round"], A["pat"]))
        self.A = {k: v[order] for k, v in A.items()}

    def _admission_round(
        self, pat: Arr, admit: Arr, atype: Arr, prior12: Arr, prev_dis: Arr
    ) -> dict[str, Arr]:
        rng, P = self.rng, self.P
        m = len(pat)
        nb = P["nb"][pat]
        com = P["com"][pat]
        frail = P["frail"][pat]
        male = P["male"][pat]
        age = P["age0"][pat] + np.where(nb, 0.0, (admit - P["first_admit"][pat]) / _YEAR)
        age_s = (age - 65.0) / 15.0

        def has(k: str) -> Arr:
            return com[:, _CI[k]]

        # --- reason
        w = np.zeros((m, len(_REASONS)))
        elective = atype == _ELECT
        for j, rs in enumerate(_REASONS):
            w[:, j] = np.where(elective, rs.w_elect, rs.w_emerg)
        w[:, _RI["CHF_EXAC"]] *= np.where(has("CHF"), 6.0, 0.0)
        w[:, _RI["COPD_EXAC"]] *= np.where(has("COPD"), 6.0, 0.0)
        w[:, _RI["GI_BLEED"]] *= np.where(has("LIVER"), 3.0, 1.0)
        w[:, _RI["AKI"]] *= np.where(has("RENAL"), 2.0, 1.0)
        w[:, _RI["SEPSIS"]] *= np.exp(0.3 * frail)
        w[:, _RI["HIP_FX"]] *= np.exp(0.5 * age_s)
        w[:, _RI["COLECTOMY"]] *= np.where(has("METS"), 3.0, 1.0)
        w[nb] = 0.0
        w[nb, _RI["NEWBORN"]] = 1.0
        reason = _choice_rows(rng, w)
        rkey = np.array([rs.key for rs in _REASONS])[reason]

        def isr(*keys: str) -> Arr:
            return np.isin(rkey, keys)

        surgical = np.array([rs.surgical for rs in _REASONS])[reason]
        sev = (
            0.5 * frail
            + np.array([rs.sev for rs in _REASONS])[reason]
            + 0.25 * age_s
            + 0.8 * rng.standard_normal(m)
        )
        sev = np.where(nb, 0.8 * P["prem"][pat] + 0.3 * rng.standard_normal(m), sev)
        adult = ~nb
        sepsis = isr("SEPSIS") | (adult & (rng.random(m) < 0.03 + 0.03 * surgical))
        shock = sepsis & (sev > 1.3)
        pneu = isr("PNEUMONIA") | (
            adult & (rng.random(m) < 0.05 + 0.25 * isr("SEPSIS", "RESP_FAIL"))
        )
        uti = adult & ~pneu & (rng.random(m) < 0.05 + 0.04 * ~male + 0.35 * isr("SEPSIS"))
        aki = isr("AKI") | (
            adult & (rng.random(m) < _sig(-2.6 + 0.9 * has("RENAL") + 0.6 * sepsis + 0.5 * sev))
        )
        respfail = isr("RESP_FAIL") | (
            adult & (rng.random(m) < _sig(-3.0 + 0.9 * sev + 0.8 * pneu + 0.6 * isr("COPD_EXAC")))
        )
        cardiac_surg = isr("CABG", "VALVE")
        vent = respfail & (rng.random(m) < 0.75)
        vent |= cardiac_surg | (adult & (sev > 1.6) & (rng.random(m) < 0.4))
        vent |= isr("STROKE") & (rng.random(m) < 0.2)
        vent |= nb & P["prem"][pat] & (rng.random(m) < 0.3)
        gib = isr("GI_BLEED")
        # --- ICU and care unit
        p_icu = np.array([rs.p_icu for rs in _REASONS])[reason]
        icu = rng.random(m) < p_icu
        icu |= vent | shock
        cu = np.array([_CU[rs.careunit] for rs in _REASONS])[reason]
        swap = adult & (rng.random(m) < 0.12)
        cu = np.where(swap, _choice(rng, m, (0.45, 0.25, 0.15, 0.05, 0.10)), cu)
        # --- services
        svc_idx = np.zeros(m, dtype=np.int64)
        for j, rs in enumerate(_REASONS):
            sel = reason == j
            if sel.any():
                opts = np.array([_SVC[s] for s in rs.services])
                svc_idx[sel] = opts[_choice(rng, int(sel.sum()), rs.service_p)]
        medical = np.isin(svc_idx, (_SVC["MED"],))
        svc_idx = np.where(medical & has("METS") & (rng.random(m) < 0.5), _SVC["OMED"], svc_idx)
        # --- latent lab parameters
        q: dict[str, Arr] = {k: P[k][pat] for k in _BASE_KEYS}
        n01 = rng.standard_normal
        spos = np.maximum(sev, 0.0)
        q["cr_a"] = (0.10 * sev + aki * np.log(rng.uniform(1.6, 3.0, m)) + 0.25 * sepsis
                     + 0.15 * isr("CHF_EXAC") + 0.08 * n01(m))  # fmt: skip
        q["bunx_a"] = 0.25 * gib + 0.15 * isr("CHF_EXAC") + 0.1 * spos
        hgb_a = -(0.3 * spos + 0.4) - 2.5 * gib - 2.0 * surgical - 0.8 * sepsis + 0.5 * n01(m)
        q["hgb_a"] = np.where(nb, 0.3 * n01(m), np.minimum(hgb_a, 0.3))
        leuko = sepsis & (rng.random(m) < 0.1)
        q["wbc_a"] = (np.where(leuko, -0.7, sepsis * (0.8 + 0.35 * n01(m))) + 0.45 * pneu
                      + 0.35 * surgical + 0.1 * sev + 0.15 * n01(m))  # fmt: skip
        q["plt_a"] = -0.35 * sepsis - 0.08 * spos + 0.1 * n01(m)
        hypo_na = rng.random(m) < 0.08
        q["na_a"] = 2.5 * n01(m) - 2.0 * isr("CHF_EXAC") - 6.0 * hypo_na
        q["k_a"] = 0.35 * n01(m) + 0.6 * aki
        q["hco3_a"] = -(2.5 * sepsis + 1.5 * spos + 2.5 * aki + 4.0 * shock) + 1.5 * n01(m)
        q["glu_a"] = 0.10 * sev + 0.15 * has("DIAB") + 0.1 * n01(m)
        q["lac_a"] = 0.7 * sepsis + 0.7 * shock + 0.3 * spos + 0.2 * gib + 0.25 * n01(m)
        q["lac_a"] = np.where(nb, 0.2 * n01(m), q["lac_a"])
        q["alb_a"] = np.where(nb, 0.0, -0.5 * sepsis - 0.15 * spos + 0.15 * n01(m))
        q["inr_a"] = 0.15 * sepsis + 0.1 * has("LIVER") + 0.05 * n01(m)
        q["lft_a"] = 0.3 * sepsis + 0.8 * shock + 0.2 * n01(m)
        p_rise = _sig(-2.0 + 0.9 * has("RENAL") + 0.5 * has("CHF") + 0.25 * sev + 0.5 * aki)
        q["rise"] = np.where(
            adult & (rng.random(m) < p_rise), np.log1p(rng.uniform(0.25, 0.8, m)), 0.0
        )
        q["los"] = np.full(m, np.inf)
        q["die"] = np.zeros(m)
        q["hep"] = np.zeros(m)
        # --- death, driven by day-1 (6 h) latent labs
        t1 = np.full(m, 0.25)
        lac1, cr1, hco31 = _latent("lac", q, t1), _latent("cr", q, t1), _latent("hco3", q, t1)
        lin = (-3.2 + 0.55 * np.clip(lac1 - 2.0, -1.0, 8.0) + 0.035 * (age - 65.0)
               + 0.6 * np.log(cr1) + 0.10 * np.maximum(0.0, 22.0 - hco31) + 0.8 * sepsis
               + 0.6 * shock + _CU_DEATH_EFFECT[cu] + 0.4 * has("METS") + 0.4 * has("LIVER")
               + 0.15 * frail)  # fmt: skip
        lin = np.where(icu, lin, lin - 1.5)
        p_die = np.where(nb, 0.003, _sig(lin))
        died = rng.random(m) < p_die
        icu_death = died & icu & (rng.random(m) < 0.88)
        # --- length of stay
        pre = np.where(
            surgical & elective,
            rng.uniform(0.1, 0.4, m),
            np.where(
                rng.random(m) < 0.55,
                rng.uniform(0.01, 0.08, m),
                np.clip(_lognormal(rng, np.log(0.6), 1.0, m), 0.05, 6.0),
            ),
        )
        pre = np.where(nb, rng.uniform(0.0, 0.05, m), pre)
        icu1 = _lognormal(
            rng, np.log(1.9) + 0.28 * sev + 0.35 * sepsis + 0.35 * respfail - 0.3 * cardiac_surg,
            0.75, m,
        )  # fmt: skip
        icu1 = np.where(nb, np.where(P["prem"][pat], _lognormal(rng, np.log(18.0), 0.6, m),
                                     _lognormal(rng, np.log(2.0), 0.6, m)), icu1)  # fmt: skip
        icu1 = np.clip(icu1, 0.1, 90.0)
        has2 = icu & adult & (rng.random(m) < 0.09)
        mid = np.where(has2, _lognormal(rng, np.log(1.5), 0.7, m), 0.0)
        icu2 = np.where(
            has2, np.clip(_lognormal(rng, np.log(1.6) + 0.2 * sev, 0.7, m), 0.1, 60), 0.0
        )
        post = _lognormal(
            rng,
            np.log(2.6) + 0.18 * sev + 0.18 * frail + 0.35 * surgical + 0.25 * sepsis + 0.1 * age_s,
            0.8, m,
        )  # fmt: skip
        post = np.where(rng.random(m) < 0.08, rng.uniform(0.05, 0.3, m), post)
        post = np.where(nb, np.where(rng.random(m) < 0.7, rng.uniform(0.05, 0.3, m),
                                     _lognormal(rng, np.log(1.5), 0.6, m)), post)  # fmt: skip
        post = np.where(icu_death, 0.0, post)
        noicu_los = _lognormal(rng, np.log(4.0) + 0.2 * sev + 0.3 * surgical + 0.3 * sepsis, 0.7, m)
        noicu_los = np.clip(noicu_los, 0.2, 120.0)
        los = np.where(icu, pre + icu1 + mid + icu2 + post, noicu_los)
        admit_s = admit
        in1 = admit_s + _secs(pre)
        out1 = in1 + _secs(icu1)
        in2 = out1 + _secs(mid)
        out2 = in2 + _secs(icu2)
        disch = _minute(admit_s + _secs(los))
        disch = np.maximum(disch, admit_s + 600)
        last_out = np.where(has2, out2, out1)
        # ICU deaths: the last ICU stay ends with the death, which is the discharge
        last_out = np.where(icu_death, disch, np.minimum(last_out, disch))
        out1 = np.where(has2, np.minimum(out1, disch), last_out)
        out2 = np.where(has2, last_out, out2)
        in1 = np.minimum(in1, out1 - 60)
        in2 = np.where(has2, np.clip(in2, out1 + 60, out2 - 60), in2)
        los = (disch - admit_s) / _DAY
        q["los"] = los
        q["die"] = died.astype(float)
        # --- discharge location
        disloc = np.full(m, _DEAD, dtype=np.int64)
        logw = np.zeros((m, _DEAD))
        base = np.array([0.0, 0.0, -0.6, -1.0, -2.5, -2.8, -4.2, -3.8, -3.5, -4.5, -4.5, -4.8])
        logw[:] = base
        ortho = isr("HIP_FX", "JOINT").astype(float)
        logw[:, 0] += -0.6 * age_s + 0.6 * elective
        logw[:, 1] += 0.3 * age_s
        logw[:, 2] += 0.8 * age_s + 0.4 * frail + 0.3 * np.log1p(los)
        logw[:, 3] += 0.4 * age_s + 1.2 * ortho + 0.6 * isr("STROKE")
        logw[:, 4] += 0.8 * respfail + 0.02 * los
        logw[:, 6] += 1.5 * has("METS")
        logw[:, 7] += 1.5 * has("ALCOHOL") - 0.5 * age_s
        logw[:, 8] += 0.8 * sepsis
        dl = _gumbel_argmax(rng, logw)
        dl_nb = _choice(rng, m, (0.8, 0.1, 0, 0, 0, 0.07, 0, 0, 0, 0, 0, 0.03))
        disloc = np.where(died, _DEAD, np.where(nb, dl_nb, dl))
        # --- drugs
        F = {
            "nb": nb, "adult": adult, "icu": icu, "sepsis": sepsis, "shock": shock, "pneu": pneu,
            "uti": uti, "aki": aki, "vent": vent, "gib": gib, "surgical": surgical,
            "cardiac_surg": cardiac_surg, "ami": isr("AMI", "PCI"), "stroke": isr("STROKE"),
            "chf_exac": isr("CHF_EXAC"), "copd_exac": isr("COPD_EXAC"), "warf": P["warf"][pat],
            "esrd": P["esrd"][pat], "los": los, "sev": sev,
        }  # fmt: skip
        for c in _CONDS:
            F[c.key] = has(c.key)
        F["diab1"] = has("DIAB") & (
            np.array(_CONDS[_CI["DIAB"]].codes)[P["code"][pat, _CI["DIAB"]]] == "25001"
        )
        F["brain_mets"] = has("METS") & (P["code"][pat, _CI["METS"]] == 2)
        meds = _select_drugs(rng, F)
        q["hep"] = meds[:, _DI["HEP_DRIP"]].astype(float)
        hr_count = np.zeros(m)
        for cls in _HR_CLASSES:
            cols = [i for i, d in enumerate(_DRUGS) if d.hr == cls]
            hr_count += meds[:, cols].any(axis=1)
        # --- coded comorbidities of this admission (coding sensitivity 92 %)
        coded = com & (rng.random(com.shape) < 0.92)
        coded[:, _CI["CHF"]] |= isr("CHF_EXAC")
        coded[:, _CI["COPD"]] |= isr("COPD_EXAC")
        # --- 30-day readmission risk, from this admission's facts at discharge
        tend = los
        t48 = np.maximum(los - 2.0, 0.0)
        hgb_end, bun_end = _latent("hgb", q, tend), _latent("bun", q, tend)
        cr_end = _latent("cr", q, tend)
        cr_rise = cr_end - _latent("cr", q, t48)
        elix = coded[:, [i for i, c in enumerate(_CONDS) if c.elix]].sum(axis=1)
        major = coded[:, [_CI[k] for k in _MAJOR]].sum(axis=1)
        dis_eff = np.array([0.0, 0.2, 0.45, 0.45, 0.45, 0.2, -1.0, 0.9, 0.2, 0.2, 0.45, 0.2, 0.0])
        r = (-4.6 + 0.12 * elix + 0.45 * major + 0.35 * np.minimum(prior12, 4)
             + 0.30 * np.clip(11.0 - hgb_end, 0.0, 5.0)
             + 0.55 * np.clip(np.log(cr_end / 1.1), 0.0, 2.0)
             + 0.012 * np.clip(bun_end - 20.0, 0.0, 80.0) + 1.1 * np.clip(cr_rise, 0.0, 2.0)
             + dis_eff[disloc] + 0.22 * hr_count + 0.25 * np.log1p(los)
             + 0.012 * (age - 65.0))  # fmt: skip
        p_readmit = np.where(adult & ~died, _sig(r), 0.0)
        # --- admission location / ED times
        loc_em = _choice(rng, m, (0.62, 0.2, 0.12, 0.04, 0.0, 0.02))
        loc_em = np.where((prev_dis == 2) & (rng.random(m) < 0.5), 4, loc_em)
        loc_el = np.where(rng.random(m) < 0.95, 3, 2)
        loc_ur = _choice(rng, m, (0.0, 0.7, 0.1, 0.2, 0.0, 0.0))
        loc_nb = np.where(P["prem"][pat] | (rng.random(m) < 0.1), 2, 3)
        adm_loc = np.select(
            [atype == _EMERG, atype == _ELECT, atype == _URG], [loc_em, loc_el, loc_ur], loc_nb
        )
        ed = adm_loc == 0
        edreg = admit_s - _secs(rng.uniform(1.5, 8.0, m) / 24)
        edout = np.maximum(admit_s + _secs(rng.uniform(-0.5, 1.5, m) / 24), edreg + 1800)
        # diagnosis text
        tix = np.zeros(m, dtype=np.int64)
        for j, rs in enumerate(_REASONS):
            sel = reason == j
            if sel.any():
                tix[sel] = rng.integers(0, len(rs.texts), int(sel.sum()))
        cu2 = np.where(rng.random(m) < 0.8, cu, _choice(rng, m, (0.45, 0.25, 0.15, 0.05, 0.10)))
        cu2 = np.where(nb, cu, cu2)
        out: dict[str, Arr] = {
            "pat": pat, "admittime": admit_s, "dischtime": disch, "atype": atype, "reason": reason,
            "text_idx": tix, "sev": sev, "age": age, "sepsis": sepsis, "shock": shock, "pneu": pneu,
            "uti": uti, "aki": aki, "respfail": respfail, "vent": vent, "icu": icu, "cu": cu,
            "cu2": cu2, "has2": has2, "in1": in1, "out1": out1, "in2": in2,
            "out2": out2, "icu_death": icu_death, "died": died.astype(np.int64), "los": los,
            "discharge_location": disloc, "service": svc_idx, "meds": meds, "hr_count": hr_count,
            "coded": coded, "prior12": prior12, "p_readmit": p_readmit,
            "admission_location": adm_loc,
            "ed": ed, "edregtime": edreg, "edouttime": edout, "elective": elective,
            "dbsource": (rng.random(m) < np.where(nb, 0.8, 0.55)).astype(np.int64),
            "insurance": np.where(rng.random(m) < 0.9, P["insurance"][pat],
                                  _choice(rng, m, (0.4, 0.35, 0.2, 0.03, 0.02))),
        }  # fmt: skip
        out.update(q)
        return out

    # ---------------------------------------------------------------- labs
    def labs(self) -> dict[str, Arr]:
        rng, A, P = self.rng, self.A, self.P
        na = len(A["pat"])
        los = A["los"]
        nb = P["nb"][A["pat"]]
        # panel times (days since admission)
        icu_days = np.where(A["icu"], (A["out1"] - A["in1"]) / _DAY, 0.0)
        icu2_days = np.where(A["has2"], (A["out2"] - A["in2"]) / _DAY, 0.0)
        rate_w = np.where(nb, 0.5, 2.05)
        rate_i = np.where(nb, 0.3, 1.9)
        n_w = rng.poisson(rate_w * los)
        n_i1 = rng.poisson(rate_i * icu_days)
        n_i2 = rng.poisson(rate_i * icu2_days)
        first_t = np.minimum(rng.uniform(0.02, 0.2, na), los * 0.5)
        last_ok = los > 0.6
        last_t = los - rng.uniform(0.1, 0.4, na)
        mid_ok = (los > 2.5) & ~nb
        mid_t = los - rng.uniform(1.2, 1.8, na)
        parts_adm = [
            np.arange(na),
            np.flatnonzero(last_ok),
            np.flatnonzero(mid_ok),
            np.repeat(np.arange(na), n_w),
            np.repeat(np.arange(na), n_i1),
            np.repeat(np.arange(na), n_i2),
        ]
        a_w, a_i1, a_i2 = parts_adm[3], parts_adm[4], parts_adm[5]
        i1s = (A["in1"] - A["admittime"]) / _DAY
        i2s = (A["in2"] - A["admittime"]) / _DAY
        parts_t = [
            first_t,
            last_t[last_ok],
            mid_t[mid_ok],
            rng.random(len(a_w)) * los[a_w],
            i1s[a_i1] + rng.random(len(a_i1)) * icu_days[a_i1],
            i2s[a_i2] + rng.random(len(a_i2)) * icu2_days[a_i2],
        ]
        forced = [np.ones(len(parts_adm[i]), dtype=bool) for i in range(3)] + [
            np.zeros(len(parts_adm[i]), dtype=bool) for i in range(3, 6)
        ]
        p_adm = np.concatenate(parts_adm)
        p_t = np.clip(np.concatenate(parts_t), 0.0, los[np.concatenate(parts_adm)] - 1 / 1440)
        p_forced = np.concatenate(forced)
        p_t = np.maximum(p_t, 0.0)
        p_time = _minute(A["admittime"][p_adm] + _secs(p_t))
        order = np.lexsort((p_time, p_adm))
        p_adm, p_t, p_forced, p_time = p_adm[order], p_t[order], p_forced[order], p_time[order]
        # de-duplicate panels at the same minute
        keep = np.r_[True, (p_adm[1:] != p_adm[:-1]) | (p_time[1:] != p_time[:-1])]
        p_adm, p_t, p_forced, p_time = p_adm[keep], p_t[keep], p_forced[keep], p_time[keep]
        npn = len(p_adm)
        in_icu = (A["icu"][p_adm] & (p_time >= A["in1"][p_adm]) & (p_time <= A["out1"][p_adm])) | (
            A["has2"][p_adm] & (p_time >= A["in2"][p_adm]) & (p_time <= A["out2"][p_adm])
        )
        first_day = p_t < 1.0
        pnb = nb[p_adm]
        sep = A["sepsis"][p_adm]
        liver = P["com"][A["pat"][p_adm], _CI["LIVER"]]
        anticoag = A["meds"][p_adm][:, [_DI["WARF"], _DI["HEP_DRIP"]]].any(axis=1)
        prob = {
            "CBC": np.where(pnb, 0.7, 0.93),
            "CHEM": np.where(pnb, 0.35, 0.95),
            "MCP": np.where(pnb, 0.2, np.where(in_icu, 0.8, 0.6)),
            "LAC": np.where(
                pnb,
                0.05,
                np.where(first_day & in_icu, 0.85, np.where(sep, 0.5, np.where(in_icu, 0.3, 0.05))),
            ),
            "ALB": np.where(first_day, 0.5, np.where(liver, 0.3, 0.08)),
            "COAG": np.where(first_day, 0.75, np.where(anticoag, 0.6, 0.22)),
            "LFT": np.where(first_day, 0.45, np.where(liver, 0.35, 0.06)),
        }
        inc = {g: rng.random(npn) < p for g, p in prob.items()}
        # admission, pre-discharge and discharge-day panels always carry CBC + chemistry (adults)
        force = p_forced & ~pnb
        inc["CBC"] |= force
        inc["CHEM"] |= force
        first_panel = np.r_[True, p_adm[1:] != p_adm[:-1]]
        inc["LAC"] |= first_panel & A["icu"][p_adm] & ~pnb & (rng.random(npn) < 0.9)
        none = ~np.any(np.stack(list(inc.values())), axis=0)
        inc["CBC"] |= none
        q = {k: A[k][p_adm] for k in (*_BASE_KEYS, *_ACUTE_KEYS)}
        V = self._lab_values(q, p_t, inc)
        return {"adm": p_adm, "t": p_t, "time": p_time, "V": V, "in_icu": in_icu}

    def _lab_values(self, q: dict[str, Arr], t: Arr, inc: dict[str, Arr]) -> Arr:
        rng = self.rng
        npn = len(t)
        V = np.full((npn, len(_LABS)), np.nan)
        for g, keys in _GROUPS.items():
            sel = np.flatnonzero(inc[g])
            if not len(sel):
                continue
            qs = {k: v[sel] for k, v in q.items()}
            ts = t[sel]
            for key in keys:
                if key in ("ag", "cl", "hct", "pt"):
                    continue
                lab = _LABS[_LAB_IDX[key]]
                v = _latent(key, qs, ts)
                if lab.noise_kind == "mul":
                    v = v * np.exp(lab.noise * rng.standard_normal(len(sel)))
                else:
                    v = v + lab.noise * rng.standard_normal(len(sel))
                V[sel, _LAB_IDX[key]] = np.round(np.clip(v, lab.vmin, lab.vmax), lab.dec)
            if g == "CBC":
                hct = V[sel, _LAB_IDX["hgb"]] * 3.0 + 0.8 * rng.standard_normal(len(sel))
                V[sel, _LAB_IDX["hct"]] = np.round(np.clip(hct, 10.0, 65.0), 1)
            if g == "CHEM":
                lac = _latent("lac", qs, ts)
                ag_true = qs["ag_b"] + 1.2 * (lac - 1.0)
                na_v, hco3_v = V[sel, _LAB_IDX["na"]], V[sel, _LAB_IDX["hco3"]]
                cl = na_v - hco3_v - ag_true + 1.3 * rng.standard_normal(len(sel))
                cl = np.round(np.clip(cl, 70.0, 140.0), 0)
                V[sel, _LAB_IDX["cl"]] = cl
                V[sel, _LAB_IDX["ag"]] = np.clip(na_v - cl - hco3_v, 0.0, 45.0)
            if g == "COAG":
                pt = 11.8 * V[sel, _LAB_IDX["inr"]] + 0.35 * rng.standard_normal(len(sel))
                V[sel, _LAB_IDX["pt"]] = np.round(np.clip(pt, 9.0, 120.0), 1)
        return V

    def outpatient_labs(self, dod: Arr) -> dict[str, Arr]:
        """Outpatient panels (no hadm_id) in the year around a patient's admissions."""
        rng, A, P, n = self.rng, self.A, self.P, self.n
        adult = ~P["nb"]
        lam = np.where(
            adult, 8.5 * np.exp(0.3 * np.clip(P["frail"], -3, 3)) + 4.0 * P["com"][:, _CI["RENAL"]]
            + 3.0 * P["warf"], 0.0,
        )  # fmt: skip
        cnt = rng.poisson(lam)
        first = np.full(n, np.iinfo(np.int64).max)
        last = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(first, A["pat"], A["admittime"])
        np.maximum.at(last, A["pat"], A["dischtime"])
        lo = np.maximum(first - 365 * _DAY, _T2100)
        hi = np.minimum(last + 365 * _DAY, np.where(dod > 0, dod, _T2200))
        hi = np.maximum(hi, lo + _DAY)
        pat = np.repeat(np.arange(n), cnt)
        t = _minute(lo[pat] + (rng.random(len(pat)) * (hi[pat] - lo[pat])).astype(np.int64))
        # drop times that fall inside an admission of the same patient (A is sorted by pat, time)
        key_adm = A["pat"] * np.int64(10**10) + A["admittime"]
        key = pat * np.int64(10**10) + t
        j = np.searchsorted(key_adm, key, side="right") - 1
        jj = np.maximum(j, 0)
        inside = (j >= 0) & (A["pat"][jj] == pat) & (t <= A["dischtime"][jj] + 3600)
        inside |= (dod[pat] > 0) & (t >= dod[pat])
        pat, t = pat[~inside], t[~inside]
        order = np.lexsort((t, pat))
        pat, t = pat[order], t[order]
        keep = (
            np.r_[True, (pat[1:] != pat[:-1]) | (t[1:] != t[:-1])]
            if len(pat)
            else np.zeros(0, bool)
        )
        pat, t = pat[keep], t[keep]
        npn = len(pat)
        warf = P["warf"][pat]
        liver = P["com"][pat, _CI["LIVER"]]
        prob = {
            "CBC": np.full(npn, 0.8), "CHEM": np.full(npn, 0.9), "MCP": np.full(npn, 0.25),
            "LAC": np.zeros(npn), "ALB": np.where(liver, 0.4, 0.1),
            "COAG": np.where(warf, 0.85, 0.15), "LFT": np.where(liver, 0.5, 0.15),
        }  # fmt: skip
        inc = {g: rng.random(npn) < p for g, p in prob.items()}
        inc["CBC"] |= ~np.any(np.stack(list(inc.values())), axis=0)
        q = {k: P[k][pat] for k in _BASE_KEYS}
        for k in _ACUTE_KEYS:
            q[k] = np.zeros(npn)
        q["los"] = np.full(npn, np.inf)
        V = self._lab_values(q, np.zeros(npn), inc)
        return {"pat": pat, "time": t, "V": V}


def _select_drugs(rng: np.random.Generator, F: dict[str, Arr]) -> Arr:
    """Bool matrix (admissions x drugs) from indication-driven probabilities."""
    m = len(F["nb"])
    f = {k: np.asarray(v, dtype=float) for k, v in F.items()}
    ad, nb, icu = f["adult"], f["nb"], f["icu"]
    ther = np.clip(f["warf"] * 0.85 + f["ami"] * 0.5 + f["ARRHY"] * 0.1, 0, 1)
    p = np.zeros((m, len(_DRUGS)))

    def set_(k: str, v: Arr | float) -> None:
        p[:, _DI[k]] = np.clip(v, 0.0, 1.0)

    u = rng.random(m)
    on_ther = rng.random(m) < ther
    set_("HEP_DRIP", ad * on_ther * np.where(f["ami"] > 0, 1.0, 0.4))
    set_("WARF", ad * on_ther * f["warf"])
    set_("ENOX_TX", ad * on_ther * (1 - f["warf"]) * 0.3)
    proph = ad * (1 - on_ther)
    set_("HEP_SC", proph * (u < 0.6))
    set_("ENOX_PR", proph * ((u >= 0.6) & (u < 0.85)))
    set_("INS_SS", ad * (0.25 + 0.7 * f["DIAB"] + 0.25 * icu))
    set_("INS_GLAR", ad * f["DIAB"] * (0.25 + 0.6 * f["diab1"]))
    set_("MORPH", ad * (0.12 + 0.5 * f["surgical"] + 0.15 * f["ami"]))
    set_("HYDRO", ad * (0.08 + 0.45 * f["surgical"] + 0.1 * f["METS"]))
    set_("OXY", ad * (0.1 + 0.5 * f["surgical"] + 0.2 * f["METS"]))
    set_("FENT", ad * (0.05 + 0.6 * f["vent"]))
    set_("FURO_IV", ad * (0.12 + 0.85 * f["chf_exac"] + 0.2 * f["CHF"] + 0.3 * f["cardiac_surg"]))
    set_("FURO_PO", ad * (0.04 + 0.6 * f["CHF"]))
    set_("NOREPI", ad * (0.02 + 0.9 * f["shock"] + 0.05 * icu * (f["sev"] > 1.5)))
    set_("VANC", ad * (0.08 + 0.85 * f["sepsis"] + 0.35 * f["pneu"]) + nb * 0.05)
    set_("PIPTAZ", ad * (0.03 + 0.75 * f["sepsis"] + 0.25 * f["pneu"]))
    set_("CTX", ad * (0.03 + 0.6 * f["pneu"] + 0.4 * f["uti"]))
    set_("AZITH", ad * 0.55 * f["pneu"])
    set_("LEVO", ad * (0.03 + 0.2 * f["pneu"] + 0.2 * f["COPD"] * f["copd_exac"]))
    set_("CEFAZ", ad * (0.05 + 0.9 * f["surgical"]))
    set_("METRO", ad * (0.02 + 0.3 * f["sepsis"] + 0.6 * (f["surgical"] * f["METS"])))
    set_("ACET", ad * 0.75 + nb * 0.1)
    set_("DOCU", ad * 0.6)
    set_("SENNA", ad * 0.5)
    set_("PANTO", ad * (0.4 + 0.55 * f["gib"]))
    set_("FLUSH", ad * 0.7)
    set_("NS", ad * 0.6 + nb * 0.3)
    set_("KCL", ad * (0.3 + 0.2 * icu))
    set_("MAG", ad * (0.25 + 0.2 * icu))
    set_("METOP", ad * (0.15 + 0.5 * f["CAD"] + 0.4 * f["ARRHY"] + 0.5 * f["ami"]))
    set_("LISIN", ad * (0.1 + 0.35 * f["HTN"] + 0.3 * f["CHF"]) * (1 - f["aki"]))
    set_("ATORVA", ad * (0.05 + 0.6 * f["HLD"] + 0.5 * f["CAD"] + 0.4 * f["ami"]))
    set_("ASA", ad * (0.1 + 0.7 * f["CAD"] + 0.8 * f["ami"] + 0.3 * f["stroke"]))
    set_("CLOPI", ad * (0.8 * f["ami"] + 0.3 * f["stroke"]))
    set_("ALBUT", ad * (0.1 + 0.8 * f["COPD"] + 0.3 * f["pneu"]))
    set_("IPRA", ad * (0.05 + 0.7 * f["COPD"]))
    set_("PRED", ad * (0.02 + 0.8 * f["copd_exac"]))
    set_("LACTU", ad * 0.75 * f["LIVER"])
    set_("RIFAX", ad * 0.45 * f["LIVER"])
    set_("SEVEL", ad * f["RENAL"] * (0.2 + 0.6 * f["esrd"]))
    set_("EPO", ad * f["RENAL"] * (0.1 + 0.5 * f["esrd"]))
    set_("AMIO", ad * (0.25 * f["ARRHY"] + 0.3 * f["cardiac_surg"]))
    set_("DILT", ad * 0.3 * f["ARRHY"])
    set_("METF", ad * f["DIAB"] * (1 - f["diab1"]) * (1 - f["RENAL"]) * 0.4)
    set_("ONDAN", ad * (0.15 + 0.3 * f["surgical"] + 0.3 * f["METS"]))
    set_("PROPO", ad * 0.85 * f["vent"])
    set_("FESO4", ad * (0.03 + 0.4 * f["ANEMIA"] + 0.2 * f["gib"]))
    set_("LEVOTHY", ad * 0.95 * f["HYPOTHY"])
    set_("SERTR", ad * 0.5 * f["DEPRESS"])
    set_("THIAM", ad * (0.02 + 0.85 * f["ALCOHOL"]))
    set_("LORAZ", ad * (0.05 + 0.5 * f["ALCOHOL"] + 0.1 * f["vent"]))
    set_("DEXA", ad * (0.02 + 0.8 * f["brain_mets"]))
    set_("AMP", nb * 0.4)
    set_("GENT", nb * 0.38)
    set_("HEPB", nb * 0.8)
    set_("VITK", nb * 0.9)
    return rng.random((m, len(_DRUGS))) < p


# --------------------------------------------------------------------------------------------
# Derived tables (still local indices)
# --------------------------------------------------------------------------------------------

_DX_CODES = tuple(_DX)
_DXI = {c: i for i, c in enumerate(_DX_CODES)}
_PX_CODES = tuple(_PX)
_PXI = {c: i for i, c in enumerate(_PX_CODES)}


def _prev_any(group: Arr, flag: Arr) -> Arr:
    """True where an earlier row of the same (sorted) group has flag set."""
    f = flag.astype(np.int64)
    c = np.cumsum(f)
    n = len(group)
    starts = np.r_[True, group[1:] != group[:-1]] if n else np.zeros(0, bool)
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0)) if n else np.zeros(0, np.int64)
    base = c[first] - f[first]
    return (c - f - base) > 0


class _Coder:
    """Collects (admission, code, priority) triples and orders them into seq_num."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.adm: list[Arr] = []
        self.code: list[Arr] = []
        self.prio: list[Arr] = []

    def add(self, mask: Arr, code: Arr | int, prio: int, p: Arr | float = 1.0) -> None:
        sel = np.asarray(mask, dtype=bool) & (self.rng.random(len(mask)) < p)
        idx = np.flatnonzero(sel)
        c = np.asarray(code)
        self.adm.append(idx)
        self.code.append(
            np.broadcast_to(c, (len(mask),))[idx] if c.ndim else np.full(len(idx), int(c))
        )
        self.prio.append(np.full(len(idx), prio))

    def result(self) -> tuple[Arr, Arr, Arr]:
        adm = np.concatenate(self.adm).astype(np.int64)
        code = np.concatenate(self.code).astype(np.int64)
        prio = np.concatenate(self.prio).astype(np.int64)
        jit = self.rng.random(len(adm))
        order = np.lexsort((jit, prio, adm))
        adm, code = adm[order], code[order]
        key = adm * 100000 + code
        _, first = np.unique(key, return_index=True)
        keep = np.sort(first)
        adm, code = adm[keep], code[keep]
        return adm, code, _rank_in_group(adm) + 1


def _diagnoses(b: _Batch) -> tuple[Arr, Arr, Arr]:
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    pat = A["pat"]
    nb = P["nb"][pat]
    reason = A["reason"]
    rk = np.array([r.key for r in _REASONS])[reason]
    C = _Coder(rng)
    cond_code = np.array(
        [[_DXI[c] for c in cond.codes] + [0] * (5 - len(cond.codes)) for cond in _CONDS]
    )
    pcode = cond_code[np.arange(len(_CONDS))[None, :], P["code"][pat]]  # (na, K) dx index
    # primary diagnosis
    prim = np.array([_DXI[r.dx] for r in _REASONS])[reason]
    chf_code = pcode[:, _CI["CHF"]]
    prim = np.where(
        rk == "CHF_EXAC", np.where(chf_code == _DXI["42832"], _DXI["42833"], chf_code), prim
    )
    prim = np.where(nb & (rng.random(na) < 0.35), _DXI["V3001"], prim)
    hip = rng.random(na) < 0.5
    A["joint_hip"] = hip & (rk == "JOINT")
    prim = np.where(A["joint_hip"], _DXI["71535"], prim)
    C.add(np.ones(na, bool), prim, 0)
    sepsis, shock = A["sepsis"], A["shock"]
    C.add(sepsis & (rk != "SEPSIS"), _DXI["0389"], 2)
    C.add(sepsis & ~shock, _DXI["99591"], 1)
    C.add(shock, _DXI["99592"], 1)
    C.add(shock, _DXI["78552"], 1)
    C.add(rk == "GI_BLEED", _DXI["2851"], 1, 0.6)
    C.add(rk == "HIP_FX", _DXI["2851"], 1, 0.3)
    C.add(rk == "AMI", _DXI["41401"], 1, 0.7)
    asp = rng.random(na) < 0.1
    C.add(A["pneu"] & ~asp, _DXI["486"], 2)
    C.add(A["pneu"] & asp, _DXI["5070"], 2)
    C.add(A["uti"], _DXI["5990"], 2)
    C.add(A["aki"], _DXI["5849"], 2)
    C.add(A["respfail"], _DXI["51881"], 2)
    C.add((rk == "CHF_EXAC") | A["pneu"], _DXI["5119"], 2, 0.2)
    # electrolyte / haematology codes from the latent day-1 and end-of-stay values
    q = {k: A[k] for k in (*_BASE_KEYS, *_ACUTE_KEYS)}
    t1 = np.full(na, 0.25)
    na1, k1, hco31 = _latent("na", q, t1), _latent("k", q, t1), _latent("hco3", q, t1)
    C.add(~nb & (na1 < 133), _DXI["2761"], 2, 0.8)
    C.add(~nb & (k1 < 3.4), _DXI["2768"], 2, 0.7)
    C.add(~nb & (k1 > 5.2), _DXI["2767"], 2, 0.7)
    C.add(~nb & (hco31 < 20), _DXI["2762"], 2, 0.7)
    C.add(~nb, _DXI["27651"], 2, 0.05)
    C.add(~nb & (_latent("inr", q, t1) > 1.5) & ~P["warf"][pat], _DXI["2869"], 2, 0.6)
    C.add(~nb & (_latent("plt", q, t1) < 100), _DXI["2875"], 2, 0.6)
    C.add(~nb & (_latent("hgb", q, A["los"]) < 8), _DXI["2851"], 2, 0.5)
    C.add(~nb & (rng.random(na) < 0.04), _DXI["78097"], 3)
    # chronic conditions as coded on this admission
    for j in range(len(_CONDS)):
        C.add(A["coded"][:, j], pcode[:, j], 3)
    mets = A["coded"][:, _CI["METS"]]
    pc_code = np.array([_DXI[c] for c in _PRIMARY_CANCER])[P["primary_cancer"][pat]]
    C.add(mets, pc_code, 3, 0.9)
    C.add(A["coded"][:, _CI["LIVER"]], _DXI["5723"], 3, 0.3)
    # history / status codes
    C.add(P["tobacco"][pat], _DXI["3051"], 4, 0.7)
    C.add(~P["tobacco"][pat] & ~nb, _DXI["V1582"], 4, 0.1)
    C.add(P["gerd"][pat], _DXI["53081"], 4, 0.8)
    C.add(P["warf"][pat], _DXI["V5861"], 4, 0.8)
    C.add(A["meds"][:, _DI["INS_GLAR"]], _DXI["V5867"], 4, 0.7)
    C.add(_prev_any(pat, rk == "CABG"), _DXI["V4581"], 4, 0.9)
    C.add(_prev_any(pat, np.isin(rk, ("PCI", "AMI"))), _DXI["V4582"], 4, 0.6)
    C.add(_prev_any(pat, rk == "STROKE"), _DXI["V1254"], 4, 0.8)
    C.add(~P["male"][pat] & (A["age"] > 65), _DXI["73300"], 4, 0.12)
    # newborns
    prem = P["prem"][pat]
    C.add(nb, _DXI["V053"], 1, 0.6)
    C.add(nb, _DXI["V290"], 1, 0.3)
    C.add(nb, _DXI["7746"], 1, 0.25 + 0.4 * prem)
    C.add(nb & prem, _DXI["76519"], 1, 0.9)
    C.add(nb, _DXI["7706"], 1, 0.1)
    return C.result()


def _procedures(b: _Batch) -> tuple[Arr, Arr, Arr]:
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    pat = A["pat"]
    nb = P["nb"][pat]
    rk = np.array([r.key for r in _REASONS])[A["reason"]]
    C = _Coder(rng)
    one = np.ones(na, bool)

    def pick(codes: tuple[str, ...], p: tuple[float, ...]) -> Arr:
        return np.array([_PXI[c] for c in codes])[_choice(rng, na, p)]

    C.add(rk == "CABG", pick(("3615", "3612", "3613"), (0.4, 0.3, 0.3)), 0)
    C.add(rk == "CABG", _PXI["3961"], 0, 0.95)
    C.add(rk == "CABG", _PXI["8872"], 1, 0.3)
    C.add(rk == "VALVE", pick(("3521", "3522"), (0.6, 0.4)), 0)
    C.add(rk == "VALVE", _PXI["3961"], 0, 0.95)
    for key, scale in (("PCI", 1.0), ("AMI", 0.7)):
        sel = rk == key
        C.add(sel, _PXI["3722"], 0, 0.9 * scale)
        C.add(sel, _PXI["8856"], 0, 0.9 * scale)
        C.add(sel, _PXI["0066"], 0, 0.8 * scale)
        C.add(sel, _PXI["3607"], 0, 0.75 * scale)
    C.add((rk == "JOINT") & A["joint_hip"], _PXI["8151"], 0)
    C.add((rk == "JOINT") & ~A["joint_hip"], _PXI["8154"], 0)
    C.add(rk == "HIP_FX", pick(("7915", "7935", "8151"), (0.55, 0.35, 0.1)), 0)
    C.add(rk == "COLECTOMY", pick(("4573", "4575"), (0.6, 0.4)), 0)
    C.add(rk == "GI_BLEED", _PXI["4513"], 0, 0.5)
    C.add(rk == "GI_BLEED", _PXI["4516"], 0, 0.35)
    icu_days = np.where(
        A["icu"], (A["out1"] - A["in1"] + A["has2"] * (A["out2"] - A["in2"])) / _DAY, 0
    )
    vent = A["vent"]
    C.add(vent, _PXI["9604"], 1, 0.8)
    C.add(vent & (icu_days < 4), _PXI["9671"], 1)
    C.add(vent & (icu_days >= 4), _PXI["9672"], 1)
    C.add((rk == "COPD_EXAC") & ~vent, _PXI["9390"], 1, 0.3)
    C.add(A["icu"] & ~nb, _PXI["3893"], 1, np.clip(0.3 + 0.4 * A["sepsis"] + 0.2 * vent, 0, 1))
    C.add(A["icu"] & ~nb, _PXI["3891"], 1, np.clip(0.2 + 0.5 * (rk == "CABG") + 0.2 * vent, 0, 1))
    q = {k: A[k] for k in (*_BASE_KEYS, *_ACUTE_KEYS)}
    hgb_end = _latent("hgb", q, A["los"])
    ptx = np.clip(0.7 * (rk == "GI_BLEED") + 0.25 * np.isin(rk, ("CABG", "VALVE", "HIP_FX"))
                  + 0.4 * (hgb_end < 8), 0, 1)  # fmt: skip
    C.add(~nb, _PXI["9904"], 2, ptx)
    C.add(P["esrd"][pat] | (A["aki"] & (A["sev"] > 1.0)), _PXI["3995"], 2,
          np.where(P["esrd"][pat], 0.9, 0.3))  # fmt: skip
    C.add(vent & (icu_days > 3) & ~nb, _PXI["966"], 2, 0.5)
    C.add(one, _PXI["9915"], 2, 0.02 + 0.1 * (rk == "COLECTOMY") + 0.4 * (nb & P["prem"][pat]))
    C.add(np.isin(rk, ("CABG", "VALVE")) | (one & ~nb), _PXI["3404"], 2,
          np.where(np.isin(rk, ("CABG", "VALVE")), 0.25, 0.01))  # fmt: skip
    C.add(A["coded"][:, _CI["LIVER"]], _PXI["5491"], 2, 0.2)
    C.add(vent & (icu_days > 10), _PXI["311"], 2, 0.5)
    C.add((rk == "STROKE") & (A["los"] > 7), _PXI["4311"], 2, 0.2)
    C.add(A["coded"][:, _CI["METS"]], _PXI["9925"], 2, 0.08)
    C.add(nb, _PXI["9955"], 1, 0.7)
    C.add(nb, _PXI["9983"], 1, 0.1 + 0.5 * P["prem"][pat])
    C.add(nb & P["male"][pat], _PXI["640"], 1, 0.35)
    C.add(nb & P["prem"][pat], _PXI["3893"], 1, 0.4)
    return C.result()


def _icu_index(A: dict[str, Arr]) -> tuple[Arr, Arr, Arr, Arr]:
    """ICU stays: (adm, which) sorted, plus per-admission local index of stay 1 and 2 (-1)."""
    na = len(A["pat"])
    adm = np.concatenate([np.flatnonzero(A["icu"]), np.flatnonzero(A["icu"] & A["has2"])])
    which = np.concatenate([np.zeros(int(A["icu"].sum()), np.int64),
                            np.ones(int((A["icu"] & A["has2"]).sum()), np.int64)])  # fmt: skip
    order = np.lexsort((which, adm))
    adm, which = adm[order], which[order]
    i1 = np.full(na, -1, np.int64)
    i2 = np.full(na, -1, np.int64)
    idx = np.arange(len(adm))
    i1[adm[which == 0]] = idx[which == 0]
    i2[adm[which == 1]] = idx[which == 1]
    return adm, which, i1, i2


def _prescriptions(b: _Batch, i1: Arr, i2: Arr) -> dict[str, Arr]:
    rng, A = b.rng, b.A
    adm, drug = np.nonzero(A["meds"])
    los = A["los"][adm]
    n_ord = 1 + np.minimum(rng.poisson(np.minimum(los, 30.0) * 0.12), 5)
    adm, drug, los = np.repeat(adm, n_ord), np.repeat(drug, n_ord), np.repeat(los, n_ord)
    k = len(adm)
    first_order = _rank_in_group(adm * 1000 + drug) == 0
    early = np.array([d.early for d in _DRUGS])[drug]
    days = np.array([d.days for d in _DRUGS])[drug]
    start = np.where(early, rng.uniform(0.0, 0.4, k), rng.uniform(0.0, 0.6, k)) * np.where(
        early, 1.0, los
    )
    start = np.where(first_order, start, rng.uniform(0.0, 1.0, k) * los)
    start = np.minimum(start, los)
    dur = np.where(
        days > 0,
        _lognormal(rng, np.log(np.maximum(days, 0.5)), 0.5, k),
        np.where(rng.random(k) < 0.7, los, _lognormal(rng, np.log(3.0), 0.7, k)),
    )
    end = np.minimum(start + dur, los)
    t_start = A["admittime"][adm] + _secs(start)
    t_end = A["admittime"][adm] + _secs(end)
    order = np.lexsort((drug, t_start, adm))
    adm, drug, t_start, t_end = adm[order], drug[order], t_start[order], t_end[order]
    in_1 = (i1[adm] >= 0) & (t_start >= A["in1"][adm]) & (t_start <= A["out1"][adm])
    in_2 = (i2[adm] >= 0) & (t_start >= A["in2"][adm]) & (t_start <= A["out2"][adm])
    icu = np.where(in_1, i1[adm], np.where(in_2, i2[adm], -1))
    return {"adm": adm, "drug": drug, "start": _day(t_start), "end": _day(t_end), "icu": icu}


def _micro(b: _Batch) -> dict[str, Arr]:
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    nb = P["nb"][A["pat"]].astype(float)
    ad = 1.0 - nb
    f = {k: A[k].astype(float) for k in ("sepsis", "pneu", "uti", "icu", "vent", "respfail")}
    los = A["los"]
    lam = np.stack([
        ad * (0.5 * f["icu"] + 1.8 * f["sepsis"] + 0.6 * f["pneu"] + 0.4 * f["uti"]
              + 0.05 * np.minimum(los, 30)) + nb * 0.8,
        ad * (0.35 + 0.8 * f["uti"] + 0.4 * f["sepsis"]),
        ad * (0.1 + 0.9 * f["pneu"] + 0.5 * f["respfail"] * f["vent"]),
        ad * 0.55 * f["icu"],
        ad * np.minimum(0.03 + 0.01 * los, 0.4),
    ], axis=1)  # fmt: skip
    cnt = np.minimum(rng.poisson(lam), 6)
    cnt[:, 3] = np.minimum(cnt[:, 3], 1)
    cnt[:, 4] = np.minimum(cnt[:, 4], 2)
    adm = np.repeat(np.repeat(np.arange(na), 5), cnt.ravel())
    spec = np.repeat(np.tile(np.arange(5), na), cnt.ravel())
    k = len(adm)
    early = rng.random(k) < 0.6
    t = np.where(early, rng.random(k) * np.minimum(1.0, los[adm]), rng.random(k) * los[adm])
    time = _minute(A["admittime"][adm] + _secs(t))
    sep, uti, pneu = A["sepsis"][adm], A["uti"][adm], A["pneu"][adm]
    p_pos = np.select(
        [spec == 0, spec == 1, spec == 2, spec == 3],
        [np.where(nb[adm] > 0, 0.02, np.where(sep, 0.35, 0.04)), np.where(uti, 0.75, 0.12),
         np.where(pneu, 0.45, 0.15), np.full(k, 0.08)],
        0.12,
    )  # fmt: skip
    pos = rng.random(k) < p_pos
    orgmat = np.stack([_choice(rng, na, _ORG_P[s]) for s in range(5)], axis=1)
    org = np.where(pos, orgmat[adm, spec], -1)
    cls_names = ("gn", "staph", "entero", "strep", "pseudo")
    org_cls = np.array([cls_names.index(o[2]) if o[2] in cls_names else -1 for o in _ORGS])
    cls = np.where(org >= 0, org_cls[np.maximum(org, 0)], -1)
    plen = np.array([len(_ABX_PANELS[c]) for c in cls_names])
    nrow = np.where(cls >= 0, plen[np.maximum(cls, 0)], 1)
    order = np.lexsort((spec, time, adm))
    adm, spec, time, org, cls, nrow = (x[order] for x in (adm, spec, time, org, cls, nrow))
    r_adm, r_spec, r_time, r_org, r_cls = (np.repeat(x, nrow) for x in (adm, spec, time, org, cls))
    r_cult = np.repeat(np.arange(len(adm)), nrow)
    r_rank = _rank_in_group(r_cult)
    pmax = int(plen.max())
    pmat = np.full((len(cls_names), pmax), -1, np.int64)
    for ci, c in enumerate(cls_names):
        pmat[ci, : len(_ABX_PANELS[c])] = _ABX_PANELS[c]
    ab = np.where(r_cls >= 0, pmat[np.maximum(r_cls, 0), np.minimum(r_rank, pmax - 1)], -1)
    mdr = rng.random(na) < 0.15
    p_r = np.where(mdr[r_adm], 0.45, 0.08)
    p_r = np.where((ab == 90016) & (r_org == 1), 0.45, p_r)  # MRSA
    u = rng.random(len(r_adm))
    interp = np.where(ab < 0, -1, np.where(u < p_r, 2, np.where(u < p_r + 0.04, 1, 0)))
    dil_s = rng.integers(0, len(_DIL_S), len(r_adm))
    dil_i = rng.integers(0, len(_DIL_I), len(r_adm))
    dil_r = rng.integers(0, len(_DIL_R), len(r_adm))
    return {"adm": r_adm, "spec": r_spec, "time": r_time, "org": r_org, "ab": ab, "interp": interp,
            "dil_s": dil_s, "dil_i": dil_i, "dil_r": dil_r}  # fmt: skip


def _transfers(b: _Batch, i1: Arr, i2: Arr) -> dict[str, Arr]:
    rng, A = b.rng, b.A
    na = len(A["pat"])
    S = 7
    start = np.zeros((na, S), np.int64)
    end = np.zeros((na, S), np.int64)
    cu = np.full((na, S), -1, np.int64)
    valid = np.zeros((na, S), bool)
    icu_id = np.full((na, S), -1, np.int64)
    adm_t, dis = A["admittime"], A["dischtime"]
    icu, has2 = A["icu"], A["has2"]
    last_out = np.where(has2, A["out2"], A["out1"])
    split_p = rng.random(na) < 0.3
    # 0: ward before the ICU (or the whole stay without ICU)
    pre_ok = ~icu | (A["in1"] - adm_t >= 3600)
    valid[:, 0] = pre_ok
    start[:, 0] = adm_t
    post_start = np.where(icu, last_out, adm_t)
    post_ok = ~icu | (dis - last_out >= 60)
    split = split_p & post_ok & (dis - post_start > _DAY)
    split_t = post_start + ((dis - post_start) * rng.uniform(0.2, 0.8, na)).astype(np.int64)
    end[:, 0] = np.where(icu, A["in1"], np.where(split, split_t, dis))
    # 1: first ICU stay; 2: ward in between; 3: second ICU stay
    valid[:, 1] = icu
    start[:, 1], end[:, 1], cu[:, 1], icu_id[:, 1] = A["in1"], A["out1"], A["cu"], i1
    valid[:, 2] = has2
    start[:, 2], end[:, 2] = A["out1"], A["in2"]
    valid[:, 3] = has2
    start[:, 3], end[:, 3], cu[:, 3], icu_id[:, 3] = A["in2"], A["out2"], A["cu2"], i2
    # 4: ward after the ICU; 5: a second ward
    valid[:, 4] = icu & post_ok
    start[:, 4] = last_out
    end[:, 4] = np.where(split, split_t, dis)
    valid[:, 5] = split
    start[:, 5], end[:, 5] = split_t, dis
    # 6: discharge event
    valid[:, 6] = True
    start[:, 6] = dis
    ward = np.zeros((na, S), np.int64)
    floor = np.array(_FLOOR_WARDS)
    for s in (0, 2, 4, 5):
        ward[:, s] = floor[rng.integers(0, len(floor), na)]
    cu_w = [np.array(w) for w in _CU_WARDS]
    for s in (1, 3):
        w = np.zeros(na, np.int64)
        for c in range(len(_CAREUNITS)):
            sel = cu[:, s] == c
            w[sel] = cu_w[c][rng.integers(0, len(cu_w[c]), int(sel.sum()))]
        ward[:, s] = w
    r_adm, r_slot = np.nonzero(valid)
    r_start, r_end = start[r_adm, r_slot], end[r_adm, r_slot]
    r_cu, r_ward, r_icu = cu[r_adm, r_slot], ward[r_adm, r_slot], icu_id[r_adm, r_slot]
    first = np.r_[True, r_adm[1:] != r_adm[:-1]]
    prev_cu = np.r_[-1, r_cu[:-1]]
    prev_ward = np.r_[-1, r_ward[:-1]]
    prev_cu = np.where(first, -1, prev_cu)
    prev_ward = np.where(first, -1, prev_ward)
    is_dis = r_slot == 6
    ev = np.where(is_dis, 2, np.where(first, 0, 1))
    return {"adm": r_adm, "start": r_start, "end": r_end, "cu": r_cu, "ward": r_ward,
            "icu": r_icu, "prev_cu": prev_cu, "prev_ward": prev_ward, "ev": ev, "is_dis": is_dis,
            "first_start": r_start[first]}  # fmt: skip


def _services(b: _Batch, first_start: Arr) -> dict[str, Arr]:
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    svc = A["service"]
    surgical = np.isin(svc, [_SVC[s] for s in ("SURG", "CSURG", "VSURG", "NSURG", "TSURG",
                                               "ORTHO", "TRAUM")])  # fmt: skip
    change = ~P["nb"][A["pat"]] & (A["los"] > 2) & (rng.random(na) < 0.12)
    new = np.where(
        surgical,
        _SVC["MED"],
        np.array([_SVC[s] for s in ("SURG", "CSURG", "VSURG", "NSURG")])[
            _choice(rng, na, (0.5, 0.2, 0.15, 0.15))
        ],
    )
    t_change = _minute(A["admittime"] + _secs(A["los"] * rng.uniform(0.3, 0.9, na)))
    adm = np.concatenate([np.arange(na), np.flatnonzero(change)])
    time = np.concatenate([first_start, t_change[change]])
    prev = np.concatenate([np.full(na, -1), svc[change]])
    curr = np.concatenate([svc, new[change]])
    order = np.lexsort((time, adm))
    return {"adm": adm[order], "time": time[order], "prev": prev[order], "curr": curr[order]}


def _patient_deaths(b: _Batch) -> None:
    rng, A, P, n = b.rng, b.A, b.P, b.n
    dod = np.zeros(n, np.int64)
    hosp = np.zeros(n, bool)
    died = A["died"] == 1
    dod[A["pat"][died]] = A["dischtime"][died]
    hosp[A["pat"][died]] = True
    last = np.r_[A["pat"][1:] != A["pat"][:-1], True]
    lp = A["pat"][last]
    com = P["com"][lp].astype(float)
    lin = (-1.3 + 0.045 * (A["age"][last] - 65.0) + 0.45 * P["frail"][lp]
           + 1.5 * com[:, _CI["METS"]] + 0.5 * com[:, _CI["CHF"]] + 0.4 * com[:, _CI["RENAL"]]
           + 0.4 * com[:, _CI["COPD"]])  # fmt: skip
    hospice = A["discharge_location"][last] == 6
    p = np.where(P["nb"][lp], 0.0, np.where(hospice, 0.95, _sig(lin)))
    m = len(lp)
    gap = np.where(hospice, rng.uniform(1.0, 40.0, m), rng.exponential(600.0, m))
    t = A["dischtime"][last] + _secs(gap)
    ok = (A["died"][last] == 0) & (rng.random(m) < p)
    ok &= (t < P["first_admit"][lp] + _HORIZON + 365 * _DAY) & (t < _T2200)
    dod[lp[ok]] = t[ok]
    P["dod"] = dod
    P["dod_hosp"] = hosp
    nb, age0, fa = P["nb"], P["age0"], P["first_admit"]
    years = np.where(age0 >= 90.0, 300.0 + rng.random(n), age0)
    P["dob"] = _day(np.where(nb, fa, fa - _secs(years * 365.2425)))
    P["dod_ssn"] = (dod > 0) & (~hosp | (rng.random(n) < 0.7))


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------


def _deid_date(t: int) -> str:
    d = np.datetime64(int(t), "s").astype(object)
    return f"[**{d.year}-{d.month}-{d.day}**]"


def _clock(t: int) -> str:
    d = np.datetime64(int(t), "s").astype(object)
    h = d.hour % 12 or 12
    return f"{h}:{d.minute:02d}{'AM' if d.hour < 12 else 'PM'}"


_LAB_LINES = (
    ("BLOOD", ("wbc", "hgb", "hct", "plt")),
    ("BLOOD", ("glu", "bun", "cr", "na", "k", "cl", "hco3", "ag")),
    ("BLOOD", ("mg", "ca", "phos", "alb")),
    ("BLOOD", ("pt", "ptt", "inr")),
    ("BLOOD", ("alt", "ast", "bili")),
    ("BLOOD", ("lac",)),
)


def _an(age: int) -> str:
    return "an" if age in (8, 11, 18) or 80 <= age <= 89 else "a"


def _fmt_val(v: float, dec: int) -> str:
    return f"{v:.{dec}f}" if dec else str(round(v))


def _lab_block(t: int, row: list[float]) -> list[str]:
    out = []
    for fluid, keys in _LAB_LINES:
        parts = []
        for k in keys:
            lab = _LABS[_LAB_IDX[k]]
            v = row[_LAB_IDX[k]]
            if v != v:  # NaN: not measured
                continue
            star = "*" if (v < lab.lo or v > lab.hi) else ""
            parts.append(f"{lab.short}-{_fmt_val(v, lab.dec)}{star}")
        if parts:
            out.append(f"{_deid_date(t)} {_clock(t)} {fluid} " + " ".join(parts))
    return out


def _lab_phrase(row: list[float], keys: Sequence[str]) -> str:
    parts = []
    for k in keys:
        lab = _LABS[_LAB_IDX[k]]
        v = row[_LAB_IDX[k]]
        if v == v:
            unit = f" {lab.unit}" if lab.unit else ""
            parts.append(f"{lab.label.split(',')[0].lower()} {_fmt_val(v, lab.dec)}{unit}")
    return ", ".join(parts)


_COURSE = {
    "SEPSIS": (
        "{He} was admitted to the {cu} with sepsis, started on broad spectrum antibiotics "
        "({abx}) and fluid resuscitated.",
        "On arrival {he} met SIRS criteria with a lactate of {lac}; blood and urine cultures were "
        "sent and {he} was treated with {abx}.",
    ),
    "PNEUMONIA": (
        "Chest x-ray showed a right lower lobe consolidation. {He} was treated for community "
        "acquired pneumonia with {abx}.",
        "{He} presented with fever, productive cough and hypoxia; pneumonia was treated "
        "with {abx}.",
    ),
    "CHF_EXAC": (
        "{He} was volume overloaded on exam and was diuresed with IV furosemide with improvement "
        "in {his} dyspnea.",
        "CHF exacerbation, likely from dietary indiscretion; diuresed with IV lasix, net negative "
        "several liters.",
    ),
    "COPD_EXAC": (
        "{He} was treated for a COPD exacerbation with nebulizers, steroids and antibiotics.",
        "COPD flare treated with prednisone, albuterol and ipratropium nebs.",
    ),
    "GI_BLEED": (
        "{He} presented with melena and a hematocrit drop; {he} was transfused and underwent "
        "endoscopy.",
        "GI bleed: transfused packed red cells, started on IV PPI, GI performed EGD.",
    ),
    "AMI": (
        "{He} ruled in for NSTEMI and was taken to the cardiac catheterization lab.",
        "Troponin was elevated on admission; {he} was started on a heparin drip, aspirin and a "
        "statin and underwent cardiac catheterization.",
    ),
    "STROKE": (
        "MRI confirmed an acute left MCA territory infarct. {He} was monitored in the ICU for "
        "neurologic checks.",
        "Stroke neurology was consulted; {he} was outside the window for tPA.",
    ),
    "AKI": (
        "Acute kidney injury, likely prerenal; {he} was given IV fluids and nephrotoxins were "
        "held.",
        "Creatinine was elevated on admission at {cr}; renal was consulted and {he} was hydrated.",
    ),
    "HIP_FX": (
        "{He} sustained a hip fracture after a mechanical fall and was taken to the OR by "
        "orthopaedics.",
        "Hip fracture s/p fall; underwent ORIF without complication.",
    ),
    "RESP_FAIL": (
        "{He} was intubated for hypoxic respiratory failure and admitted to the {cu}.",
        "Hypoxic respiratory failure requiring mechanical ventilation; weaned and extubated as "
        "tolerated.",
    ),
    "CABG": (
        "{He} was taken to the operating room for coronary artery bypass grafting and "
        "transferred to the CSRU in stable condition.",
        "S/p CABG; extubated post-operatively, chest tubes removed, ambulating with PT.",
    ),
    "VALVE": (
        "{He} underwent aortic valve replacement and was transferred to the CSRU intubated.",
        "S/p AVR; post-operative course notable for brief atrial arrhythmias.",
    ),
    "PCI": (
        "{He} underwent elective cardiac catheterization with placement of a drug eluting stent.",
        "Elective PCI with DES placement; groin site without hematoma.",
    ),
    "JOINT": (
        "{He} underwent elective joint replacement and was monitored overnight in the {cu}.",
        "Joint replacement without complication; pain controlled, cleared by PT.",
    ),
    "COLECTOMY": (
        "{He} underwent hemicolectomy for colon cancer; diet was advanced slowly.",
        "S/p hemicolectomy, return of bowel function on post-operative day 3.",
    ),
    "NEWBORN": (
        "Infant admitted to the NICU for monitoring.",
        "Baby was admitted to the NICU for respiratory monitoring and sepsis evaluation.",
    ),
}
_RADIO = {
    "pneu": "Right lower lobe opacity concerning for pneumonia.",
    "chf": "Mild pulmonary vascular congestion with small bilateral pleural effusions.",
    "vent": "Endotracheal tube terminates 4 cm above the carina. Nasogastric tube in the stomach.",
    "none": "No acute cardiopulmonary process.",
    "stroke": "Hypodensity in the left MCA territory consistent with acute infarct.",
}


_ALLERGIES = (
    "Patient recorded as having No Known Allergies to Drugs",
    "Penicillins",
    "Sulfa (Sulfonamide Antibiotics)",
    "Codeine",
)
_SOCIAL = (
    "Lives with wife in [**Location (un) 86**].",
    "Lives alone, retired.",
    "Lives with family; former smoker.",
    "Lives at [**Location 1268**] with daughter. No alcohol.",
)
_CONDITION = (
    "stable",
    "Good. Ambulating with assistance.",
    "Hemodynamically stable, tolerating PO.",
    "Mental Status: Clear and coherent.",
)
_ABX_NAMES = frozenset(
    ("Vancomycin", "Piperacillin-Tazobactam Na", "CeftriaXONE", "Azithromycin", "Levofloxacin",
     "MetRONIDAZOLE (FLagyl)")
)  # fmt: skip
_NEURO_VENT = ("Sedated on propofol, arousable to voice.", "Sedated, opens eyes to voice.")
_NEURO = ("A+Ox3, MAE, following commands.", "Alert, oriented x2, intermittently confused.")
_PLAN = (
    "Continue current management.",
    "Monitor lytes, replete prn.",
    "Wean O2 as tolerated.",
    "Family meeting tomorrow.",
)
_EVENTS = (
    "No acute events overnight.",
    "Febrile to 101.2 overnight, cultures sent.",
    "Hypotensive overnight, responded to fluids.",
)
_PROBLEM = (
    "continue current therapy.",
    "improving, continue to monitor.",
    "remains tenuous, follow closely.",
)
_HEART = ("Heart size is normal.", "The heart is mildly enlarged.", "No pneumothorax.")
_FREQ = {"METOP": "BID", "LACTU": "TID", "SEVEL": "TID with meals", "DILT": "QID",
         "OXY": "Q4H:PRN pain", "AMIO": "DAILY", "METF": "BID"}  # fmt: skip
_DRUG_NAMES = tuple(d.drug.strip() for d in _DRUGS)
_NAN_ROW = [float("nan")] * len(_LABS)


class _Rec(NamedTuple):
    """What the notes of one admission may say about the patient."""

    male: bool
    newborn: bool
    prem: bool
    age: int
    lastname: str
    dob: int
    admit: int
    disch: int
    reason: _Reason
    diag_text: str
    service: str
    cu: str
    icu_days: float
    vent: bool
    pneu: bool
    died: bool
    disloc: int
    conds: list[str]
    drug_ix: list[int]
    first_time: int
    first_row: list[float]
    last_time: int
    last_row: list[float]

    @property
    def he(self) -> str:
        return "He" if self.male else "She"

    @property
    def sex_word(self) -> str:
        return "man" if self.male else "woman"

    @property
    def sex(self) -> str:
        return "M" if self.male else "F"

    @property
    def drugs(self) -> list[str]:
        return [_DRUG_NAMES[d] for d in self.drug_ix]

    @property
    def abx(self) -> list[str]:
        return [d for d in self.drugs if d in _ABX_NAMES]


def _lab_str(row: list[float], key: str, default: str) -> str:
    v = row[_LAB_IDX[key]]
    return default if v != v else _fmt_val(v, _LABS[_LAB_IDX[key]].dec)


def _discharge_summary(rnd: random.Random, r: _Rec) -> str:
    rs, he, age = r.reason, r.he, r.age
    lines = [
        f"Admission Date:  {_deid_date(r.admit)}              "
        f"Discharge Date:   {_deid_date(r.disch)}",
        "",
        f"Date of Birth:  {_deid_date(r.dob)}             Sex:   {r.sex}",
        "",
        f"Service: {r.service}",
        "",
        "Allergies:",
        rnd.choice(_ALLERGIES),
        "",
        f"Attending:[**First Name3 (LF) {rnd.randint(100, 9999)}**]",
        "Chief Complaint:",
        rs.complaint,
        "",
        "History of Present Illness:",
    ]
    if r.newborn:
        lines += [
            f"Baby {'boy' if r.male else 'girl'} {r.lastname} is the "
            f"{rnd.choice(('2.1', '2.6', '3.2', '3.5', '3.8'))} kg product of a "
            f"{'preterm' if r.prem else 'term'} gestation born to a {rnd.randint(19, 41)} year "
            f"old G{rnd.randint(1, 4)} mother at [**Hospital1 {rnd.choice((18, 69, 2025))}**].",
            "",
        ]
    else:
        hx = ", ".join(r.conds) or "no significant past medical history"
        title = "Mr." if r.male else "Ms."
        lines += [
            rnd.choice((
                f"{age} yo {r.sex_word} with a history of {hx} who presents with {rs.complaint}.",
                f"{title} {r.lastname} is {_an(age)} {age} year old {r.sex_word} with {hx} who "
                f"was brought to [**Hospital1 18**] with {rs.complaint}.",
                f"This is {_an(age)} {age} year old {r.sex_word} with PMH significant for {hx}, "
                f"admitted with {rs.words}.",
            )),
            "",
            "Past Medical History:",
            *([f"- {c}" for c in r.conds] or ["- none"]),
            "",
            "Social History:",
            rnd.choice(_SOCIAL),
            "",
        ]  # fmt: skip
    lines.append("Pertinent Results:")
    if r.first_time >= 0:
        lines += _lab_block(r.first_time, r.first_row)
    if r.last_time >= 0 and r.last_time != r.first_time:
        lines += _lab_block(r.last_time, r.last_row)
    course = rnd.choice(_COURSE[rs.key]).format(
        He=he,
        he=he.lower(),
        his="his" if r.male else "her",
        cu=r.cu,
        abx=", ".join(r.abx) or "antibiotics",
        lac=_lab_str(r.first_row, "lac", "not measured"),
        cr=_lab_str(r.first_row, "cr", "elevated"),
    )
    lines += ["", "Brief Hospital Course:", course]
    if r.icu_days > 0 and not r.newborn:
        lines.append(f"{he} spent {r.icu_days:.1f} days in the {r.cu}.")
    if r.vent and not r.newborn:
        lines.append(
            rnd.choice((
                "Intubated for airway protection and later extubated.",
                "Required mechanical ventilation during the ICU stay.",
            ))
        )  # fmt: skip
    first_lab = _lab_phrase(r.first_row, ("cr", "hgb", "wbc"))
    last_lab = _lab_phrase(r.last_row, ("cr", "hgb", "bun"))
    if first_lab:
        lines.append(f"Admission labs notable for {first_lab}.")
    if last_lab and r.last_time != r.first_time:
        lines.append(f"Labs prior to discharge: {last_lab}.")
    if r.died:
        lines += [
            rnd.choice((
                f"Despite maximal support {he.lower()} continued to decline. After discussion "
                f"with the family {he.lower()} was made comfort measures only and expired on "
                f"{_deid_date(r.disch)}.",
                f"{he} developed worsening shock and multiorgan failure and expired on "
                f"{_deid_date(r.disch)}; the family was at the bedside.",
            )),
            "", "Discharge Disposition:", "Expired", "", "Discharge Diagnosis:", rs.words, "",
            "Discharge Condition:", "Expired",
        ]  # fmt: skip
        return "\n".join(lines) + "\n"
    home = [d for d in r.drug_ix if _DRUGS[d].po_home][:10]
    lines += ["", "Medications on Admission:"]
    lines += [_DRUG_NAMES[d] for d in home[:4]] or ["None"]
    lines += ["", "Discharge Medications:"]
    lines += [
        f"{i + 1}. {_DRUG_NAMES[d]} {_DRUGS[d].dose} {_DRUGS[d].unit} {_DRUGS[d].route} "
        f"{_FREQ.get(_DRUGS[d].key, 'DAILY')}"
        for i, d in enumerate(home)
    ] or ["None"]
    disp = _DIS_WORDS[r.disloc]
    lines += ["", "Discharge Disposition:", disp]
    if disp == "Extended Care":
        lines += ["", "Facility:", f"[**Hospital {rnd.randint(100, 9999)}**]"]
    lines += [
        "", "Discharge Diagnosis:", f"Primary: {rs.words}",
        f"Secondary: {', '.join(r.conds[:6]) or 'none'}", "", "Discharge Condition:",
        rnd.choice(_CONDITION), "", "Followup Instructions:",
        f"Follow up with Dr. [**Last Name (STitle) {rnd.randint(100, 9999)}**] in "
        f"{rnd.choice(('1 week', '2 weeks', '1 month'))}.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _nursing_note(rnd: random.Random, r: _Rec, row: list[float]) -> str:
    labs_now = _lab_phrase(row, ("k", "cr", "hct", "wbc", "lac"))
    rhythm = "AF" if "atrial fibrillation" in r.conds else rnd.choice(("NSR", "SR", "ST"))
    if r.vent:
        resp = "Intubated on AC, suctioned for thick secretions."
    else:
        resp = f"On {rnd.randint(2, 4)}L NC, sats {rnd.randint(92, 99)}%."
    abx = r.abx
    pmh = f" PMH: {', '.join(r.conds[:5])}." if r.conds else ""
    return "\n".join([
        f"{r.cu} Nursing Progress Note {rnd.choice(('0700-1900', '1900-0700'))}",
        f"{r.age} yo {r.sex} admitted with {r.reason.words}.{pmh}",
        f"Neuro: {rnd.choice(_NEURO_VENT if r.vent else _NEURO)}",
        f"CV: HR {rnd.randint(62, 118)} {rhythm}, BP {rnd.randint(88, 150)}/{rnd.randint(40, 85)}. "
        + rnd.choice(("Pulses palpable.", "Extremities warm.", "+1 edema bilaterally.")),
        f"Resp: {resp}",
        f"GI/GU: {rnd.choice(('Abd soft, +BS.', 'Tolerating diet.', 'NPO.'))} "
        f"Foley draining {rnd.randint(20, 90)}cc/hr.",
        f"Labs: {labs_now}." if labs_now else "Labs: pending.",
        f"ID: On {', '.join(abx)}." if abx else "ID: Afebrile.",
        f"Plan: {rnd.choice(_PLAN)}",
    ]) + "\n"  # fmt: skip


def _physician_note(rnd: random.Random, r: _Rec, row: list[float]) -> str:
    labs_now = _lab_phrase(row, ("k", "cr", "hct", "wbc", "lac"))
    words = r.reason.words
    return "\n".join([
        f"{r.cu} {rnd.choice(('Resident', 'Attending'))} Progress Note",
        f"Chief Complaint: {r.reason.complaint}",
        f"24 Hour Events: {rnd.choice(_EVENTS)}",
        f"Labs / Radiology: {labs_now}" if labs_now else "Labs / Radiology: none new",
        "Assessment and Plan:",
        f"{r.age} yo {r.sex} with {', '.join(r.conds[:4]) or 'no PMH'} admitted with {words}.",
        f"# {words.upper()}: {rnd.choice(_PROBLEM)}",
        f"# FEN: replete lytes prn, {rnd.choice(('regular diet', 'NPO', 'tube feeds'))}",
        f"# PPx: {'heparin SC' if 'Heparin' in r.drugs else 'pneumoboots'}, PPI",
        "# Code: Full code",
    ]) + "\n"  # fmt: skip


def _radiology_note(rnd: random.Random, r: _Rec, t: int) -> tuple[str, str]:
    if r.reason.key == "STROKE":
        study, find = "CT HEAD W/O CONTRAST", "stroke"
    else:
        study = "CHEST (PORTABLE AP)" if r.icu_days > 0 else "CHEST (PA & LAT)"
        chf = any("heart failure" in c for c in r.conds)
        find = "vent" if r.vent else "pneu" if r.pneu else "chf" if chf else "none"
    why = rnd.choice(("eval for infiltrate", "eval for interval change",
                      "ETT placement" if r.vent else "SOB"))  # fmt: skip
    prior = max(t - _DAY * rnd.randint(1, 3), r.admit)
    clip = rnd.randint(10000, 99999)
    text = "\n".join([
        f"{_deid_date(t)} {_clock(t)}",
        f"     {study}{' ' * max(4, 40 - len(study))}Clip # [**Clip Number (Radiology) {clip}**]",
        f"     Reason: {why}",
        f"     Admitting Diagnosis: {r.diag_text}",
        " " + "_" * 78,
        "FINAL REPORT",
        f"INDICATION: {r.age} year old {r.sex_word} with {r.reason.words}.",
        f"COMPARISON: {rnd.choice(('None.', _deid_date(prior)))}",
        f"FINDINGS: {_RADIO[find]} {rnd.choice(_HEART)}",
        f"IMPRESSION: {_RADIO[find]}",
    ]) + "\n"  # fmt: skip
    return study, text


def _notes(b: _Batch, labs: dict[str, Arr], rx: dict[str, Arr]) -> dict[str, Any]:
    """NOTEEVENTS rows written from each admission's own record (python lists / arrays)."""
    rng, A, P = b.rng, b.A, b.P
    rnd = random.Random(int(rng.integers(0, 2**62)))
    na = len(A["pat"])
    pat = A["pat"]
    nb = P["nb"][pat]
    # lab panels of each admission (sorted by admission, time)
    p_adm, p_time, V = labs["adm"], labs["time"], labs["V"]
    first_panel = np.full(na, -1, np.int64)
    last_panel = np.full(na, -1, np.int64)
    if len(p_adm):
        starts = np.r_[True, p_adm[1:] != p_adm[:-1]]
        ends = np.r_[p_adm[1:] != p_adm[:-1], True]
        first_panel[p_adm[starts]] = np.flatnonzero(starts)
        last_panel[p_adm[ends]] = np.flatnonzero(ends)
    key_panel = p_adm * np.int64(10**10) + p_time
    rx_first = np.searchsorted(rx["adm"], np.arange(na), "left")
    rx_last = np.searchsorted(rx["adm"], np.arange(na), "right")
    # how many notes of each kind
    short_los = np.minimum(A["los"], 6.0)
    n_nurse = np.minimum(rng.poisson(np.where(A["icu"], 1.6, 0.6) * short_los / 2.0 + 0.5), 6)
    n_phys = np.minimum(rng.poisson(0.8 + 0.3 * np.minimum(A["los"], 5.0)), 4)
    n_phys = np.where(A["icu"] & ~nb, n_phys, 0)
    n_rad = np.minimum(rng.poisson(0.5 + 0.6 * A["pneu"] + 0.5 * A["vent"] + 0.4 * A["icu"]), 4)
    n_rad = np.where(nb, 0, n_rad)
    cgid_base = rng.integers(14000, 21000, (na, 2))
    icu_days = np.where(A["icu"], (A["out1"] - A["in1"]) / _DAY, 0.0).tolist()
    texts = [t for rs in _REASONS for t in rs.texts]
    t_off = np.cumsum([0] + [len(rs.texts) for rs in _REASONS])[:-1]
    diag_l = (t_off[A["reason"]] + A["text_idx"]).tolist()
    keys = ("age", "admittime", "dischtime", "reason", "cu", "died", "discharge_location",
            "service", "vent", "pneu")  # fmt: skip
    cols = {k: A[k].tolist() for k in keys}
    pat_l = pat.tolist()
    male_l, nb_l, prem_l = P["male"].tolist(), P["nb"].tolist(), P["prem"].tolist()
    last_l, dob_l = P["lastname"].tolist(), P["dob"].tolist()
    coded, pcode = A["coded"], P["code"]
    fields = ("adm", "chartdate", "charttime", "storetime", "category", "description", "cgid",
              "text", "sort")  # fmt: skip
    out: dict[str, list[Any]] = {k: [] for k in fields}

    def emit(a: int, date: int, time: int, store: int, cat: str, desc: str, cg: int, text: str,
             sort: int) -> None:  # fmt: skip
        for k, v in zip(out, (a, date, time, store, cat, desc, cg, text, sort), strict=True):
            out[k].append(v)

    for a in range(na):
        p = pat_l[a]
        fpan, lpan = int(first_panel[a]), int(last_panel[a])
        frow = V[fpan].tolist() if fpan >= 0 else _NAN_ROW
        age = cols["age"][a]
        rec = _Rec(
            male=male_l[p], newborn=nb_l[p], prem=prem_l[p], age=int(age) if age < 90 else 91,
            lastname=f"[**Known lastname {last_l[p]}**]", dob=dob_l[p],
            admit=cols["admittime"][a], disch=cols["dischtime"][a],
            reason=_REASONS[cols["reason"][a]], diag_text=texts[diag_l[a]],
            service=_SERVICE_WORDS[_SERVICES[cols["service"][a]]], cu=_CAREUNITS[cols["cu"][a]],
            icu_days=icu_days[a], vent=cols["vent"][a], pneu=cols["pneu"][a],
            died=bool(cols["died"][a]), disloc=cols["discharge_location"][a],
            conds=[_WORDS[_CONDS[j].codes[pcode[p, j]]] for j in np.flatnonzero(coded[a])],
            drug_ix=list(dict.fromkeys(rx["drug"][rx_first[a] : rx_last[a]].tolist())),
            first_time=int(p_time[fpan]) if fpan >= 0 else -1, first_row=frow,
            last_time=int(p_time[lpan]) if lpan >= 0 else -1,
            last_row=V[lpan].tolist() if lpan >= 0 else frow,
        )  # fmt: skip
        dis_day = rec.disch // _DAY * _DAY
        emit(a, dis_day, -1, -1, "Discharge summary", "Report", -1,
             _discharge_summary(rnd, rec), rec.disch)  # fmt: skip
        span = max(rec.disch - rec.admit, 600)
        kinds = "N" * int(n_nurse[a]) + "P" * int(n_phys[a]) + "R" * int(n_rad[a])
        for kind in kinds:
            t = rec.admit + int(rnd.random() * span * 0.95)
            t -= t % 60
            j = int(np.searchsorted(key_panel, a * np.int64(10**10) + t, "right")) - 1
            row = V[j].tolist() if j >= 0 and p_adm[j] == a else frow
            store = t + 60 * rnd.randint(10, 90)
            day = t // _DAY * _DAY
            if kind == "N":
                cg = int(cgid_base[a, 0]) + rnd.randint(0, 3)
                emit(
                    a, day, t, store, "Nursing/other", "Report", cg, _nursing_note(rnd, rec, row), t
                )
            elif kind == "P":
                desc = rnd.choice(("Physician Resident Progress Note", "Intensivist Note"))
                cg = int(cgid_base[a, 1]) + rnd.randint(0, 3)
                emit(a, day, t, store, "Physician ", desc, cg, _physician_note(rnd, rec, row), t)
            else:
                study, text = _radiology_note(rnd, rec, t)
                emit(a, day, t, -1, "Radiology", study, -1, text, t)
    order = np.lexsort((np.array(out["sort"], np.int64), np.array(out["adm"], np.int64)))
    res: dict[str, Any] = {}
    for k in ("adm", "chartdate", "charttime", "storetime", "cgid"):
        res[k] = np.array(out[k], np.int64)[order]
    for k in ("category", "description", "text"):
        res[k] = [out[k][i] for i in order]
    return res


# --------------------------------------------------------------------------------------------
# Assembly: ids, columns, writing
# --------------------------------------------------------------------------------------------


def _csv_label(s: str | None) -> str | None:
    if s is not None and any(ch in s for ch in '",\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def _s_lab(labels: Sequence[str | None], idx: Arr, mask: Arr | None = None) -> pa.Array:
    """Categorical column from a small label list (labels CSV-quoted where needed)."""
    return _s_cat([_csv_label(s) for s in labels], idx, mask)


class _Ids:
    """Global id allocation: affine permutations inside MIMIC's ranges, sequential beyond."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**32 - 1,)))
        ab = rng.integers(1, _ID_PRIME, 6)
        self._ab = [(int(ab[0]), int(ab[1])), (int(ab[2]), int(ab[3])), (int(ab[4]), int(ab[5]))]
        self.n_sub = 0
        self.n_adm = 0
        self.n_icu = 0

    def take(self, n_sub: int, n_adm: int, n_icu: int) -> tuple[Arr, Arr, Arr]:
        (a0, b0), (a1, b1), (a2, b2) = self._ab
        sub = _perm_ids(self.n_sub + np.arange(n_sub), 2, 100_000, a0, b0)
        adm = _perm_ids(self.n_adm + np.arange(n_adm), 100_000, 1_000_000, a1, b1)
        icu = _perm_ids(self.n_icu + np.arange(n_icu), 200_000, 2_000_000, a2, b2)
        self.n_sub += n_sub
        self.n_adm += n_adm
        self.n_icu += n_icu
        return sub, adm, icu


def _s_take(strings: pa.Array, idx: Arr) -> pa.Array:
    """strings[idx], null where idx < 0."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(strings) == 0:
        return pa.nulls(len(idx), pa.string())
    return pc.take(strings, pa.array(np.maximum(idx, 0), mask=idx < 0))


def _row_ids(w: _GzCsv, n: int) -> pa.Array:
    return _s_int(w.rows + 1 + np.arange(n))


def _emit_batch(b: _Batch, ids: _Ids, W: dict[str, _GzCsv]) -> tuple[int, int]:
    b.patients()
    b.admissions()
    _patient_deaths(b)
    A, P = b.A, b.P
    n, na = b.n, len(A["pat"])
    pat = A["pat"]
    icu_adm, icu_which, i1, i2 = _icu_index(A)
    ni = len(icu_adm)
    sub_id, hadm_id, icu_id = ids.take(n, na, ni)
    S_sub = _s_int(sub_id)
    S_asub = pc.take(S_sub, pa.array(pat))
    S_hadm = _s_int(hadm_id)
    S_icu = _s_int(icu_id)

    def by_adm(adm: Arr) -> tuple[pa.Array, pa.Array]:
        ix = pa.array(np.asarray(adm, np.int64))
        return pc.take(S_asub, ix), pc.take(S_hadm, ix)

    # ---------------- PATIENTS
    dob, dod = P["dob"], P["dod"]
    W["PATIENTS"].write({
        "row_id": _row_ids(W["PATIENTS"], n), "subject_id": S_sub,
        "gender": _s_lab(("F", "M"), P["male"].astype(np.int64)), "dob": _s_ts(dob),
        "dod": _s_ts(_day(dod), dod == 0), "dod_hosp": _s_ts(_day(dod), ~P["dod_hosp"]),
        "dod_ssn": _s_ts(_day(dod), ~P["dod_ssn"]), "expire_flag": _s_int(dod > 0),
    })  # fmt: skip

    # ---------------- ADMISSIONS
    texts = [t for r in _REASONS for t in r.texts]
    t_off = np.cumsum([0] + [len(r.texts) for r in _REASONS])[:-1]
    died = A["died"] == 1
    lang, mar = P["language"][pat], P["marital"][pat]
    S_sub_a, S_hadm_a = by_adm(np.arange(na))
    W["ADMISSIONS"].write({
        "row_id": _row_ids(W["ADMISSIONS"], na), "subject_id": S_sub_a, "hadm_id": S_hadm_a,
        "admittime": _s_ts(A["admittime"]), "dischtime": _s_ts(A["dischtime"]),
        "deathtime": _s_ts(A["dischtime"], ~died),
        "admission_type": _s_lab(_ADM_TYPES, A["atype"]),
        "admission_location": _s_lab(_ADM_LOCS, A["admission_location"]),
        "discharge_location": _s_lab(_DIS_LOCS, A["discharge_location"]),
        "insurance": _s_lab(_INSURANCE, A["insurance"]),
        "language": _s_lab(_LANGUAGES, np.minimum(lang, len(_LANGUAGES) - 1),
                           lang >= len(_LANGUAGES)),
        "religion": _s_lab(_RELIGIONS, P["religion"][pat]),
        "marital_status": _s_lab(_MARITAL, np.minimum(mar, len(_MARITAL) - 1),
                                 mar >= len(_MARITAL)),
        "ethnicity": _s_lab(_ETHNICITY, P["ethnicity"][pat]),
        "edregtime": _s_ts(_minute(A["edregtime"]), ~A["ed"]),
        "edouttime": _s_ts(_minute(A["edouttime"]), ~A["ed"]),
        "diagnosis": _s_lab(texts, t_off[A["reason"]] + A["text_idx"]),
        "hospital_expire_flag": _s_int(died), "has_chartevents_data": _s_int(A["icu"]),
    })  # fmt: skip

    # ---------------- TRANSFERS (also gives the ICU ward ids)
    T = _transfers(b, i1, i2)
    dbs = ("metavision", "carevue")
    icu_ward = np.zeros(max(ni, 1), np.int64)
    sel = T["icu"] >= 0
    icu_ward[T["icu"][sel]] = T["ward"][sel]
    nt = len(T["adm"])
    s1, h1 = by_adm(T["adm"])
    W["TRANSFERS"].write({
        "row_id": _row_ids(W["TRANSFERS"], nt), "subject_id": s1, "hadm_id": h1,
        "icustay_id": _s_take(S_icu, T["icu"]),
        "dbsource": _s_lab(dbs, A["dbsource"][T["adm"]]),
        "eventtype": _s_lab(("admit", "transfer", "discharge"), T["ev"]),
        "prev_careunit": _s_lab(_CAREUNITS, np.maximum(T["prev_cu"], 0), T["prev_cu"] < 0),
        "curr_careunit": _s_lab(_CAREUNITS, np.maximum(T["cu"], 0), T["cu"] < 0),
        "prev_wardid": _s_int(T["prev_ward"], T["prev_ward"] < 0),
        "curr_wardid": _s_int(T["ward"], T["is_dis"]),
        "intime": _s_ts(T["start"]), "outtime": _s_ts(T["end"], T["is_dis"]),
        "los": _s_float((T["end"] - T["start"]) / _HOUR, 2, T["is_dis"]),
    })  # fmt: skip

    # ---------------- ICUSTAYS
    first = icu_which == 0
    cu = np.where(first, A["cu"][icu_adm], A["cu2"][icu_adm])
    tin = np.where(first, A["in1"][icu_adm], A["in2"][icu_adm])
    tout = np.where(first, A["out1"][icu_adm], A["out2"][icu_adm])
    s1, h1 = by_adm(icu_adm)
    W["ICUSTAYS"].write({
        "row_id": _row_ids(W["ICUSTAYS"], ni), "subject_id": s1, "hadm_id": h1,
        "icustay_id": S_icu, "dbsource": _s_lab(dbs, A["dbsource"][icu_adm]),
        "first_careunit": _s_lab(_CAREUNITS, cu), "last_careunit": _s_lab(_CAREUNITS, cu),
        "first_wardid": _s_int(icu_ward[:ni]), "last_wardid": _s_int(icu_ward[:ni]),
        "intime": _s_ts(tin), "outtime": _s_ts(tout), "los": _s_float((tout - tin) / _DAY, 4),
    })  # fmt: skip

    # ---------------- SERVICES
    Sv = _services(b, T["first_start"])
    ns = len(Sv["adm"])
    s1, h1 = by_adm(Sv["adm"])
    W["SERVICES"].write({
        "row_id": _row_ids(W["SERVICES"], ns), "subject_id": s1, "hadm_id": h1,
        "transfertime": _s_ts(Sv["time"]),
        "prev_service": _s_lab(_SERVICES, np.maximum(Sv["prev"], 0), Sv["prev"] < 0),
        "curr_service": _s_lab(_SERVICES, Sv["curr"]),
    })  # fmt: skip

    # ---------------- LABEVENTS (inpatient + outpatient)
    L_in = b.labs()
    L_out = b.outpatient_labs(P["dod"])
    pan_i, item_i = np.nonzero(~np.isnan(L_in["V"]))
    pan_o, item_o = np.nonzero(~np.isnan(L_out["V"]))
    r_pat = np.concatenate([pat[L_in["adm"][pan_i]], L_out["pat"][pan_o]])
    r_adm = np.concatenate([L_in["adm"][pan_i], np.full(len(pan_o), -1)])
    r_time = np.concatenate([L_in["time"][pan_i], L_out["time"][pan_o]])
    r_item = np.concatenate([item_i, item_o])
    r_val = np.concatenate([L_in["V"][pan_i, item_i], L_out["V"][pan_o, item_o]])
    order = np.lexsort((r_item, r_time, r_pat))
    r_pat, r_adm, r_time, r_item, r_val = (x[order] for x in (r_pat, r_adm, r_time, r_item, r_val))
    nl = len(r_pat)
    lo = np.array([lab.lo for lab in _LABS])[r_item]
    hi = np.array([lab.hi for lab in _LABS])[r_item]
    S_val = _s_float(r_val, 2)
    outp = r_adm < 0
    W["LABEVENTS"].write({
        "row_id": _row_ids(W["LABEVENTS"], nl),
        "subject_id": pc.take(S_sub, pa.array(r_pat)),
        "hadm_id": pc.take(S_hadm, pa.array(np.maximum(r_adm, 0), mask=outp)),
        "itemid": _s_int(np.array([lab.itemid for lab in _LABS])[r_item]),
        "charttime": _s_ts(r_time), "value": S_val, "valuenum": S_val,
        "valueuom": _s_lab([lab.unit for lab in _LABS], r_item),
        "flag": _s_lab(("abnormal",), np.zeros(nl, np.int64), (r_val >= lo) & (r_val <= hi)),
    })  # fmt: skip

    # ---------------- DIAGNOSES_ICD / PROCEDURES_ICD
    for table, (adm, code, seq), codes in (
        ("DIAGNOSES_ICD", _diagnoses(b), _DX_CODES),
        ("PROCEDURES_ICD", _procedures(b), _PX_CODES),
    ):
        s1, h1 = by_adm(adm)
        W[table].write({
            "row_id": _row_ids(W[table], len(adm)), "subject_id": s1, "hadm_id": h1,
            "seq_num": _s_int(seq), "icd9_code": _s_lab(codes, code),
        })  # fmt: skip

    # ---------------- PRESCRIPTIONS
    Rx = _prescriptions(b, i1, i2)
    nr = len(Rx["adm"])
    d = Rx["drug"]
    s1, h1 = by_adm(Rx["adm"])

    def dcol(field: str) -> pa.Array:
        return _s_lab([getattr(x, field) or None for x in _DRUGS], d)

    W["PRESCRIPTIONS"].write({
        "row_id": _row_ids(W["PRESCRIPTIONS"], nr), "subject_id": s1, "hadm_id": h1,
        "icustay_id": _s_take(S_icu, Rx["icu"]),
        "startdate": _s_ts(Rx["start"]), "enddate": _s_ts(Rx["end"]),
        "drug_type": dcol("dtype"), "drug": dcol("drug"), "drug_name_poe": dcol("poe"),
        "drug_name_generic": dcol("generic"), "formulary_drug_cd": dcol("formulary"),
        "gsn": pa.nulls(nr, pa.string()), "ndc": pa.nulls(nr, pa.string()),
        "prod_strength": dcol("strength"), "dose_val_rx": dcol("dose"),
        "dose_unit_rx": dcol("unit"), "form_val_disp": dcol("form_val"),
        "form_unit_disp": dcol("form_unit"), "route": dcol("route"),
    })  # fmt: skip

    # ---------------- MICROBIOLOGYEVENTS
    M = _micro(b)
    nm = len(M["adm"])
    s1, h1 = by_adm(M["adm"])
    dil_all = (*_DIL_S, *_DIL_I, *_DIL_R)
    dil_cmp = tuple(
        "<=" if x.startswith("<=") else "=>" if x.startswith("=>") else "=" for x in dil_all
    )
    dil_val = np.array([float(x.lstrip("<=>")) for x in dil_all])
    interp = M["interp"]
    dix = np.where(interp == 0, M["dil_s"], np.where(interp == 1, len(_DIL_S) + M["dil_i"],
                   len(_DIL_S) + len(_DIL_I) + M["dil_r"]))  # fmt: skip
    no_ab = M["ab"] < 0
    no_org = M["org"] < 0
    ab_ids = np.array(sorted(_ABX))
    ab_ix = np.searchsorted(ab_ids, np.maximum(M["ab"], ab_ids[0]))
    W["MICROBIOLOGYEVENTS"].write({
        "row_id": _row_ids(W["MICROBIOLOGYEVENTS"], nm), "subject_id": s1, "hadm_id": h1,
        "chartdate": _s_ts(_day(M["time"])), "charttime": _s_ts(M["time"]),
        "spec_itemid": _s_int(np.array([s[0] for s in _SPECS])[M["spec"]]),
        "spec_type_desc": _s_lab([s[1] for s in _SPECS], M["spec"]),
        "org_itemid": _s_int(np.array([o[0] for o in _ORGS])[np.maximum(M["org"], 0)], no_org),
        "org_name": _s_lab([o[1] for o in _ORGS], np.maximum(M["org"], 0), no_org),
        "isolate_num": _s_int(np.ones(nm, np.int64), no_org),
        "ab_itemid": _s_int(np.maximum(M["ab"], 0), no_ab),
        "ab_name": _s_lab([_ABX[i] for i in ab_ids], ab_ix, no_ab),
        "dilution_text": _s_lab(dil_all, dix, no_ab),
        "dilution_comparison": _s_lab(dil_cmp, dix, no_ab),
        "dilution_value": _s_float(dil_val[dix], 2, no_ab),
        "interpretation": _s_lab(("S", "I", "R"), np.maximum(interp, 0), no_ab),
    })  # fmt: skip

    # ---------------- NOTEEVENTS
    N = _notes(b, L_in, Rx)
    nn = len(N["adm"])
    s1, h1 = by_adm(N["adm"])
    W["NOTEEVENTS"].write({
        "row_id": _row_ids(W["NOTEEVENTS"], nn), "subject_id": s1, "hadm_id": h1,
        "chartdate": _s_ts(N["chartdate"]), "charttime": _s_ts(N["charttime"], N["charttime"] < 0),
        "storetime": _s_ts(N["storetime"], N["storetime"] < 0),
        "category": _quoted(pa.array(N["category"], pa.string())),
        "description": _quoted(pa.array(N["description"], pa.string())),
        "cgid": _s_int(N["cgid"], N["cgid"] < 0), "iserror": pa.nulls(nn, pa.string()),
        "text": _quoted(pa.array(N["text"], pa.string())),
    })  # fmt: skip
    return na, ni


def _write_dictionaries(W: dict[str, _GzCsv]) -> None:
    nl = len(_LABS)
    W["D_LABITEMS"].write({
        "row_id": _s_int(np.arange(1, nl + 1)),
        "itemid": _s_int(np.array([x.itemid for x in _LABS])),
        "label": _s_lab([x.label for x in _LABS], np.arange(nl)),
        "fluid": _s_lab([x.fluid for x in _LABS], np.arange(nl)),
        "category": _s_lab([x.category for x in _LABS], np.arange(nl)),
        "loinc_code": _s_lab([x.loinc for x in _LABS], np.arange(nl)),
    })  # fmt: skip
    for table, codes in (("D_ICD_DIAGNOSES", _DX), ("D_ICD_PROCEDURES", _PX)):
        keys = sorted(codes)
        k = len(keys)
        W[table].write({
            "row_id": _s_int(np.arange(1, k + 1)), "icd9_code": _s_lab(keys, np.arange(k)),
            "short_title": _s_lab([codes[c][0] for c in keys], np.arange(k)),
            "long_title": _s_lab([codes[c][1] for c in keys], np.arange(k)),
        })  # fmt: skip


def _check_args(patients: int, seed: int, batch_size: int) -> None:
    """The one place where synthesize()'s arguments are validated."""
    if isinstance(patients, bool) or not isinstance(patients, (int, np.integer)) or patients < 1:
        raise ValueError(f"patients must be a whole number >= 1, got {patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def synthesize(
    out_dir: Path,
    patients: int,
    seed: int = 0,
    *,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    compresslevel: int = 1,
) -> SynthSummary:
    """Write a synthetic MIMIC-III folder of `patients` patients to `out_dir` (replaced atomically).

    progress(k) is called after each batch with the number of patients just finished. The output
    is byte-identical for the same (patients, seed, batch_size).
    """
    _check_args(patients, seed, batch_size)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = parent / f".{out_dir.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        writers: dict[str, _GzCsv] = {}
        try:
            for table, cols in TABLE_COLUMNS.items():
                writers[table] = _GzCsv(tmp / f"{table}.csv.gz", cols, compresslevel)
            ids = _Ids(int(seed))
            n_adm = n_icu = 0
            for bi, start in enumerate(range(0, patients, batch_size)):
                n = min(batch_size, patients - start)
                rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(bi,)))
                na, ni = _emit_batch(_Batch(rng, n), ids, writers)
                n_adm += na
                n_icu += ni
                if progress is not None:
                    progress(n)
            _write_dictionaries(writers)
        finally:
            for w in writers.values():
                w.close()
        rows = {t: w.rows for t, w in writers.items()}
        if out_dir.exists():
            old = parent / f".{out_dir.name}.old-{tag}"
            out_dir.rename(old)
            try:
                tmp.rename(out_dir)
            except BaseException:
                old.rename(out_dir)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(
        out_dir=out_dir, patients=patients, admissions=n_adm, icustays=n_icu, rows=rows, seed=seed
    )
