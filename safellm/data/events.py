"""Each unit's timestamped events before its prediction time, for the temporal model.

`events_<task>.parquet` (written by `safellm data build`) has one row per event:

    unit_id       the unit of `<task>.parquet`
    hours_before  prediction time minus event time, in hours (> 0, or 0 for what is known at the
                  prediction time itself; leakage-safe like the features)
    token         what happened: `lab:<stem>`, `vital:<stem>`, `med:<class>`, `dx:<Elixhauser group>`, `icu:in`,
                  `icu:out`, `adm`, `age`; for readmission also `dxnow:<group>`, `dis`
    value         the lab or vital-sign value, the age in years (`age`)
    detail        the ICU care unit (`icu:*`), the admission type (`adm`), the discharge
                  destination (`dis`)

Labs of the panel from 12 h before admission; vital signs (CHARTEVENTS, plausible values only) as
the last value of each sign in each 4-hour block counted back from the prediction time (hourly
charting would crowd the labs out); medication classes as in the features, known at the
end of their start day; Elixhauser groups of earlier admissions, known at their discharge; ICU
admissions and discharges; the admission itself, with the age at admission. Readmission is predicted
at discharge, so (as for its features) the stay's own coded groups and the discharge destination are
events at the prediction time. The newest `MAX_STAY_EVENTS` of the stay are kept per unit, plus
every group coded before it (once, at its latest discharge), the age and the discharge events.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from safellm.data.catalogue import LABS, MED_CLASSES
from safellm.data.features import time_value_key, vital_stem_sql
from safellm.data.mimic import _sql_path
from safellm.errors import ArtifactError

MAX_STAY_EVENTS = 256
VITAL_BLOCK_HOURS = 4
EVENT_COLUMNS = ("unit_id", "hours_before", "token", "value", "detail")


def events_file(data_dir: Path, task: str) -> Path:
    return Path(data_dir) / f"events_{task}.parquet"


def _maps(con: duckdb.DuckDBPyConnection) -> None:
    """Temp tables `lab_stem(itemid, stem)` and `med_class_long(drug_lc, cls)` (the latter from the
    `med_class` table the medication features made)."""
    rows = ", ".join(f"({itemid}, '{stem}')" for stem, (itemid, _, _) in LABS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE lab_stem(itemid, stem) AS VALUES {rows}")
    long = " UNION ALL ".join(
        f"SELECT drug_lc, '{cls}' AS cls FROM med_class WHERE med_{cls} = 1" for cls in MED_CLASSES
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE med_class_long AS {long}")


def export_events(
    con: duckdb.DuckDBPyConnection, cohort: str, out: Path, *, at_discharge: bool = False
) -> None:
    """Write the events of every unit of `cohort` to `out` (Parquet). Needs the staged tables and
    the temp tables `med_class` and `elix_code` of the feature pass. `at_discharge`: the prediction
    time is the discharge, so the stay's coded groups and the destination are events at it."""
    _maps(con)
    c = cohort
    vital = vital_stem_sql("e")
    stay = f"""
      SELECT u.unit_id, e.charttime AS t, 'lab:' || m.stem AS token, e.valuenum AS value,
             NULL::VARCHAR AS detail
      FROM {c} u JOIN labevents e ON e.subject_id = u.subject_id
      JOIN lab_stem m ON m.itemid = e.itemid
      WHERE e.charttime >= u.admittime - INTERVAL 12 HOUR AND e.charttime < u.prediction_time
        AND e.valuenum IS NOT NULL
      UNION ALL
      SELECT u.unit_id, max(e.charttime), 'vital:' || {vital},
             arg_max(e.valuenum, {time_value_key("e.charttime", "e.valuenum")}), NULL
      FROM {c} u JOIN chartevents e ON e.subject_id = u.subject_id
      WHERE e.charttime >= u.admittime - INTERVAL 12 HOUR AND e.charttime < u.prediction_time
        AND {vital} IS NOT NULL
      GROUP BY u.unit_id, {vital},
        floor((epoch(u.prediction_time) - epoch(e.charttime)) / {VITAL_BLOCK_HOURS * 3600})
      UNION ALL
      SELECT DISTINCT u.unit_id, p.startdate + INTERVAL 1 DAY, 'med:' || k.cls, NULL, NULL
      FROM {c} u JOIN prescriptions p ON p.hadm_id = u.hadm_id
      JOIN med_class_long k ON k.drug_lc = lower(p.drug)
      WHERE p.startdate + INTERVAL 1 DAY <= u.prediction_time
      UNION ALL
      SELECT u.unit_id, i.intime, 'icu:in', NULL, upper(i.first_careunit)
      FROM {c} u JOIN icustays i ON i.subject_id = u.subject_id
      WHERE i.intime < u.prediction_time AND i.intime >= u.admittime - INTERVAL 12 HOUR
      UNION ALL
      SELECT u.unit_id, i.outtime, 'icu:out', NULL, upper(i.first_careunit)
      FROM {c} u JOIN icustays i ON i.subject_id = u.subject_id
      WHERE i.outtime < u.prediction_time AND i.intime >= u.admittime - INTERVAL 12 HOUR
      UNION ALL
      SELECT u.unit_id, u.admittime, 'adm', NULL, upper(a.admission_type)
      FROM {c} u JOIN admissions a ON a.hadm_id = u.hadm_id
      WHERE u.admittime < u.prediction_time
    """
    before = f"""
      SELECT u.unit_id, max(b.dischtime) AS t, 'dx:' || g.grp AS token, NULL::DOUBLE AS value,
             NULL::VARCHAR AS detail
      FROM {c} u JOIN admissions b ON b.subject_id = u.subject_id
        AND b.admittime < u.admittime AND b.hadm_id <> u.hadm_id
        AND b.dischtime < u.prediction_time
      JOIN diagnoses_icd d ON d.hadm_id = b.hadm_id
      JOIN elix_code g ON g.icd9_code = d.icd9_code
      GROUP BY u.unit_id, g.grp
      UNION ALL
      SELECT u.unit_id, u.admittime, 'age',
             round(least((epoch(u.admittime) - epoch(p.dob)) / (365.25 * 86400), 90.0), 1), NULL
      FROM {c} u JOIN patients p ON p.subject_id = u.subject_id
      WHERE p.dob IS NOT NULL AND u.admittime < u.prediction_time
    """
    if at_discharge:  # readmission: the stay's codes and destination are known at discharge
        before += f"""
      UNION ALL
      SELECT DISTINCT u.unit_id, u.prediction_time, 'dxnow:' || g.grp, NULL, NULL
      FROM {c} u JOIN diagnoses_icd d ON d.hadm_id = u.hadm_id
      JOIN elix_code g ON g.icd9_code = d.icd9_code
      UNION ALL
      SELECT u.unit_id, u.prediction_time, 'dis', NULL, upper(a.discharge_location)
      FROM {c} u JOIN admissions a ON a.hadm_id = u.hadm_id
      WHERE a.discharge_location IS NOT NULL
    """
    con.execute(
        f"""
        COPY (
          WITH kept AS (
            SELECT * FROM ({stay})
            QUALIFY row_number() OVER (PARTITION BY unit_id ORDER BY t DESC, token, value)
                    <= {MAX_STAY_EVENTS}
            UNION ALL {before}
          )
          SELECT k.unit_id,
                 (epoch(u.prediction_time) - epoch(k.t)) / 3600.0 AS hours_before,
                 k.token, k.value, k.detail
          FROM kept k JOIN {c} u ON u.unit_id = k.unit_id
          WHERE k.t IS NOT NULL
          ORDER BY k.unit_id, hours_before DESC, k.token, k.value
        ) TO '{_sql_path(out)}' (FORMAT parquet, COMPRESSION zstd)
        """
    )


def load_events(data_dir: Path, task: str) -> pd.DataFrame:
    """The events of a built task, oldest first within each unit."""
    path = events_file(data_dir, task)
    if not path.exists():
        raise ArtifactError(
            f"{path} not found: the temporal model needs the event sequences that `safellm data "
            f"build` writes since this version; rebuild the data (safellm data build ...)"
        )
    frame = pd.read_parquet(path)
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ArtifactError(f"{path}: columns {', '.join(missing)} missing; rebuild the data")
    return frame
