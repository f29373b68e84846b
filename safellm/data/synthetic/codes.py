"""Embedded ICD-9-CM diagnosis and procedure codes with their short and long titles.

Only public coding-system facts, and only the codes the generator uses.
"""

from __future__ import annotations

DX: dict[str, tuple[str, str]] = {
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

PX: dict[str, tuple[str, str]] = {
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

# Codes are referred to by their index in these tuples.
DX_CODES = tuple(DX)
DXI = {c: i for i, c in enumerate(DX_CODES)}
PX_CODES = tuple(PX)
PXI = {c: i for i, c in enumerate(PX_CODES)}
