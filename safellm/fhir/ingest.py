"""A FHIR R4 Bundle (or CDS Hooks prefetch) as the MIMIC-shaped rows the feature SQL reads.

Every resource is validated with `fhir.resources` (the R4B models, which accept R4 content), then
mapped by `safellm.fhir.codes`: Patient -> PATIENTS; Encounter (an admission, or an ICU stay or a
hospital service `partOf` one) -> ADMISSIONS, ICUSTAYS, SERVICES, and its `location` history ->
TRANSFERS; Condition / Procedure with an ICD-9-CM coding -> DIAGNOSES_ICD / PROCEDURES_ICD;
Observation of a panel lab, a vital sign or a culture's organism (by LOINC or MIMIC item) ->
LABEVENTS, CHARTEVENTS, MICROBIOLOGYEVENTS; MedicationRequest -> PRESCRIPTIONS; DocumentReference
with a plain-text attachment -> notes.

Nothing is guessed: an invalid resource, an unknown resource type, a code system the route cannot
read, a LOINC code with a wrong check digit, a lab in a unit other than the catalogue's, a resource
dated after the Bundle's timestamp (or after now), a duplicate id or a missing Patient or Encounter
start is a `FhirInputError` naming the resource and the field (HTTP 422 with an OperationOutcome).
Resources the models do not read (other resource types, other LOINC codes, other Observation
categories, entered-in-error records) are counted in `Ingested.ignored`, by reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

import pandas as pd
from pydantic import TypeAdapter

from safellm.data.catalogue import LABS, VITALS
from safellm.errors import FhirInputError, FhirIssue
from safellm.fhir import codes as C

Resource = dict[str, Any]

MAX_ISSUES = 20
_ITEM_UNIT: dict[int, str] = {i: u for i, _, u in LABS.values()}
_ABNORMAL = {"A", "AA", "H", "HH", "L", "LL", "HU", "LU", "<", ">"}
_IGNORED_STATUS = {"entered-in-error", "cancelled"}
_OBSERVATION_STATUS = {
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
}

_NAMED = re.compile(r"^(\S+) \(([^)]*)\)(\..*)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


class _Table(list[dict[str, Any]]):
    """A table's rows (dicts), with its columns, read as a DataFrame when needed."""

    def __init__(self, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
        super().__init__(rows)
        self.columns = columns

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self), columns=list(self.columns))


@dataclass
class Ingested:
    """The rows of one patient's Bundle, by MIMIC table (staged column names and types)."""

    tables: dict[str, _Table]  # rows by staged table name (`.frame()`: as a DataFrame)
    notes: pd.DataFrame
    now: datetime  # the Bundle's time: its timestamp, else when it was read
    # FHIR ids -> the integer ids of the rows
    encounters: dict[str, int] = field(default_factory=dict)  # admission Encounter id -> hadm_id
    icu_stays: dict[str, int] = field(default_factory=dict)  # ICU Encounter id -> icustay_id
    ignored: dict[str, int] = field(default_factory=dict)


class _Problems:
    def __init__(self) -> None:
        self.issues: list[FhirIssue] = []

    def add(self, where: str, message: str, code: str = "invalid") -> None:
        """`where`: a path, the resource named in brackets (`Bundle.entry[2].resource
        (Observation/x).valueQuantity`): the issue's expression is the path, its diagnostics
        start with the resource."""
        m = _NAMED.match(where)
        if m:
            where = m.group(1) + (m.group(3) or "")
            message = f"{m.group(2)}: {message}"
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(FhirIssue(code=code, expression=where, diagnostics=message))

    def raise_any(self) -> None:
        if self.issues:
            raise FhirInputError(self.issues)


def _validate(resource: Resource, where: str, problems: _Problems) -> bool:
    """Check one resource against its R4B model; problems named by field path."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        problems.add(where, "resourceType is missing", "required")
        return False
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        model = None
    if model is None or "FHIRResourceModel" not in {c.__name__ for c in model.__mro__}:
        problems.add(where, f"unknown resourceType {rtype[:40]!r}", "not-supported")
        return False
    shape, leaves = _shape(rtype, resource)
    try:
        text = json.dumps(shape, sort_keys=True, separators=(",", ":")).encode()
        # the resource itself (seen before: an EHR sends the record at every hook), its shape
        exact = hashlib.blake2b(
            text + json.dumps([v for _, _, v in leaves]).encode(), digest_size=16
        ).digest()
        key: bytes | None = hashlib.blake2b(text, digest_size=16).digest()
    except (TypeError, ValueError):  # not JSON (NaN, a loop): let the model say what is wrong
        key = None
    if key is not None and (
        _VALID.seen(exact) or (_VALID.seen(key) and _leaves_valid(model, leaves))
    ):
        if leaves:
            _VALID.add(exact)
        return True
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        for e in exc.errors()[:5]:
            path = ".".join(str(x) for x in e.get("loc", ()) if not str(x).startswith("function"))
            problems.add(f"{where}.{path}" if path else where, str(e.get("msg", "invalid")))
        return False
    if key is not None:
        _VALID.add(key)
        _VALID.add(exact)
    return True


# The leaves in which a patient's resources of one kind differ from each other (a lab's id, time
# and value). A resource is remembered as valid by its "shape": itself with these leaves replaced
# by their JSON types. One of the same shape as a resource found valid is checked leaf by leaf,
# with the model's own field types (FHIR id, dateTime, instant, decimal), instead of whole: the
# model has no rule that ties these leaves to other fields, so the answer is the model's.
_LEAVES: dict[str, tuple[tuple[str, ...], ...]] = {
    "Observation": (("id",), ("effectiveDateTime",), ("issued",), ("valueQuantity", "value")),
    "MedicationRequest": (("id",), ("authoredOn",)),
    "Condition": (("id",),),
    "Procedure": (("id",),),
}
_ADAPTERS: dict[tuple[str, tuple[str, ...]], TypeAdapter[Any]] = {}


def _shape(rtype: str, resource: Resource) -> tuple[Any, list[tuple[str, tuple[str, ...], Any]]]:
    """The resource with its varying leaves (`_LEAVES`) replaced by their JSON types, and those
    leaves (resource type, path, value)."""
    paths = _LEAVES.get(rtype)
    if not paths:
        return resource, []
    shape = dict(resource)
    leaves = []
    for path in paths:
        parent: dict[str, Any] | None = shape
        for k in path[:-1]:
            assert parent is not None
            child = parent.get(k)
            if not isinstance(child, dict):
                parent = None
                break
            parent[k] = child = dict(child)  # a copy: the resource itself is not changed
            parent = child
        if parent is not None and path[-1] in parent:
            value = parent[path[-1]]
            parent[path[-1]] = f"\0{type(value).__name__}"
            leaves.append((rtype, path, value))
    return shape, leaves


def _leaves_valid(model: Any, leaves: list[tuple[str, tuple[str, ...], Any]]) -> bool:
    """Whether each leaf's value passes its field's type in the model (see `_LEAVES`)."""
    from pydantic import ValidationError

    for rtype, path, value in leaves:
        adapter = _ADAPTERS.get((rtype, path))
        if adapter is None:
            owner = model
            for k in path[:-1]:  # nested elements: their own model classes
                owner = _element_model(owner.model_fields[k].annotation)
            adapter = TypeAdapter(owner.model_fields[path[-1]].annotation)
            _ADAPTERS[(rtype, path)] = adapter
        try:
            adapter.validate_python(value)
        except ValidationError:
            return False
    return True


def _element_model(annotation: Any) -> Any:
    """The FHIR element model class behind a field's annotation (`QuantityType | None`)."""
    from fhir.resources.R4B import get_fhir_model_class

    for arg in (annotation, *get_args(annotation)):
        name = getattr(arg, "__resource_type__", None) or getattr(arg, "__name__", "")
        if isinstance(name, str) and name.endswith("Type"):
            name = name[: -len("Type")]
        try:
            return get_fhir_model_class(name)
        except (KeyError, ValueError):
            continue
    raise TypeError(f"no FHIR model for {annotation!r}")


class _Seen:
    """Digests of resources found valid, most recent last (bounded): a CDS client sends the same
    record again at every hook, and validating a resource costs ten times hashing it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: OrderedDict[bytes, None] = OrderedDict()
        self.lock = threading.Lock()

    def seen(self, key: bytes) -> bool:
        with self.lock:
            if key in self.keys:
                self.keys.move_to_end(key)
                return True
            return False

    def add(self, key: bytes) -> None:
        with self.lock:
            self.keys[key] = None
            while len(self.keys) > self.size:
                self.keys.popitem(last=False)


_VALID = _Seen(200_000)


def _time(value: Any, where: str, problems: _Problems) -> tuple[datetime | None, bool]:
    """A FHIR date / dateTime as a naive UTC datetime, and whether it was a date only. Partial
    dates (a year, a month) are refused: event times must be days or instants."""
    if not isinstance(value, str):
        problems.add(where, "a date or dateTime is required", "required")
        return None, False
    if _DATE.match(value):
        return datetime.fromisoformat(value), True
    if _DATETIME.match(value):
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return t.astimezone(UTC).replace(tzinfo=None), False
    problems.add(where, f"{value!r} is not a full date or a dateTime with a time zone")
    return None, False


def _day(t: datetime) -> datetime:
    """The chart date of a chart time (MIMIC keeps both: the date is the time's day)."""
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding", []) if isinstance(c, dict)]


def _code_in(concept: Any, system: str) -> str | None:
    return next((str(c["code"]) for c in _codings(concept) if c.get("system") == system), None)


def _ident(resource: Resource, system: str) -> str | None:
    ids = resource.get("identifier") or []
    return next((str(i["value"]) for i in ids if i.get("system") == system and "value" in i), None)


def _ext(resource: Resource, url: str, key: str) -> Any:
    return next((e.get(key) for e in resource.get("extension") or [] if e.get("url") == url), None)


def _text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return str(concept["text"])
    c = next(iter(_codings(concept)), None)
    return str(c.get("display") or c.get("code")) if c else None


class _Refs:
    """Resolves references inside the Bundle: `Type/id`, absolute URLs ending so, and the
    `fullUrl` of an entry (`urn:uuid:...`)."""

    def __init__(self, entries: list[tuple[str, Resource]]) -> None:
        self.by_url = {url: r for url, r in entries if url}
        self.by_key = {(r["resourceType"], r.get("id")): r for _, r in entries}

    def get(self, ref: Any, rtype: str) -> Resource | None:
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        s = ref["reference"]
        if s in self.by_url:
            r = self.by_url[s]
            return r if r["resourceType"] == rtype else None
        parts = s.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == rtype:
            return self.by_key.get((rtype, parts[-1]))
        return None


def resources_of(
    payload: Any, problems: _Problems | None = None
) -> list[tuple[str, str, Resource]]:
    """(where, fullUrl, resource) of a Bundle, or of a CDS Hooks prefetch (a dict of resources
    and Bundles), flattened."""
    problems = problems or _Problems()
    out: list[tuple[str, str, Resource]] = []

    def take(obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            problems.add(where, "a FHIR resource (a JSON object) is expected", "structure")
            return
        if obj.get("resourceType") == "Bundle":
            entries = obj.get("entry") or []
            if not isinstance(entries, list):
                problems.add(f"{where}.entry", "entry must be a list", "structure")
                return
            for i, e in enumerate(entries):
                w = f"{where}.entry[{i}]"
                if not isinstance(e, dict) or not isinstance(e.get("resource"), dict):
                    problems.add(f"{w}.resource", "an entry without a resource", "required")
                    continue
                if e["resource"].get("resourceType") == "Bundle":
                    take(e["resource"], f"{w}.resource")
                else:
                    out.append((f"{w}.resource", str(e.get("fullUrl") or ""), e["resource"]))
        else:
            out.append((where, "", obj))

    if isinstance(payload, dict) and "resourceType" not in payload:  # a prefetch object
        for key, value in payload.items():
            if value is not None:
                take(value, f"prefetch.{key}")
    else:
        take(payload, "Bundle")
    return out


def bundle_time(payload: Any) -> datetime | None:
    """The latest `timestamp` of the Bundles given (a Bundle, or a prefetch's Bundles)."""
    found = []
    items = (
        payload.values()
        if isinstance(payload, dict) and "resourceType" not in payload
        else [payload]
    )
    for b in items:
        if isinstance(b, dict) and b.get("resourceType") == "Bundle" and b.get("timestamp"):
            t, _ = _time(b["timestamp"], "Bundle.timestamp", _Problems())
            if t is not None:
                found.append(t)
    return max(found) if found else None


def ingest(payload: Any, now: datetime | None = None) -> Ingested:
    """The rows of one patient's Bundle (or prefetch); `FhirInputError` when anything is wrong.
    `now` (default: the Bundle's timestamp, else the current UTC time) bounds every date."""
    problems = _Problems()
    if not isinstance(payload, dict):
        raise FhirInputError([FhirIssue("structure", "Bundle", "a JSON object is expected")])
    if "resourceType" in payload and payload.get("resourceType") != "Bundle":
        raise FhirInputError(
            [
                FhirIssue(
                    "invalid",
                    "resourceType",
                    f"expected a Bundle, got {str(payload.get('resourceType'))[:40]!r}",
                )
            ]
        )
    items = resources_of(payload, problems)
    now = now or bundle_time(payload) or datetime.now(UTC).replace(tzinfo=None)
    seen: dict[tuple[str, str], str] = {}
    valid: list[tuple[str, str, Resource]] = []
    for where, url, res in items:
        if not _validate(res, where, problems):
            continue
        key = (res["resourceType"], str(res.get("id")))
        if res.get("id") is not None and key in seen:
            problems.add(
                where, f"duplicate id {key[0]}/{key[1]} (also at {seen[key]})", "duplicate"
            )
            continue
        seen[key] = where
        valid.append((where, url, res))
    problems.raise_any()
    return _Mapper(valid, now, problems).run()


class _Mapper:
    def __init__(
        self, items: list[tuple[str, str, Resource]], now: datetime, problems: _Problems
    ) -> None:
        self.items = items
        self.now = now
        self.p = problems
        self.refs = _Refs([(u, r) for _, u, r in items])
        self.where = {id(r): w for w, _, r in items}
        self.ignored: Counter[str] = Counter()
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in _COLUMNS}
        self.notes: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ helpers
    def w(self, r: Resource, path: str = "") -> str:
        base = f"{self.where[id(r)]} ({r['resourceType']}/{r.get('id', '?')})"
        return f"{base}.{path}" if path else base

    def when(self, r: Resource, path: str, value: Any) -> tuple[datetime | None, bool]:
        t, date_only = _time(value, self.w(r, path), self.p)
        if t is not None and t > self.now:
            self.p.add(
                self.w(r, path),
                f"{value} is after the Bundle's time {self.now:%Y-%m-%dT%H:%M:%S}Z (a date in the "
                "future)",
                "business-rule",
            )
            return None, date_only
        return t, date_only

    def admission_of(self, r: Resource, ref: Any, path: str, required: bool = True) -> int | None:
        enc = self.refs.get(ref, "Encounter")
        if enc is not None and id(enc) in self.sub_parent:
            enc = self.sub_parent[id(enc)]
        if enc is None or id(enc) not in self.hadm:
            if required:
                self.p.add(
                    self.w(r, path),
                    "must reference an admission Encounter of the Bundle",
                    "required",
                )
            return None
        return self.hadm[id(enc)]

    def of(self, rtype: str) -> list[Resource]:
        return [r for _, _, r in self.items if r["resourceType"] == rtype]

    def ids(self, resources: list[Resource], system: str) -> list[int]:
        """MIMIC ids from identifiers when every resource has one, else 1, 2, ... in order."""
        given = [_ident(r, system) for r in resources]
        if all(g is not None and g.isdigit() for g in given):
            return [int(g) for g in given]  # type: ignore[arg-type]
        return list(range(1, len(resources) + 1))

    # ------------------------------------------------------------------ the mapping
    def run(self) -> Ingested:
        patients = self.of("Patient")
        if len(patients) != 1:
            self.p.add(
                "Bundle",
                "exactly one Patient is required"
                + (f" (found {len(patients)})" if patients else ""),
                "required",
            )
            self.p.raise_any()
        self.patient = patients[0]
        self.subject = self.ids(patients, C.SUBJECT_ID)[0]
        self._patient()
        self._encounters()
        self.p.raise_any()
        for r in self.of("Condition"):
            self._code(r, "diagnoses_icd", procedure=False)
        for r in self.of("Procedure"):
            self._code(r, "procedures_icd", procedure=True)
        for r in self.of("Observation"):
            self._observation(r)
        for r in self.of("MedicationRequest"):
            self._medication(r)
        for r in self.of("DocumentReference"):
            self._note(r)
        read = {
            "Patient",
            "Encounter",
            "Condition",
            "Procedure",
            "Observation",
            "MedicationRequest",
            "DocumentReference",
            "Medication",
        }
        for _, _, r in self.items:
            if r["resourceType"] not in read:
                self.ignored[f"{r['resourceType']} (not read by the models)"] += 1
        self.p.raise_any()
        tables = {name: _Table(rows, _COLUMNS[name]) for name, rows in self.rows.items()}
        notes = pd.DataFrame(self.notes, columns=list(_NOTE_COLUMNS))
        return Ingested(
            tables=tables,
            notes=notes,
            now=self.now,
            encounters={r.get("id", ""): h for r, h in self.adm_list},
            icu_stays={r.get("id", ""): i for r, i in self.icu_list},
            ignored=dict(self.ignored),
        )

    def _subject_ok(self, r: Resource, path: str = "subject") -> bool:
        if self.refs.get(r.get(path), "Patient") is not self.patient:
            self.p.add(self.w(r, path), "must reference the Bundle's Patient", "invalid")
            return False
        return True

    def _patient(self) -> None:
        r = self.patient
        sex = {"male": "M", "female": "F"}.get(str(r.get("gender", "")))
        dob = None
        exact = _ext(r.get("_birthDate") or {}, C.BIRTH_TIME, "valueDateTime")
        if exact is not None:
            dob, _ = self.when(r, "_birthDate.extension", exact)
        elif r.get("birthDate") is not None:
            dob, _ = self.when(r, "birthDate", r["birthDate"])
        self.rows["patients"].append({"subject_id": self.subject, "gender": sex, "dob": dob})

    def _kind(self, r: Resource) -> str | None:
        for t in r.get("type") or []:
            k = _code_in(t, C.ENCOUNTER_KIND)
            if k:
                return k
        return None if r.get("partOf") else "admission"

    def _encounters(self) -> None:
        encs = self.of("Encounter")
        self.hadm: dict[int, int] = {}
        self.sub_parent: dict[int, Resource] = {}
        adms = [r for r in encs if self._kind(r) == "admission"]
        for r in adms:
            self._subject_ok(r)
        if not adms:
            self.p.add("Bundle", "an admission Encounter is required", "required")
            return
        starts = {}
        for r in adms:
            start, _ = self.when(r, "period.start", (r.get("period") or {}).get("start"))
            starts[id(r)] = start
        adms.sort(key=lambda r: (starts[id(r)] or datetime.min, str(r.get("id"))))
        self.adm_list = list(zip(adms, self.ids(adms, C.HADM_ID), strict=True))
        for r, h in self.adm_list:
            self.hadm[id(r)] = h
            self._admission(r, h, starts[id(r)])
        subs = [r for r in encs if self._kind(r) in ("icu-stay", "service")]
        for r in subs:
            parent = self.refs.get(r.get("partOf"), "Encounter")
            if parent is None or id(parent) not in self.hadm:
                self.p.add(
                    self.w(r, "partOf"),
                    "must reference an admission Encounter of the Bundle",
                    "required",
                )
            else:
                self.sub_parent[id(r)] = parent
        icus = [r for r in subs if self._kind(r) == "icu-stay" and id(r) in self.sub_parent]
        self.icu_list = list(zip(icus, self.ids(icus, C.ICUSTAY_ID), strict=True))
        for r, i in self.icu_list:
            self._icu(r, i)
        for r in subs:
            if self._kind(r) == "service" and id(r) in self.sub_parent:
                self._service(r)
        for r in encs:
            if self._kind(r) not in ("admission", "icu-stay", "service"):
                self.ignored["Encounter (partOf an admission, not an ICU stay or a service)"] += 1

    def _admission(self, r: Resource, hadm: int, start: datetime | None) -> None:
        period = r.get("period") or {}
        end = None
        if period.get("end") is not None:
            end, _ = self.when(r, "period.end", period["end"])
        atype = next(
            (
                _code_in(t, C.ADMISSION_TYPE)
                for t in r.get("type") or []
                if _code_in(t, C.ADMISSION_TYPE)
            ),
            None,
        )
        if atype is None:
            prio = _code_in(r.get("priority"), C.ACT_PRIORITY)
            atype = C.FROM_PRIORITY.get(prio or "")
        if atype is None:
            self.p.add(
                self.w(r, "priority"),
                f"the admission type is required: priority EM, UR or EL (system {C.ACT_PRIORITY})",
                "required",
            )
        hosp = r.get("hospitalization") or {}
        disposition = hosp.get("dischargeDisposition")
        expired = _code_in(disposition, C.DISCHARGE_DISPOSITION) == "exp"
        self.rows["admissions"].append(
            {
                "subject_id": self.subject,
                "hadm_id": hadm,
                "admittime": start,
                "dischtime": end,
                "deathtime": None,
                "admission_type": atype,
                "admission_location": _text(hosp.get("admitSource")),
                "discharge_location": (disposition or {}).get("text"),
                "insurance": _ext(r, C.EXT_INSURANCE, "valueString"),
                "ethnicity": _ext(r, C.EXT_ETHNICITY, "valueString"),
                "hospital_expire_flag": int(expired),
            }
        )
        for n, loc in enumerate(r.get("location") or []):
            path = f"location[{n}]"
            t, _ = self.when(r, f"{path}.period.start", (loc.get("period") or {}).get("start"))
            event = _ext(loc, C.EXT_TRANSFER_EVENT, "valueCode") or (
                "admit" if n == 0 else "transfer"
            )
            unit = ((loc.get("location") or {}).get("identifier") or {}).get("value")
            self.rows["transfers"].append(
                {
                    "subject_id": self.subject,
                    "hadm_id": hadm,
                    "eventtype": event,
                    "curr_careunit": unit,
                    "intime": t,
                }
            )

    def _icu(self, r: Resource, icustay: int) -> None:
        period = r.get("period") or {}
        start, _ = self.when(r, "period.start", period.get("start"))
        end = None
        if period.get("end") is not None:
            end, _ = self.when(r, "period.end", period["end"])
        unit = None
        for loc in r.get("location") or []:
            unit = ((loc.get("location") or {}).get("identifier") or {}).get("value")
            break
        self.rows["icustays"].append(
            {
                "subject_id": self.subject,
                "hadm_id": self.hadm[id(self.sub_parent[id(r)])],
                "icustay_id": icustay,
                "first_careunit": unit,
                "intime": start,
                "outtime": end,
            }
        )

    def _service(self, r: Resource) -> None:
        start, _ = self.when(r, "period.start", (r.get("period") or {}).get("start"))
        service = _code_in(r.get("serviceType"), C.SERVICE) or _text(r.get("serviceType"))
        self.rows["services"].append(
            {
                "subject_id": self.subject,
                "hadm_id": self.hadm[id(self.sub_parent[id(r)])],
                "transfertime": start,
                "curr_service": service,
            }
        )

    def _code(self, r: Resource, table: str, procedure: bool) -> None:
        if not procedure:
            cats = {c.get("code") for cat in r.get("category") or [] for c in _codings(cat)}
            if cats and "encounter-diagnosis" not in cats:
                self.ignored["Condition (not an encounter diagnosis)"] += 1
                return
        if (
            r.get("verificationStatus")
            and _code_in(
                r["verificationStatus"],
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            )
            == "entered-in-error"
        ):
            self.ignored["entered in error"] += 1
            return
        if r.get("status") in _IGNORED_STATUS:
            self.ignored["entered in error"] += 1
            return
        self._subject_ok(r)
        hadm = self.admission_of(r, r.get("encounter"), "encounter")
        code = _code_in(r.get("code"), C.ICD9_CM)
        if code is None:
            systems = sorted({str(c.get("system")) for c in _codings(r.get("code"))})
            hint = (
                "ICD-10-CM codes are not mapped: the models were trained on ICD-9-CM (MIMIC-III); "
                "add the ICD-9-CM coding"
                if C.ICD10_CM in systems
                else f"code systems {systems or ['none']} are not read; an ICD-9-CM coding "
                f"({C.ICD9_CM}) is required"
            )
            self.p.add(self.w(r, "code.coding"), hint, "code-invalid")
            return
        plain = C.icd9_undotted(code, procedure)
        if plain is None:
            self.p.add(
                self.w(r, "code.coding"),
                f"{code!r} is not an ICD-9-CM {'procedure' if procedure else 'diagnosis'} code",
                "code-invalid",
            )
            return
        if hadm is not None:
            self.rows[table].append(
                {"subject_id": self.subject, "hadm_id": hadm, "icd9_code": plain}
            )

    def _observation(self, r: Resource) -> None:
        if r.get("status") not in _OBSERVATION_STATUS:
            self.p.add(
                self.w(r, "status"), f"{str(r.get('status'))[:40]!r} is not an Observation status"
            )
            return
        if r.get("status") in _IGNORED_STATUS:
            self.ignored["entered in error"] += 1
            return
        cats = {c.get("code") for cat in r.get("category") or [] for c in _codings(cat)}
        if cats and not cats & {"laboratory", "vital-signs"}:
            self.ignored["Observation (not a lab or a vital sign)"] += 1
            return
        code = r.get("code") or {}
        item = _code_in(code, C.LAB_ITEM)
        chart = _code_in(code, C.CHART_ITEM)
        loinc = _code_in(code, C.LOINC)
        if loinc is not None and not C.loinc_valid(loinc):
            self.p.add(
                self.w(r, "code.coding"),
                f"unknown LOINC code {loinc!r} (wrong form or check digit)",
                "code-invalid",
            )
            return
        if item is not None and item.isdigit() and int(item) in _ITEM_UNIT:
            return self._lab(r, int(item))
        if chart is not None and chart.isdigit() and int(chart) in C.CHART_ITEMS:
            return self._vital(r, int(chart))
        if loinc is None:
            systems = sorted({str(c.get("system")) for c in _codings(code)})
            self.p.add(
                self.w(r, "code.coding"),
                f"code systems {systems or ['none']} are not read: a LOINC coding ({C.LOINC}) is required",
                "code-invalid",
            )
            return
        if loinc in C.LOINC_LAB:
            return self._lab(r, C.LOINC_LAB[loinc])
        if loinc in C.LOINC_VITAL_ITEM:
            return self._vital(r, C.LOINC_VITAL_ITEM[loinc])
        if loinc == C.ORGANISM_LOINC:
            return self._culture(r)
        self.ignored["Observation (a LOINC code the models do not read)"] += 1

    def _quantity(self, r: Resource, expected: str) -> tuple[bool, float | None]:
        q = r.get("valueQuantity")
        if q is None:
            return True, None
        if not C.unit_accepted(expected, q.get("unit"), q.get("code")):
            self.p.add(
                self.w(r, "valueQuantity.unit"),
                f"unit {q.get('unit') or q.get('code')!r} is not {expected} (UCUM {C.UCUM_OF.get(expected, expected)}); values are not converted",
                "business-rule",
            )
            return False, None
        v = q.get("value")
        return True, None if v is None else float(v)

    def _lab(self, r: Resource, itemid: int) -> None:
        self._subject_ok(r)
        t, date_only = self.when(r, "effectiveDateTime", r.get("effectiveDateTime"))
        if date_only:
            self.p.add(
                self.w(r, "effectiveDateTime"), "a lab needs the time it was taken, not a date only"
            )
        ok, value = self._quantity(r, _ITEM_UNIT[itemid])
        if not ok or t is None or date_only:
            return
        flags = {c.get("code") for i in r.get("interpretation") or [] for c in _codings(i)}
        self.rows["labevents"].append(
            {
                "subject_id": self.subject,
                "itemid": itemid,
                "charttime": t,
                "valuenum": value,
                "abnormal": bool(flags & _ABNORMAL),
            }
        )

    def _vital(self, r: Resource, itemid: int) -> None:
        self._subject_ok(r)
        stem = C.CHART_ITEMS[itemid]
        t, date_only = self.when(r, "effectiveDateTime", r.get("effectiveDateTime"))
        if date_only:
            self.p.add(
                self.w(r, "effectiveDateTime"), "a vital sign needs its time, not a date only"
            )
        ok, value = self._quantity(r, VITALS[stem][2])
        if not ok or t is None or date_only:
            return
        if value is None:
            self.ignored["vital sign without a value"] += 1
            return
        self.rows["chartevents"].append(
            {"subject_id": self.subject, "itemid": itemid, "charttime": t, "valuenum": value}
        )

    def _culture(self, r: Resource) -> None:
        self._subject_ok(r)
        hadm = self.admission_of(r, r.get("encounter"), "encounter")
        t, date_only = self.when(r, "effectiveDateTime", r.get("effectiveDateTime"))
        organism = _text(r.get("valueCodeableConcept"))
        if organism is None:
            self.ignored["culture without an organism"] += 1
            return
        if hadm is None or t is None:
            return
        self.rows["microbiologyevents"].append(
            {
                "subject_id": self.subject,
                "hadm_id": hadm,
                "chartdate": _day(t),
                "charttime": None if date_only else t,
                "org_name": organism,
            }
        )

    def _medication(self, r: Resource) -> None:
        if r.get("status") in _IGNORED_STATUS:
            self.ignored["entered in error"] += 1
            return
        self._subject_ok(r)
        hadm = self.admission_of(r, r.get("encounter"), "encounter")
        drug = _text(r.get("medicationCodeableConcept"))
        if drug is None and r.get("medicationReference") is not None:
            med = self.refs.get(r["medicationReference"], "Medication")
            drug = _text((med or {}).get("code"))
        if drug is None:
            self.p.add(
                self.w(r, "medicationCodeableConcept"),
                "the drug is not named (text, display or a Medication of the Bundle)",
                "required",
            )
            return
        t, _ = self.when(r, "authoredOn", r.get("authoredOn"))
        if hadm is not None and t is not None:
            self.rows["prescriptions"].append(
                {"subject_id": self.subject, "hadm_id": hadm, "startdate": t, "drug": drug}
            )

    def _note(self, r: Resource) -> None:
        if r.get("status") == "entered-in-error":
            self.ignored["entered in error"] += 1
            return
        att = next((c.get("attachment") or {} for c in r.get("content") or []), {})
        if not str(att.get("contentType", "")).startswith("text/plain") or not att.get("data"):
            self.ignored["DocumentReference (not inline plain text)"] += 1
            return
        try:
            text = base64.b64decode(att["data"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            self.p.add(self.w(r, "content[0].attachment.data"), "not base64 of UTF-8 text")
            return
        self._subject_ok(r)
        ctx = r.get("context") or {}
        hadm = self.admission_of(
            r, next(iter(ctx.get("encounter") or []), None), "context.encounter"
        )
        t, date_only = self.when(r, "context.period.start", (ctx.get("period") or {}).get("start"))
        note_id = _ident(r, C.NOTE_ID)
        if hadm is None or t is None:
            return
        self.notes.append(
            {
                "note_id": int(note_id) if note_id and note_id.isdigit() else len(self.notes) + 1,
                "subject_id": self.subject,
                "hadm_id": hadm,
                "chartdate": _day(t),
                "charttime": None if date_only else t,
                "category": _text(r.get("type")) or "",
                "description": r.get("description"),
                "text": text,
            }
        )


_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("subject_id", "gender", "dob"),
    "admissions": (
        "subject_id",
        "hadm_id",
        "admittime",
        "dischtime",
        "deathtime",
        "admission_type",
        "admission_location",
        "discharge_location",
        "insurance",
        "ethnicity",
        "hospital_expire_flag",
    ),
    "icustays": ("subject_id", "hadm_id", "icustay_id", "first_careunit", "intime", "outtime"),
    "diagnoses_icd": ("subject_id", "hadm_id", "icd9_code"),
    "procedures_icd": ("subject_id", "hadm_id", "icd9_code"),
    "prescriptions": ("subject_id", "hadm_id", "startdate", "drug"),
    "labevents": ("subject_id", "itemid", "charttime", "valuenum", "abnormal"),
    "microbiologyevents": ("subject_id", "hadm_id", "chartdate", "charttime", "org_name"),
    "transfers": ("subject_id", "hadm_id", "eventtype", "curr_careunit", "intime"),
    "services": ("subject_id", "hadm_id", "transfertime", "curr_service"),
    "chartevents": ("subject_id", "itemid", "charttime", "valuenum"),
}
_NOTE_COLUMNS = (
    "note_id",
    "subject_id",
    "hadm_id",
    "chartdate",
    "charttime",
    "category",
    "description",
    "text",
)
