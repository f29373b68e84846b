"""A seeded, deterministic, MIMIC-III-shaped synthetic hospital.

`synthesize(out_dir, patients, seed)` writes the 14 tables the project reads as `<TABLE>.csv.gz`
(and CHARTEVENTS with `chartevents="vitals"` or `"full"`, see `chart.py`):
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
          hospice -1.0) + 0.22 high-risk drug classes + 0.25 ln(1 + LOS) + 0.012 (age - 65)
        + 1.2 [discharged from hospital within 24 h of leaving the ICU],
with the comorbidities as coded on that admission and latent end-of-stay labs: ~12 % of eligible
admissions. The creatinine rise and the ICU-to-discharge gap are the temporal signal: they live in
the order and timing of events, which the per-stay aggregates (last, lowest, highest) show in part
(the rise) or not at all (the gap). Otherwise 2 % get a planned ELECTIVE admission within 30 days, and
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

Layout: generator (synthesize, batches, atomic folder), emit (one batch into every table),
patients, admissions, model (death, stay, discharge, readmission), labs, meds, micro, coding
(ICD-9 rows), transfers, notes (with note_text, discharge_summary, ward_notes), vocab and codes
(embedded facts), writer (streaming CSV), ids, schema (headers), numeric (helpers).
"""

from safellm.data.synthetic.generator import synthesize
from safellm.data.synthetic.schema import TABLE_COLUMNS, SynthSummary

__all__ = ["TABLE_COLUMNS", "SynthSummary", "synthesize"]
