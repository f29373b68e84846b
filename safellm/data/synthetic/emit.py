"""Assembly: generate one batch, give it global ids and write its rows into every table; write
the dictionaries (D_LABITEMS, D_ICD_DIAGNOSES, D_ICD_PROCEDURES) once at the end.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from safellm.data.synthetic.admissions import make_admissions
from safellm.data.synthetic.batch import Batch
from safellm.data.synthetic.chart import ChartMode, Stays, chart_chunks
from safellm.data.synthetic.codes import DX, DX_CODES, PX, PX_CODES
from safellm.data.synthetic.coding import diagnoses, procedures
from safellm.data.synthetic.ids import Ids
from safellm.data.synthetic.labs import inpatient_labs, outpatient_labs
from safellm.data.synthetic.meds import DRUGS, prescriptions
from safellm.data.synthetic.micro import ABX, DIL_I, DIL_R, DIL_S, ORGS, SPECS, micro
from safellm.data.synthetic.notes import notes
from safellm.data.synthetic.numeric import DAY, HOUR, Arr, floor_day, floor_minute
from safellm.data.synthetic.patients import make_patients, patient_deaths
from safellm.data.synthetic.transfers import icu_index, services, transfers
from safellm.data.synthetic.vocab import (
    ADM_LOCS,
    ADM_TYPES,
    CAREUNITS,
    DIAG_TEXT_OFFSET,
    DIAG_TEXTS,
    DIS_LOCS,
    ETHNICITY,
    INSURANCE,
    LABS,
    LANGUAGES,
    MARITAL,
    RELIGIONS,
    SERVICES,
)
from safellm.data.synthetic.writer import (
    GzCsv,
    quoted,
    row_ids,
    s_float,
    s_int,
    s_lab,
    s_lab_null,
    s_take,
    s_ts,
)

_DBSOURCES = ("metavision", "carevue")


def emit_batch(
    b: Batch,
    ids: Ids,
    W: dict[str, GzCsv],
    chart: tuple[np.random.Generator, ChartMode] | None = None,
) -> tuple[int, int]:
    """Generate batch b and append its rows to the writers W; returns (admissions, ICU stays).

    `chart`: CHARTEVENTS' own generator and mode (see `chart.py`); none: no CHARTEVENTS."""
    make_patients(b)
    make_admissions(b)
    patient_deaths(b)
    A, P = b.A, b.P
    n, na = b.n, len(A["pat"])
    pat = A["pat"]
    icu_adm, icu_which, i1, i2 = icu_index(A)
    ni = len(icu_adm)
    sub_id, hadm_id, icu_id = ids.take(n, na, ni)
    S_sub = s_int(sub_id)
    S_asub = pc.take(S_sub, pa.array(pat))
    S_hadm = s_int(hadm_id)
    S_icu = s_int(icu_id)

    def write_adm(table: str, adm: Arr, cols: dict[str, pa.Array]) -> None:
        """Rows of admissions adm: row_id, subject_id and hadm_id, then cols."""
        ix = pa.array(np.asarray(adm, np.int64))
        w = W[table]
        w.write({
            "row_id": row_ids(w, len(adm)), "subject_id": pc.take(S_asub, ix),
            "hadm_id": pc.take(S_hadm, ix), **cols,
        })  # fmt: skip

    # ---------------- PATIENTS
    dob, dod = P["dob"], P["dod"]
    W["PATIENTS"].write({
        "row_id": row_ids(W["PATIENTS"], n), "subject_id": S_sub,
        "gender": s_lab(("F", "M"), P["male"].astype(np.int64)), "dob": s_ts(dob),
        "dod": s_ts(floor_day(dod), dod == 0), "dod_hosp": s_ts(floor_day(dod), ~P["dod_hosp"]),
        "dod_ssn": s_ts(floor_day(dod), ~P["dod_ssn"]), "expire_flag": s_int(dod > 0),
    })  # fmt: skip

    # ---------------- ADMISSIONS
    died = A["died"] == 1
    write_adm("ADMISSIONS", np.arange(na), {
        "admittime": s_ts(A["admittime"]), "dischtime": s_ts(A["dischtime"]),
        "deathtime": s_ts(A["dischtime"], ~died),
        "admission_type": s_lab(ADM_TYPES, A["atype"]),
        "admission_location": s_lab(ADM_LOCS, A["admission_location"]),
        "discharge_location": s_lab(DIS_LOCS, A["discharge_location"]),
        "insurance": s_lab(INSURANCE, A["insurance"]),
        "language": s_lab_null(LANGUAGES, P["language"][pat]),
        "religion": s_lab(RELIGIONS, P["religion"][pat]),
        "marital_status": s_lab_null(MARITAL, P["marital"][pat]),
        "ethnicity": s_lab(ETHNICITY, P["ethnicity"][pat]),
        "edregtime": s_ts(floor_minute(A["edregtime"]), ~A["ed"]),
        "edouttime": s_ts(floor_minute(A["edouttime"]), ~A["ed"]),
        "diagnosis": s_lab(DIAG_TEXTS, DIAG_TEXT_OFFSET[A["reason"]] + A["text_idx"]),
        "hospital_expire_flag": s_int(died), "has_chartevents_data": s_int(A["icu"]),
    })  # fmt: skip

    # ---------------- TRANSFERS (also gives the ICU ward ids)
    T = transfers(b, i1, i2)
    icu_ward = np.zeros(max(ni, 1), np.int64)
    sel = T["icu"] >= 0
    icu_ward[T["icu"][sel]] = T["ward"][sel]
    write_adm("TRANSFERS", T["adm"], {
        "icustay_id": s_take(S_icu, T["icu"]),
        "dbsource": s_lab(_DBSOURCES, A["dbsource"][T["adm"]]),
        "eventtype": s_lab(("admit", "transfer", "discharge"), T["ev"]),
        "prev_careunit": s_lab_null(CAREUNITS, T["prev_cu"]),
        "curr_careunit": s_lab_null(CAREUNITS, T["cu"]),
        "prev_wardid": s_int(T["prev_ward"], T["prev_ward"] < 0),
        "curr_wardid": s_int(T["ward"], T["is_dis"]),
        "intime": s_ts(T["start"]), "outtime": s_ts(T["end"], T["is_dis"]),
        "los": s_float((T["end"] - T["start"]) / HOUR, 2, T["is_dis"]),
    })  # fmt: skip

    # ---------------- ICUSTAYS
    first = icu_which == 0
    cu = np.where(first, A["cu"][icu_adm], A["cu2"][icu_adm])
    tin = np.where(first, A["in1"][icu_adm], A["in2"][icu_adm])
    tout = np.where(first, A["out1"][icu_adm], A["out2"][icu_adm])
    write_adm("ICUSTAYS", icu_adm, {
        "icustay_id": S_icu, "dbsource": s_lab(_DBSOURCES, A["dbsource"][icu_adm]),
        "first_careunit": s_lab(CAREUNITS, cu), "last_careunit": s_lab(CAREUNITS, cu),
        "first_wardid": s_int(icu_ward[:ni]), "last_wardid": s_int(icu_ward[:ni]),
        "intime": s_ts(tin), "outtime": s_ts(tout), "los": s_float((tout - tin) / DAY, 4),
    })  # fmt: skip

    # ---------------- CHARTEVENTS (its own generator: the other tables do not depend on it)
    if chart is not None and chart[1] != ChartMode.NONE:
        ix = pa.array(np.asarray(icu_adm, np.int64))
        stays = Stays(
            adm=icu_adm, tin=tin, tout=tout, carevue=A["dbsource"][icu_adm] == 1,
            subject=pc.take(S_asub, ix), hadm=pc.take(S_hadm, ix), icustay=S_icu,
        )  # fmt: skip
        w = W["CHARTEVENTS"]
        for cols in chart_chunks(chart[0], A, P, stays, chart[1]):
            w.write({"row_id": row_ids(w, len(cols["itemid"])), **cols})

    # ---------------- SERVICES
    Sv = services(b, T["first_start"])
    write_adm("SERVICES", Sv["adm"], {
        "transfertime": s_ts(Sv["time"]),
        "prev_service": s_lab_null(SERVICES, Sv["prev"]),
        "curr_service": s_lab(SERVICES, Sv["curr"]),
    })  # fmt: skip

    # ---------------- LABEVENTS (inpatient + outpatient)
    L_in = inpatient_labs(b)
    L_out = outpatient_labs(b, P["dod"])
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
    lo = np.array([lab.lo for lab in LABS])[r_item]
    hi = np.array([lab.hi for lab in LABS])[r_item]
    S_val = s_float(r_val, 2)
    outp = r_adm < 0
    W["LABEVENTS"].write({
        "row_id": row_ids(W["LABEVENTS"], nl),
        "subject_id": pc.take(S_sub, pa.array(r_pat)),
        "hadm_id": pc.take(S_hadm, pa.array(np.maximum(r_adm, 0), mask=outp)),
        "itemid": s_int(np.array([lab.itemid for lab in LABS])[r_item]),
        "charttime": s_ts(r_time), "value": S_val, "valuenum": S_val,
        "valueuom": s_lab([lab.unit for lab in LABS], r_item),
        "flag": s_lab(("abnormal",), np.zeros(nl, np.int64), (r_val >= lo) & (r_val <= hi)),
    })  # fmt: skip

    # ---------------- DIAGNOSES_ICD / PROCEDURES_ICD
    for table, (adm, code, seq), codes in (
        ("DIAGNOSES_ICD", diagnoses(b), DX_CODES),
        ("PROCEDURES_ICD", procedures(b), PX_CODES),
    ):
        write_adm(table, adm, {"seq_num": s_int(seq), "icd9_code": s_lab(codes, code)})

    # ---------------- PRESCRIPTIONS
    Rx = prescriptions(b, i1, i2)
    nr = len(Rx["adm"])
    d = Rx["drug"]

    def dcol(field: str) -> pa.Array:
        return s_lab([getattr(x, field) or None for x in DRUGS], d)

    write_adm("PRESCRIPTIONS", Rx["adm"], {
        "icustay_id": s_take(S_icu, Rx["icu"]),
        "startdate": s_ts(Rx["start"]), "enddate": s_ts(Rx["end"]),
        "drug_type": dcol("dtype"), "drug": dcol("drug"), "drug_name_poe": dcol("poe"),
        "drug_name_generic": dcol("generic"), "formulary_drug_cd": dcol("formulary"),
        "gsn": pa.nulls(nr, pa.string()), "ndc": pa.nulls(nr, pa.string()),
        "prod_strength": dcol("strength"), "dose_val_rx": dcol("dose"),
        "dose_unit_rx": dcol("unit"), "form_val_disp": dcol("form_val"),
        "form_unit_disp": dcol("form_unit"), "route": dcol("route"),
    })  # fmt: skip

    # ---------------- MICROBIOLOGYEVENTS
    M = micro(b)
    nm = len(M["adm"])
    dil_all = (*DIL_S, *DIL_I, *DIL_R)
    dil_cmp = tuple(
        "<=" if x.startswith("<=") else "=>" if x.startswith("=>") else "=" for x in dil_all
    )
    dil_val = np.array([float(x.lstrip("<=>")) for x in dil_all])
    interp = M["interp"]
    dix = np.where(interp == 0, M["dil_s"], np.where(interp == 1, len(DIL_S) + M["dil_i"],
                   len(DIL_S) + len(DIL_I) + M["dil_r"]))  # fmt: skip
    no_ab = M["ab"] < 0
    no_org = M["org"] < 0
    ab_ids = np.array(sorted(ABX))
    ab_ix = np.searchsorted(ab_ids, np.maximum(M["ab"], ab_ids[0]))
    write_adm("MICROBIOLOGYEVENTS", M["adm"], {
        "chartdate": s_ts(floor_day(M["time"])), "charttime": s_ts(M["time"]),
        "spec_itemid": s_int(np.array([s[0] for s in SPECS])[M["spec"]]),
        "spec_type_desc": s_lab([s[1] for s in SPECS], M["spec"]),
        "org_itemid": s_int(np.array([o[0] for o in ORGS])[np.maximum(M["org"], 0)], no_org),
        "org_name": s_lab_null([o[1] for o in ORGS], M["org"]),
        "isolate_num": s_int(np.ones(nm, np.int64), no_org),
        "ab_itemid": s_int(np.maximum(M["ab"], 0), no_ab),
        "ab_name": s_lab([ABX[i] for i in ab_ids], ab_ix, no_ab),
        "dilution_text": s_lab(dil_all, dix, no_ab),
        "dilution_comparison": s_lab(dil_cmp, dix, no_ab),
        "dilution_value": s_float(dil_val[dix], 2, no_ab),
        "interpretation": s_lab(("S", "I", "R"), np.maximum(interp, 0), no_ab),
    })  # fmt: skip

    # ---------------- NOTEEVENTS
    N = notes(b, L_in, Rx)
    nn = len(N["adm"])
    write_adm("NOTEEVENTS", N["adm"], {
        "chartdate": s_ts(N["chartdate"]), "charttime": s_ts(N["charttime"], N["charttime"] < 0),
        "storetime": s_ts(N["storetime"], N["storetime"] < 0),
        "category": quoted(pa.array(N["category"], pa.string())),
        "description": quoted(pa.array(N["description"], pa.string())),
        "cgid": s_int(N["cgid"], N["cgid"] < 0), "iserror": pa.nulls(nn, pa.string()),
        "text": quoted(pa.array(N["text"], pa.string())),
    })  # fmt: skip
    return na, ni


def write_dictionaries(W: dict[str, GzCsv]) -> None:
    """D_LABITEMS, D_ICD_DIAGNOSES and D_ICD_PROCEDURES: the items and codes the generator uses."""
    nl = len(LABS)
    W["D_LABITEMS"].write({
        "row_id": s_int(np.arange(1, nl + 1)),
        "itemid": s_int(np.array([x.itemid for x in LABS])),
        "label": s_lab([x.label for x in LABS], np.arange(nl)),
        "fluid": s_lab([x.fluid for x in LABS], np.arange(nl)),
        "category": s_lab([x.category for x in LABS], np.arange(nl)),
        "loinc_code": s_lab([x.loinc for x in LABS], np.arange(nl)),
    })  # fmt: skip
    for table, codes in (("D_ICD_DIAGNOSES", DX), ("D_ICD_PROCEDURES", PX)):
        keys = sorted(codes)
        k = len(keys)
        W[table].write({
            "row_id": s_int(np.arange(1, k + 1)), "icd9_code": s_lab(keys, np.arange(k)),
            "short_title": s_lab([codes[c][0] for c in keys], np.arange(k)),
            "long_title": s_lab([codes[c][1] for c in keys], np.arange(k)),
        })  # fmt: skip
