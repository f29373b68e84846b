"""The output tables: names and headers (the demo release's lower-case columns, in its order)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

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
    "CHARTEVENTS": (
        "row_id,subject_id,hadm_id,icustay_id,itemid,charttime,storetime,cgid,value,valuenum,"
        "valueuom,warning,error,resultstatus,stopped"
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
