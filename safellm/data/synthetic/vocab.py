"""Embedded vocabularies: lab items (ids, LOINC codes, units, reference ranges), chronic
conditions with their ICD-9 codes, admission reasons, services, care units and wards,
admission and discharge locations, and the demographic categories with their frequencies.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Lab(NamedTuple):
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


LABS: tuple[Lab, ...] = (
    Lab("wbc", 51301, "White Blood Cells", "Blood", "Hematology", "804-5", "K/uL",
         4.0, 11.0, 1, "mul", 0.08, 0.1, 150.0, "WBC"),
    Lab("hgb", 51222, "Hemoglobin", "Blood", "Hematology", "718-7", "g/dL",
         12.0, 16.0, 1, "add", 0.3, 3.0, 22.0, "Hgb"),
    Lab("hct", 51221, "Hematocrit", "Blood", "Hematology", "4544-3", "%",
         36.0, 48.0, 1, "add", 0.8, 10.0, 65.0, "Hct"),
    Lab("plt", 51265, "Platelet Count", "Blood", "Hematology", "777-3", "K/uL",
         150.0, 440.0, 0, "mul", 0.07, 5.0, 1500.0, "Plt Ct"),
    Lab("na", 50983, "Sodium", "Blood", "Chemistry", "2951-2", "mEq/L",
         133.0, 145.0, 0, "add", 1.3, 105.0, 175.0, "Na"),
    Lab("k", 50971, "Potassium", "Blood", "Chemistry", "2823-3", "mEq/L",
         3.3, 5.1, 1, "add", 0.22, 2.0, 8.5, "K"),
    Lab("cl", 50902, "Chloride", "Blood", "Chemistry", "2075-0", "mEq/L",
         96.0, 108.0, 0, "add", 1.3, 70.0, 140.0, "Cl"),
    Lab("hco3", 50882, "Bicarbonate", "Blood", "Chemistry", "1963-8", "mEq/L",
         22.0, 32.0, 0, "add", 1.2, 5.0, 50.0, "HCO3"),
    Lab("bun", 51006, "Urea Nitrogen", "Blood", "Chemistry", "3094-0", "mg/dL",
         6.0, 20.0, 0, "mul", 0.07, 2.0, 250.0, "UreaN"),
    Lab("cr", 50912, "Creatinine", "Blood", "Chemistry", "2160-0", "mg/dL",
         0.4, 1.1, 1, "mul", 0.05, 0.1, 20.0, "Creat"),
    Lab("glu", 50931, "Glucose", "Blood", "Chemistry", "2345-7", "mg/dL",
         70.0, 105.0, 0, "mul", 0.18, 20.0, 1200.0, "Glucose"),
    Lab("ag", 50868, "Anion Gap", "Blood", "Chemistry", "1863-0", "mEq/L",
         8.0, 20.0, 0, "add", 0.0, 0.0, 45.0, "AnGap"),
    Lab("mg", 50960, "Magnesium", "Blood", "Chemistry", "2601-3", "mg/dL",
         1.6, 2.6, 1, "add", 0.12, 0.7, 5.0, "Mg"),
    Lab("ca", 50893, "Calcium, Total", "Blood", "Chemistry", "2000-8", "mg/dL",
         8.4, 10.3, 1, "add", 0.25, 5.0, 14.0, "Calcium"),
    Lab("phos", 50970, "Phosphate", "Blood", "Chemistry", "2777-1", "mg/dL",
         2.7, 4.5, 1, "mul", 0.08, 0.5, 15.0, "Phos"),
    Lab("lac", 50813, "Lactate", "Blood", "Blood Gas", "32693-4", "mmol/L",
         0.5, 2.0, 1, "mul", 0.1, 0.3, 25.0, "Lactate"),
    Lab("alb", 50862, "Albumin", "Blood", "Chemistry", "1751-7", "g/dL",
         3.4, 4.8, 1, "add", 0.12, 1.0, 5.5, "Albumin"),
    Lab("inr", 51237, "INR(PT)", "Blood", "Hematology", "5895-7", None,
         0.9, 1.1, 1, "mul", 0.05, 0.8, 12.0, "INR(PT)"),
    Lab("pt", 51274, "PT", "Blood", "Hematology", "5902-2", "sec",
         10.4, 13.4, 1, "add", 0.35, 9.0, 120.0, "PT"),
    Lab("ptt", 51275, "PTT", "Blood", "Hematology", "3173-2", "sec",
         22.0, 35.0, 1, "mul", 0.08, 18.0, 150.0, "PTT"),
    Lab("alt", 50861, "Alanine Aminotransferase (ALT)", "Blood", "Chemistry", "1742-6", "IU/L",
         0.0, 40.0, 0, "mul", 0.1, 3.0, 8000.0, "ALT"),
    Lab("ast", 50878, "Asparate Aminotransferase (AST)", "Blood", "Chemistry", "1920-8", "IU/L",
         0.0, 40.0, 0, "mul", 0.1, 3.0, 8000.0, "AST"),
    Lab("bili", 50885, "Bilirubin, Total", "Blood", "Chemistry", "1975-2", "mg/dL",
         0.0, 1.5, 1, "mul", 0.08, 0.1, 40.0, "TotBili"),
)  # fmt: skip
LAB_IDX = {lab.key: i for i, lab in enumerate(LABS)}
GROUPS: dict[str, tuple[str, ...]] = {
    "CBC": ("wbc", "hgb", "hct", "plt"),
    "CHEM": ("na", "k", "cl", "hco3", "bun", "cr", "glu", "ag"),
    "MCP": ("mg", "ca", "phos"),
    "LAC": ("lac",),
    "ALB": ("alb",),
    "COAG": ("inr", "pt", "ptt"),
    "LFT": ("alt", "ast", "bili"),
}


class Cond(NamedTuple):
    key: str
    codes: tuple[str, ...]
    code_p: tuple[float, ...]
    a: float
    b_age: float
    c_frail: float
    elix: bool


CONDS: tuple[Cond, ...] = (
    Cond("ALCOHOL", ("30500",), (1.0,), -2.9, -0.5, 0.2, True),
    Cond("DIAB", ("25000", "25001", "25040", "25060"), (0.7, 0.08, 0.12, 0.1),
          -1.25, 0.1, 0.3, True),
    Cond("CAD", ("41401",), (1.0,), -1.3, 0.5, 0.2, False),
    Cond("HTN", ("4019",), (1.0,), -0.2, 0.4, 0.1, True),
    Cond("HLD", ("2724",), (1.0,), -1.0, 0.2, 0.0, False),
    Cond("RENAL", ("5859", "5853", "5854", "5856", "40391"), (0.35, 0.25, 0.12, 0.18, 0.10),
          -2.4, 0.35, 0.45, True),
    Cond("LIVER", ("5715", "5712"), (0.6, 0.4), -3.1, -0.2, 0.4, True),
    Cond("CHF", ("4280", "42822", "42832"), (0.5, 0.25, 0.25), -1.8, 0.5, 0.5, True),
    Cond("ARRHY", ("42731", "42732", "4271"), (0.8, 0.12, 0.08), -1.6, 0.7, 0.3, True),
    Cond("COPD", ("496", "4928"), (0.8, 0.2), -2.2, 0.3, 0.4, True),
    Cond("METS", ("1970", "1977", "1983", "1985"), (0.35, 0.3, 0.15, 0.2), -3.0, 0.1, 0.5, True),
    Cond("ANEMIA", ("2859", "2800", "28529"), (0.6, 0.2, 0.2), -2.1, 0.2, 0.5, True),
    Cond("HYPOTHY", ("2449",), (1.0,), -2.6, 0.3, 0.1, True),
    Cond("DEPRESS", ("311",), (1.0,), -2.5, -0.1, 0.2, True),
    Cond("OBESITY", ("27800",), (1.0,), -2.8, -0.2, 0.1, True),
    Cond("PVD", ("4439",), (1.0,), -3.0, 0.4, 0.3, True),
    Cond("MALNUT", ("2639",), (1.0,), -3.6, 0.3, 0.6, True),
)  # fmt: skip
CI = {c.key: i for i, c in enumerate(CONDS)}
COUPLING: dict[str, tuple[tuple[str, float], ...]] = {
    "RENAL": (("DIAB", 0.6), ("HTN", 0.4)),
    "LIVER": (("ALCOHOL", 1.6),),
    "CHF": (("CAD", 0.6), ("HTN", 0.2)),
    "ARRHY": (("CHF", 0.5),),
    "PVD": (("DIAB", 0.5),),
}
MAJOR = ("CHF", "RENAL", "COPD", "METS")
PRIMARY_CANCER = ("1629", "1749", "1539", "185")  # lung, breast, colon, prostate

WORDS: dict[str, str] = {
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


class Reason(NamedTuple):
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


REASONS: tuple[Reason, ...] = (
    Reason("SEPSIS", ("SEPSIS", "FEVER", "HYPOTENSION", "UROSEPSIS"), "0389", ("MED", "OMED"),
            (0.9, 0.1), "MICU", 0.9, 0.98, False, 0.15, 0.0, "sepsis", "fever and hypotension"),
    Reason("PNEUMONIA", ("PNEUMONIA", "SHORTNESS OF BREATH", "HYPOXIA"), "486", ("MED",), (1.0,),
            "MICU", 0.5, 0.97, False, 0.13, 0.0, "community acquired pneumonia",
            "cough, fever and shortness of breath"),
    Reason("CHF_EXAC", ("CONGESTIVE HEART FAILURE", "SHORTNESS OF BREATH", "DYSPNEA"), "4280",
            ("CMED", "MED"), (0.85, 0.15), "CCU", 0.5, 0.96, False, 0.10, 0.0,
            "acute on chronic congestive heart failure", "dyspnea on exertion and leg swelling"),
    Reason("COPD_EXAC", ("COPD EXACERBATION", "SHORTNESS OF BREATH"), "49121", ("MED",), (1.0,),
            "MICU", 0.4, 0.96, False, 0.06, 0.0, "COPD exacerbation",
            "worsening shortness of breath"),
    Reason("GI_BLEED", ("GASTROINTESTINAL BLEED", "UPPER GI BLEED", "LOWER GI BLEED"), "5789",
            ("MED", "SURG"), (0.8, 0.2), "MICU", 0.4, 0.97, False, 0.10, 0.0,
            "gastrointestinal bleed", "melena and lightheadedness"),
    Reason("AMI", ("CHEST PAIN", "ST ELEVATION MYOCARDIAL INFARCTION\\CATH",
                    "NON-ST SEGMENT ELEVATION MYOCARDIAL INFARCTION"), "41071", ("CMED",), (1.0,),
            "CCU", 0.3, 0.97, False, 0.12, 0.0, "NSTEMI", "substernal chest pain"),
    Reason("STROKE", ("STROKE", "STROKE;TELEMETRY;TRANSIENT ISCHEMIC ATTACK",
                       "ALTERED MENTAL STATUS"), "43491", ("NMED", "NSURG"), (0.7, 0.3), "SICU",
            0.4, 0.96, False, 0.08, 0.0, "acute ischemic stroke",
            "right sided weakness and aphasia"),
    Reason("AKI", ("ACUTE RENAL FAILURE", "HYPERKALEMIA", "ALTERED MENTAL STATUS"), "5849",
            ("MED",), (1.0,), "MICU", 0.4, 0.95, False, 0.06, 0.0, "acute kidney injury",
            "decreased urine output and weakness"),
    Reason("HIP_FX", ("HIP FRACTURE", "S/P FALL"), "82021", ("ORTHO", "TRAUM", "TSURG"),
            (0.6, 0.25, 0.15), "TSICU", 0.2, 0.9, True, 0.06, 0.0, "hip fracture after a fall",
            "hip pain after a mechanical fall"),
    Reason("RESP_FAIL", ("RESPIRATORY FAILURE", "HYPOXIA", "RESPIRATORY DISTRESS"), "51881",
            ("MED",), (1.0,), "MICU", 0.8, 0.99, False, 0.07, 0.0, "hypoxic respiratory failure",
            "respiratory distress"),
    Reason("CABG", ("CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA",), "41401",
            ("CSURG",), (1.0,), "CSRU", 0.0, 0.99, True, 0.0, 0.35,
            "coronary artery disease s/p CABG", "exertional angina"),
    Reason("VALVE", ("AORTIC STENOSIS\\AORTIC VALVE REPLACEMENT /SDA",), "4241", ("CSURG",),
            (1.0,),
            "CSRU", 0.0, 0.99, True, 0.0, 0.15, "aortic stenosis s/p aortic valve replacement",
            "dyspnea on exertion"),
    Reason("PCI", ("CORONARY ARTERY DISEASE\\CARDIAC CATHETERIZATION",), "41401", ("CMED",),
            (1.0,),
            "CCU", -0.2, 0.9, False, 0.0, 0.15, "coronary artery disease s/p PCI", "stable angina"),
    Reason("JOINT", ("OSTEOARTHRITIS/SDA", "LEFT KNEE OSTEOARTHRITIS/SDA"), "71536", ("ORTHO",),
            (1.0,), "SICU", -0.3, 0.75, True, 0.0, 0.15, "osteoarthritis s/p joint replacement",
            "chronic knee pain"),
    Reason("COLECTOMY", ("COLON CANCER/SDA",), "1539", ("SURG",), (1.0,), "SICU", 0.1, 0.95, True,
            0.0, 0.20, "colon cancer s/p hemicolectomy", "colon mass found on colonoscopy"),
    Reason("NEWBORN", ("NEWBORN",), "V3000", ("NB",), (1.0,), "NICU", 0.0, 1.0, False, 0.0, 0.0,
            "newborn", "prematurity"),
)  # fmt: skip
RI = {r.key: i for i, r in enumerate(REASONS)}
REASON_KEYS = np.array([r.key for r in REASONS])
# ADMISSIONS.diagnosis: all reasons' texts in one list; a reason's texts start at its offset
DIAG_TEXTS = [t for r in REASONS for t in r.texts]
DIAG_TEXT_OFFSET = np.cumsum([0] + [len(r.texts) for r in REASONS])[:-1]

SERVICES = ("MED", "CMED", "SURG", "CSURG", "VSURG", "NSURG", "TSURG", "ORTHO", "NMED", "OMED",
             "TRAUM", "NB")  # fmt: skip
SVC = {s: i for i, s in enumerate(SERVICES)}
SERVICE_WORDS = {
    "MED": "MEDICINE", "CMED": "MEDICINE", "SURG": "SURGERY", "CSURG": "CARDIOTHORACIC",
    "VSURG": "SURGERY", "NSURG": "NEUROSURGERY", "TSURG": "SURGERY", "ORTHO": "ORTHOPAEDICS",
    "NMED": "NEUROLOGY", "OMED": "MEDICINE", "TRAUM": "SURGERY", "NB": "NEONATOLOGY",
}  # fmt: skip
CAREUNITS = ("MICU", "SICU", "CCU", "CSRU", "TSICU", "NICU")
CU = {c: i for i, c in enumerate(CAREUNITS)}
CU_WARDS: tuple[tuple[int, ...], ...] = ((15, 50, 52), (33, 57), (7,), (12, 54), (14,), (56,))
FLOOR_WARDS = (1, 2, 3, 4, 6, 17, 23, 24, 25, 26, 27, 36, 45, 49, 55)
CU_SWAP_P = (0.45, 0.25, 0.15, 0.05, 0.10)  # an adult's care unit when not the reason's

ADM_TYPES = ("EMERGENCY", "ELECTIVE", "URGENT", "NEWBORN")
EMERG, ELECT, URG, NB = 0, 1, 2, 3
ADM_LOCS = (
    "EMERGENCY ROOM ADMIT", "TRANSFER FROM HOSP/EXTRAM", "CLINIC REFERRAL/PREMATURE",
    "PHYS REFERRAL/NORMAL DELI", "TRANSFER FROM SKILLED NUR", "TRANSFER FROM OTHER HEALT",
)  # fmt: skip
DIS_LOCS = (
    "HOME", "HOME HEALTH CARE", "SNF", "REHAB/DISTINCT PART HOSP", "LONG TERM CARE HOSPITAL",
    "SHORT TERM HOSPITAL", "HOSPICE-HOME", "LEFT AGAINST MEDICAL ADVI", "HOME WITH HOME IV PROVIDR",
    "DISCH-TRAN TO PSYCH HOSP", "ICF", "OTHER FACILITY", "DEAD/EXPIRED",
)  # fmt: skip
DEAD = 12
DIS_WORDS = (
    "Home", "Home With Service", "Extended Care", "Extended Care", "Extended Care",
    "Extended Care", "Home With Service", "Home", "Home With Service", "Extended Care",
    "Extended Care", "Extended Care", "Expired",
)  # fmt: skip
INSURANCE = ("Medicare", "Private", "Medicaid", "Government", "Self Pay")
LANGUAGES = ("ENGL", "SPAN", "RUSS", "PTUN", "CANT", "MAND", "PORT", "HAIT")
LANG_P = (0.55, 0.05, 0.015, 0.01, 0.01, 0.008, 0.008, 0.006)  # rest: empty
RELIGIONS = (
    "CATHOLIC", "NOT SPECIFIED", "UNOBTAINABLE", "PROTESTANT QUAKER", "JEWISH", "OTHER",
    "EPISCOPALIAN", "GREEK ORTHODOX", "CHRISTIAN SCIENTIST", "BUDDHIST", "MUSLIM",
    "JEHOVAH'S WITNESS", "UNITARIAN-UNIVERSALIST", "HINDU", "ROMANIAN EAST. ORTH",
)  # fmt: skip
RELIGION_P = (0.35, 0.2, 0.13, 0.13, 0.09, 0.04, 0.015, 0.012, 0.01, 0.008, 0.008, 0.007, 0.005,
               0.004, 0.002)  # fmt: skip
MARITAL = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED", "SEPARATED", "UNKNOWN (DEFAULT)",
            "LIFE PARTNER")  # fmt: skip
MARITAL_P = (0.46, 0.25, 0.14, 0.065, 0.012, 0.008, 0.001)  # rest: empty
ETHNICITY = (
    "WHITE", "BLACK/AFRICAN AMERICAN", "HISPANIC OR LATINO", "HISPANIC/LATINO - PUERTO RICAN",
    "ASIAN", "ASIAN - CHINESE", "UNKNOWN/NOT SPECIFIED", "OTHER", "UNABLE TO OBTAIN",
    "PATIENT DECLINED TO ANSWER", "WHITE - RUSSIAN", "BLACK/CAPE VERDEAN", "MULTI RACE ETHNICITY",
    "AMERICAN INDIAN/ALASKA NATIVE", "MIDDLE EASTERN", "PORTUGUESE",
)  # fmt: skip
ETHNICITY_P = (0.70, 0.09, 0.03, 0.01, 0.03, 0.006, 0.075, 0.025, 0.015, 0.01, 0.004, 0.003,
                0.002, 0.001, 0.001, 0.001)  # fmt: skip
