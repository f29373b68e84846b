"""The rows of an ingested Bundle through the same cohort rules and feature SQL as a MIMIC folder.

The Bundle's rows are loaded into an in-memory DuckDB database under the staged tables' names and
types; `build_cohort`, the feature groups, the lab aggregation and `assemble` then run unchanged,
so a patient's features do not depend on the route the data took. An ICU stay still open at the
Bundle's time counts as lasting until then (its cohort rule asks for 24 h in the unit).
"""

from __future__ import annotations

import threading
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from safellm.data import mimic
from safellm.data.catalogue import Feature
from safellm.data.features import ELIX_PREFIXES, unit_query
from safellm.errors import FhirInputError, FhirIssue
from safellm.fhir.ingest import Ingested
from safellm.risk.dataset import coerce
from safellm.tasks import TASKS, task_spec

_STAGED_TYPES = {
    "labevents": {"itemid": "INTEGER", "abnormal": "BOOLEAN"},
    "chartevents": {"itemid": "INTEGER"},
}
_ARROW = {
    "TIMESTAMP": pa.timestamp("us"),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
}


def _types(name: str) -> dict[str, str]:
    spec = mimic.TABLES[name.upper()].columns
    return {**spec, **_STAGED_TYPES.get(name, {})}


def load(con: duckdb.DuckDBPyConnection, ing: Ingested) -> None:
    """The Bundle's rows as Arrow tables registered under the staged MIMIC tables' names and types
    (no per-value conversion in Python, no copy into DuckDB). An ICU stay still open at the
    Bundle's time gets that time as its end."""
    now = ing.now
    for name, rows in ing.tables.items():
        types = _types(name)
        schema = pa.schema([(c, _ARROW[types[c]]) for c in rows.columns])
        data = list(rows)
        if name == "icustays":
            data = [
                {**r, "outtime": now}
                if r["outtime"] is None and r["intime"] is not None and r["intime"] <= now
                else r
                for r in data
            ]
        con.register(name, pa.Table.from_pylist(data, schema=schema))
    con.register("elix_prefixes", ELIX_PREFIXES)


# One in-memory database for the process; each Bundle gets a cursor of its own (a connection of
# that database: about 0.3 ms, where opening a database costs 30-40 ms). Nothing is written to it:
# a cursor's registered tables are its own and go when it is closed.
_DB = duckdb.connect(":memory:", config={"threads": 1})
_DB_LOCK = threading.Lock()


class Rows:
    """An ingested Bundle loaded once, then any task's units and features (`of`)."""

    def __init__(self, ing: Ingested) -> None:
        self.ing = ing
        with _DB_LOCK:
            self.con = _DB.cursor()
        load(self.con, ing)

    def of(self, task: str, features: list[Feature]) -> pd.DataFrame:
        """Every unit of `task` in the Bundle with its features (`features`: the model's
        inputs), typed as the model reads them: the build's cohort and feature SQL as one
        statement (`unit_query`)."""
        task_spec(task)
        frame = self.con.execute(unit_query(task, features)).df()
        return coerce(frame, features)

    def close(self) -> None:
        self.con.close()


def task_rows(ing: Ingested, task: str, features: list[Feature]) -> pd.DataFrame:
    """`Rows(ing).of(task, features)` on a connection of its own."""
    rows = Rows(ing)
    try:
        return rows.of(task, features)
    finally:
        rows.close()


def _why_not(ing: Ingested, task: str, hadm: int, icustay: int | None) -> str:
    adm = ing.tables["admissions"].frame()
    a = adm[adm["hadm_id"] == hadm].iloc[0]
    if task == "icu_mortality":
        if icustay is None:
            return "the admission has no ICU stay (an Encounter partOf it, of kind icu-stay)"
        return "the ICU stay has not lasted 24 h (the model predicts at 24 h in the unit)"
    if str(a["admission_type"]).upper() == "NEWBORN":
        return "newborn admissions are outside the cohort"
    if a["dischtime"] is None or pd.isna(a["dischtime"]):
        return (
            "the Encounter has no period.end: readmission risk is predicted at discharge"
            if task == "readmission"
            else "the Encounter has no period.end (the cohort needs stays of at least 24 h)"
        )
    if task == "readmission" and int(a["hospital_expire_flag"]) == 1:
        return "the patient died in hospital (dischargeDisposition exp)"
    return "the stay is shorter than 24 h"


def unit_row(
    ing: Ingested,
    task: str,
    features: list[Feature],
    encounter: str | None = None,
) -> pd.Series:
    """The feature row of the unit asked for: the admission (or ICU stay) Encounter with FHIR id
    `encounter`, else the latest admission; for an ICU task given an admission, its latest ICU
    stay in the cohort. `FhirInputError` (business-rule) when that unit is outside the cohort."""
    spec = TASKS[task]
    rows = task_rows(ing, task, features)
    adm = ing.tables["admissions"].frame()
    icu = ing.tables["icustays"].frame()
    stay: int | None = None
    if encounter is not None and encounter in ing.icu_stays:
        stay = ing.icu_stays[encounter]
        hadm = int(icu.loc[icu["icustay_id"] == stay, "hadm_id"].iloc[0])
    elif encounter is not None:
        if encounter not in ing.encounters:
            raise FhirInputError(
                [
                    FhirIssue(
                        "not-found",
                        "context.encounterId",
                        f"Encounter/{encounter} is not in the data sent",
                    )
                ]
            )
        hadm = ing.encounters[encounter]
    else:
        hadm = int(adm.sort_values("admittime").iloc[-1]["hadm_id"])
    if spec.unit == "icustay_id":
        mine = rows[rows["hadm_id"] == hadm] if stay is None else rows[rows["icustay_id"] == stay]
        if stay is None and not mine.empty:
            mine = mine.sort_values("prediction_time").tail(1)
        if stay is None:
            stays = icu[icu["hadm_id"] == hadm]
            stay = (
                int(stays.sort_values("intime").iloc[-1]["icustay_id"]) if not stays.empty else None
            )
    else:
        mine = rows[rows["hadm_id"] == hadm]
    if mine.empty:
        raise FhirInputError(
            [
                FhirIssue(
                    "business-rule",
                    "Encounter",
                    f"not in the {task} cohort: {_why_not(ing, task, hadm, stay)}",
                )
            ]
        )
    return mine.iloc[0]


def prediction_time(row: pd.Series) -> datetime:
    return pd.Timestamp(row["prediction_time"]).to_pydatetime()
