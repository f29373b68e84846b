"""MIMIC-III admissions as FHIR R4 Bundles (`safellm fhir export`).

One Bundle per admission, of type `transaction` (PUT of every resource under a stable id, so that
loading a Bundle twice into a FHIR server changes nothing), holding what the risk models read for
that admission's units: the Patient; the Encounters of this admission and of the patient's earlier
ones (with their ICD-9-CM Conditions and Procedures); the ICU stays and hospital services as
Encounters that are `partOf` their admission; the care-unit history as `Encounter.location`; panel
labs (LOINC and MIMIC item codings, from 12 h before admission) and vital signs (in the 24 h before
each prediction time) as Observations; positive cultures as Observations of LOINC 11475-1;
prescriptions as MedicationRequests; notes as DocumentReferences. Nothing dated at or after the
admission's last prediction time is written (the Bundle's `timestamp` is that time), so no resource
is "in the future" of the Bundle, and no value a model may not see is exported.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from safellm.data import mimic
from safellm.data.catalogue import LABS, VITALS
from safellm.errors import ArtifactError, UnknownPatientError
from safellm.fhir import codes as C
from safellm.fsutil import atomic_path

Resource = dict[str, Any]


# ------------------------------------------------------------------------------ formatting
def instant(ts: Any) -> str:
    """A MIMIC timestamp as a FHIR dateTime to the second (MIMIC times carry no zone: UTC)."""
    return f"{pd.Timestamp(ts):%Y-%m-%dT%H:%M:%S}+00:00"


def day(ts: Any) -> str:
    """A MIMIC date column (a timestamp at midnight) as a FHIR date; a time other than midnight is
    kept as a dateTime."""
    t = pd.Timestamp(ts)
    return f"{t:%Y-%m-%d}" if t == t.normalize() else instant(t)


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and v != v) and v is not pd.NaT


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _stable_id(prefix: str, *parts: Any) -> str:
    return f"{prefix}-{hashlib.sha256('|'.join(map(str, parts)).encode()).hexdigest()[:20]}"


def _occurrences(rows: pd.DataFrame, columns: list[str]) -> list[int]:
    """The n-th occurrence of each row among identical rows (MIMIC holds exact duplicates, which
    count): part of the stable id."""
    seen: Counter[tuple[Any, ...]] = Counter()
    out = []
    for key in rows[columns].itertuples(index=False, name=None):
        out.append(seen[key])
        seen[key] += 1
    return out


# ------------------------------------------------------------------------------ the source
class Source:
    """The MIMIC tables a built data folder was made from, staged once (as `safellm data build`
    stages them: the same rows the features read), and its notes export."""

    def __init__(self, data_dir: Path) -> None:
        data_dir = Path(data_dir)
        manifest = data_dir / "manifest.json"
        if not manifest.is_file():
            raise ArtifactError(f"{manifest} not found: build the data first (safellm data build)")
        source = Path(json.loads(manifest.read_text())["source"])
        if not source.is_dir():
            raise ArtifactError(
                f"{source}: the MIMIC folder {data_dir} was built from is gone; rebuild the data"
            )
        folder = mimic.open_mimic(source)
        self.con = mimic.connect(":memory:", memory_limit="2GB", threads=2)
        mimic.create_views(self.con, folder)
        mimic.stage(self.con, folder, [n for n, s in mimic.TABLES.items() if s.staged])
        notes = data_dir / "notes.parquet"
        self.notes = pd.read_parquet(notes) if notes.is_file() else None

    def close(self) -> None:
        self.con.close()

    def admissions(self) -> list[int]:
        rows = self.con.execute("SELECT hadm_id FROM admissions ORDER BY 1").fetchall()
        return [int(r[0]) for r in rows]

    def q(self, sql: str, *params: Any) -> pd.DataFrame:
        return self.con.execute(sql, list(params)).df()


# ------------------------------------------------------------------------------ resources
def _patient(p: pd.Series, sid: int) -> Resource:
    res: Resource = {
        "resourceType": "Patient",
        "id": f"mimic-{sid}",
        "identifier": [{"system": C.SUBJECT_ID, "value": str(sid)}],
    }
    sex = str(p["gender"] or "").upper()
    res["gender"] = {"M": "male", "F": "female"}.get(sex, "unknown")
    if _present(p["dob"]):
        dob = pd.Timestamp(p["dob"])
        res["birthDate"] = f"{dob:%Y-%m-%d}"
        if dob != dob.normalize():
            res["_birthDate"] = {
                "extension": [{"url": C.BIRTH_TIME, "valueDateTime": instant(dob)}]
            }
    return res


def _admission(a: pd.Series, patient: str, transfers: pd.DataFrame | None) -> Resource:
    atype = str(a["admission_type"] or "").upper()
    res: Resource = {
        "resourceType": "Encounter",
        "id": f"adm-{int(a['hadm_id'])}",
        "identifier": [{"system": C.HADM_ID, "value": str(int(a["hadm_id"]))}],
        "status": "finished",
        "class": _coding(C.ACT_CODE, "EMER" if atype == "EMERGENCY" else "IMP"),
        "type": [
            {"coding": [_coding(C.ENCOUNTER_KIND, "admission")]},
            {"coding": [_coding(C.ADMISSION_TYPE, atype)], "text": atype},
        ],
        "subject": {"reference": patient},
        "period": {"start": instant(a["admittime"])},
    }
    if _present(a["dischtime"]):
        res["period"]["end"] = instant(a["dischtime"])
    else:
        res["status"] = "in-progress"
    if atype in C.PRIORITY:
        res["priority"] = {"coding": [_coding(C.ACT_PRIORITY, C.PRIORITY[atype])]}
    ext = [
        {"url": url, "valueString": str(a[col])}
        for url, col in ((C.EXT_INSURANCE, "insurance"), (C.EXT_ETHNICITY, "ethnicity"))
        if _present(a[col])
    ]
    if ext:
        res["extension"] = ext
    hosp: Resource = {}
    if _present(a["admission_location"]):
        hosp["admitSource"] = {"text": str(a["admission_location"])}
    disposition: Resource = {}
    if _present(a["discharge_location"]):
        disposition["text"] = str(a["discharge_location"])
    if int(a["hospital_expire_flag"] or 0) == 1:
        disposition["coding"] = [_coding(C.DISCHARGE_DISPOSITION, "exp", "Expired")]
    if disposition:
        hosp["dischargeDisposition"] = disposition
    if hosp:
        res["hospitalization"] = hosp
    if transfers is not None and not transfers.empty:
        res["location"] = [_location(t) for _, t in transfers.iterrows()]
    return res


def _location(t: pd.Series) -> Resource:
    unit = t["curr_careunit"]
    ref: Resource = (
        {"identifier": {"system": C.CARE_UNIT, "value": str(unit)}, "display": str(unit)}
        if _present(unit)
        else {"display": "ward"}
    )
    return {
        "location": ref,
        "status": "completed",
        "period": {"start": instant(t["intime"])},
        "extension": [{"url": C.EXT_TRANSFER_EVENT, "valueCode": str(t["eventtype"]).lower()}],
    }


def _icu(i: pd.Series, patient: str) -> Resource:
    res: Resource = {
        "resourceType": "Encounter",
        "id": f"icu-{int(i['icustay_id'])}",
        "identifier": [{"system": C.ICUSTAY_ID, "value": str(int(i["icustay_id"]))}],
        "status": "finished",
        "class": _coding(C.ACT_CODE, "ACUTE", "inpatient acute"),
        "type": [{"coding": [_coding(C.ENCOUNTER_KIND, "icu-stay")]}],
        "subject": {"reference": patient},
        "partOf": {"reference": f"Encounter/adm-{int(i['hadm_id'])}"},
        "period": {"start": instant(i["intime"])},
    }
    if _present(i["outtime"]):
        res["period"]["end"] = instant(i["outtime"])
    if _present(i["first_careunit"]):
        unit = str(i["first_careunit"])
        res["location"] = [
            {"location": {"identifier": {"system": C.CARE_UNIT, "value": unit}, "display": unit}}
        ]
    return res


def _service(s: pd.Series, n: int, patient: str) -> Resource:
    hadm = int(s["hadm_id"])
    res: Resource = {
        "resourceType": "Encounter",
        "id": f"svc-{hadm}-{n}",
        "status": "finished",
        "class": _coding(C.ACT_CODE, "IMP"),
        "type": [{"coding": [_coding(C.ENCOUNTER_KIND, "service")]}],
        "subject": {"reference": patient},
        "partOf": {"reference": f"Encounter/adm-{hadm}"},
        "period": {"start": instant(s["transfertime"])},
    }
    if _present(s["curr_service"]):
        res["serviceType"] = {"coding": [_coding(C.SERVICE, str(s["curr_service"]))]}
    return res


def _code(kind: str, d: pd.Series, n: int, patient: str) -> Resource:
    hadm = int(d["hadm_id"])
    procedure = kind == "Procedure"
    code = str(d["icd9_code"])
    res: Resource = {
        "resourceType": kind,
        "id": f"{'px' if procedure else 'dx'}-{hadm}-{n}",
        "subject": {"reference": patient},
        "code": {"coding": [_coding(C.ICD9_CM, C.icd9_dotted(code, procedure))]},
    }
    res["encounter"] = {"reference": f"Encounter/adm-{hadm}"}
    if procedure:
        res["status"] = "completed"
    return res


def _lab(r: pd.Series, n: int, patient: str) -> Resource:
    itemid = int(r["itemid"])
    label, unit = next((lb, u) for i, lb, u in LABS.values() if i == itemid)
    res: Resource = {
        "resourceType": "Observation",
        "id": _stable_id("lab", r["subject_id"], itemid, r["charttime"], r["valuenum"], n),
        "status": "final",
        "category": [{"coding": [_coding(C.OBS_CATEGORY, "laboratory")]}],
        "code": {
            "coding": [
                _coding(C.LOINC, C.LAB_LOINC[itemid], label),
                _coding(C.LAB_ITEM, str(itemid), label),
            ],
            "text": label,
        },
        "subject": {"reference": patient},
        "effectiveDateTime": instant(r["charttime"]),
    }
    if _present(r["valuenum"]):
        res["valueQuantity"] = {
            "value": float(r["valuenum"]),
            "unit": unit,
            "system": C.UCUM,
            "code": C.UCUM_OF[unit],
        }
    if bool(r["abnormal"]):
        res["interpretation"] = [{"coding": [_coding(C.INTERPRETATION, "A", "Abnormal")]}]
    return res


def _vital(r: pd.Series, n: int, patient: str) -> Resource:
    itemid = int(r["itemid"])
    stem = C.CHART_ITEMS[itemid]
    _, label, unit = VITALS[stem]
    return {
        "resourceType": "Observation",
        "id": _stable_id("vital", r["subject_id"], itemid, r["charttime"], r["valuenum"], n),
        "status": "final",
        "category": [{"coding": [_coding(C.OBS_CATEGORY, "vital-signs")]}],
        "code": {
            "coding": [
                _coding(C.LOINC, C.VITAL_LOINC[stem], label),
                _coding(C.CHART_ITEM, str(itemid), label),
            ],
            "text": label,
        },
        "subject": {"reference": patient},
        "effectiveDateTime": instant(r["charttime"]),
        "valueQuantity": {
            "value": float(r["valuenum"]),
            "unit": unit,
            "system": C.UCUM,
            "code": C.UCUM_OF[unit],
        },
    }


def _culture(r: pd.Series, n: int, patient: str) -> Resource:
    when = instant(r["charttime"]) if _present(r["charttime"]) else day(r["chartdate"])
    hadm = int(r["hadm_id"])
    return {
        "resourceType": "Observation",
        "id": _stable_id("micro", hadm, when, r["org_name"], n),
        "status": "final",
        "category": [{"coding": [_coding(C.OBS_CATEGORY, "laboratory")]}],
        "code": {"coding": [_coding(C.LOINC, C.ORGANISM_LOINC, "Microorganism identified")]},
        "subject": {"reference": patient},
        "encounter": {"reference": f"Encounter/adm-{hadm}"},
        "effectiveDateTime": when,
        "valueCodeableConcept": {"text": str(r["org_name"])},
    }


def _medication(r: pd.Series, n: int, patient: str) -> Resource:
    hadm = int(r["hadm_id"])
    return {
        "resourceType": "MedicationRequest",
        "id": _stable_id("med", hadm, r["startdate"], r["drug"], n),
        "status": "completed",
        "intent": "order",
        "medicationCodeableConcept": {"text": str(r["drug"])},
        "subject": {"reference": patient},
        "encounter": {"reference": f"Encounter/adm-{hadm}"},
        "authoredOn": day(r["startdate"]),
    }


def _note(r: pd.Series, patient: str) -> Resource:
    when = instant(r["charttime"]) if _present(r["charttime"]) else day(r["chartdate"])
    hadm = int(r["hadm_id"])
    category = str(r["category"] or "")  # as written: MIMIC has "Physician "
    res: Resource = {
        "resourceType": "DocumentReference",
        "id": f"note-{int(r['note_id'])}",
        "identifier": [{"system": C.NOTE_ID, "value": str(int(r["note_id"]))}],
        "status": "current",
        "type": {"text": category},
        "subject": {"reference": patient},
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(str(r["text"]).encode()).decode(),
                }
            }
        ],
        "context": {
            "encounter": [{"reference": f"Encounter/adm-{hadm}"}],
            "period": {"start": when},
        },
    }
    if _present(r.get("description")):
        res["description"] = str(r["description"])
    return res


# ------------------------------------------------------------------------------ bundles
def bundle(src: Source, hadm_id: int) -> Resource:
    """The transaction Bundle of admission `hadm_id` (see the module docstring)."""
    adm = src.q("SELECT * FROM admissions WHERE hadm_id = ?", hadm_id)
    if adm.empty:
        raise UnknownPatientError(f"admission {hadm_id} is not in the data")
    a = adm.iloc[0]
    sid = int(a["subject_id"])
    icu = src.q("SELECT * FROM icustays WHERE hadm_id = ? ORDER BY intime", hadm_id)
    # every prediction time of this admission's units; data before the last is what models read
    times = [pd.Timestamp(a["dischtime"]), pd.Timestamp(a["admittime"]) + pd.Timedelta(hours=24)]
    times += [pd.Timestamp(t) + pd.Timedelta(hours=24) for t in icu["intime"].dropna()]
    end = max(times)
    patient = f"Patient/mimic-{sid}"
    resources: list[Resource] = []
    pat = src.q("SELECT * FROM patients WHERE subject_id = ?", sid)
    if not pat.empty:
        resources.append(_patient(pat.iloc[0], sid))
    else:
        resources.append(_patient(pd.Series({"gender": None, "dob": None}), sid))
    seen = src.q(
        "SELECT * FROM admissions WHERE subject_id = ? AND (hadm_id = ? OR admittime < ?) "
        "AND admittime IS NOT NULL ORDER BY admittime, hadm_id",
        sid,
        hadm_id,
        a["admittime"],
    )
    hadms = [int(h) for h in seen["hadm_id"]]
    transfers = src.q(
        "SELECT * FROM transfers WHERE hadm_id = ? AND intime IS NOT NULL AND intime < ? "
        "AND lower(eventtype) IN ('admit', 'transfer') ORDER BY intime",
        hadm_id,
        end,
    )
    for _, b in seen.iterrows():
        if not _present(b["dischtime"]) or pd.Timestamp(b["dischtime"]) > end:
            b = b.copy()
            b["dischtime"] = None  # an earlier admission still open at the Bundle's time
        resources.append(
            _admission(b, patient, transfers if int(b["hadm_id"]) == hadm_id else None)
        )
    stays = src.q(
        f"SELECT * FROM icustays WHERE hadm_id IN ({','.join(map(str, hadms))}) "
        "AND intime IS NOT NULL AND intime < ? ORDER BY intime",
        end,
    )
    for _, i in stays.iterrows():
        if _present(i["outtime"]) and pd.Timestamp(i["outtime"]) > end:
            i = i.copy()
            i["outtime"] = None  # not known yet at the Bundle's time
        resources.append(_icu(i, patient))
    services = src.q(
        "SELECT * FROM services WHERE hadm_id = ? AND transfertime IS NOT NULL "
        "AND transfertime < ? ORDER BY transfertime",
        hadm_id,
        end,
    )
    resources += [_service(s, n, patient) for n, (_, s) in enumerate(services.iterrows())]
    for kind, table in (("Condition", "diagnoses_icd"), ("Procedure", "procedures_icd")):
        rows = src.q(
            f"SELECT * FROM {table} WHERE hadm_id IN ({','.join(map(str, hadms))}) "
            "AND icd9_code IS NOT NULL"
        )
        for _h, group in rows.groupby("hadm_id", sort=True):
            resources += [_code(kind, d, n, patient) for n, (_, d) in enumerate(group.iterrows())]
    labs = src.q(
        "SELECT * FROM labevents WHERE subject_id = ? AND charttime >= ? AND charttime < ? "
        "ORDER BY charttime, itemid, valuenum",
        sid,
        pd.Timestamp(a["admittime"]) - pd.Timedelta(hours=12),
        end,
    )
    occ = _occurrences(labs, ["itemid", "charttime", "valuenum", "abnormal"])
    resources += [_lab(r, n, patient) for n, (_, r) in zip(occ, labs.iterrows(), strict=True)]
    windows = " OR ".join("(charttime >= ? AND charttime < ?)" for _ in times)
    bounds = [x for t in times for x in (t - pd.Timedelta(hours=24), t)]
    vitals = src.q(
        f"SELECT * FROM chartevents WHERE subject_id = ? AND ({windows}) "
        "ORDER BY charttime, itemid, valuenum",
        sid,
        *bounds,
    )
    occ = _occurrences(vitals, ["itemid", "charttime", "valuenum"])
    resources += [_vital(r, n, patient) for n, (_, r) in zip(occ, vitals.iterrows(), strict=True)]
    micro = src.q(
        "SELECT * FROM microbiologyevents WHERE hadm_id = ? AND org_name IS NOT NULL "
        "AND coalesce(charttime, chartdate) IS NOT NULL AND coalesce(charttime, chartdate) < ? "
        "ORDER BY coalesce(charttime, chartdate), org_name",
        hadm_id,
        end,
    )
    micro["when"] = micro["charttime"].fillna(micro["chartdate"])
    occ = _occurrences(micro, ["when", "org_name"])
    resources += [_culture(r, n, patient) for n, (_, r) in zip(occ, micro.iterrows(), strict=True)]
    meds = src.q(
        "SELECT * FROM prescriptions WHERE hadm_id = ? AND drug IS NOT NULL "
        "AND startdate IS NOT NULL AND startdate < ? ORDER BY startdate, drug",
        hadm_id,
        end,
    )
    occ = _occurrences(meds, ["startdate", "drug"])
    resources += [
        _medication(r, n, patient) for n, (_, r) in zip(occ, meds.iterrows(), strict=True)
    ]
    if src.notes is not None:
        notes = src.notes[src.notes["hadm_id"] == hadm_id]
        for _, r in notes.iterrows():
            when = r["charttime"] if _present(r["charttime"]) else r["chartdate"]
            if _present(when) and pd.Timestamp(when) < end:
                resources.append(_note(r, patient))
    return {
        "resourceType": "Bundle",
        "id": f"safellm-adm-{hadm_id}",
        "type": "transaction",
        "timestamp": instant(end),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{_uuid(r)}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def _uuid(resource: Resource) -> str:
    h = hashlib.sha256(f"{resource['resourceType']}/{resource['id']}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def export_bundles(
    data_dir: Path,
    out_dir: Path,
    hadm_ids: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write `<out_dir>/admission-<hadm_id>.json` for the given admissions (default: all) of the
    MIMIC folder `data_dir` was built from; atomic writes. Returns the files written."""
    src = Source(data_dir)
    try:
        ids = hadm_ids if hadm_ids is not None else src.admissions()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for n, hadm in enumerate(ids, 1):
            path = out_dir / f"admission-{hadm}.json"
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(bundle(src, hadm), separators=(",", ":")) + "\n")
            written.append(path)
            if progress is not None:
                progress(n, len(ids))
        return written
    finally:
        src.close()


def iter_bundles(data_dir: Path, hadm_ids: list[int] | None = None) -> Iterator[Resource]:
    """The Bundles of `export_bundles`, in memory (tests, benchmarks)."""
    src = Source(data_dir)
    try:
        for hadm in hadm_ids if hadm_ids is not None else src.admissions():
            yield bundle(src, hadm)
    finally:
        src.close()
