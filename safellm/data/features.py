"""Feature SQL per task, over staged MIMIC tables and a cohort table, leakage-safe by construction.

Every event-level join carries `event_time < prediction_time`. Date-only columns (PRESCRIPTIONS
startdate, MICROBIOLOGYEVENTS chartdate without charttime) count as known only at the end of their
day. ICD codes carry no time: they are coded at discharge, so the current admission's codes are used
only for readmission (predicted at discharge); the other tasks see earlier admissions' codes only.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from safellm.data.catalogue import (
    ELIX_FLAGS,
    ELIXHAUSER,
    FEATURES,
    ICU_UNITS,
    LABS,
    MED_CLASSES,
    VITAL_VALID,
    VITALS,
    Feature,
    features_for,
)
from safellm.data.cohorts import cohort_select
from safellm.tasks import TASKS

__all__ = [
    "FEATURES",
    "aggregate_labs",
    "assemble",
    "compute_groups",
    "features_for",
    "pivot_labs",
    "prejoin",
    "vital_stem_sql",
]

_H = 3600
_DAY = 86400


def _ids(values: tuple[str, ...] | tuple[int, ...]) -> str:
    return "(" + ", ".join(repr(v) for v in values) + ")"


def _demographics(c: str) -> str:
    return f"""
    SELECT u.unit_id,
      -- least() skips NULLs: guard it so that a missing DOB stays missing
      CASE WHEN p.dob IS NULL THEN NULL
           ELSE least((epoch(a.admittime) - epoch(p.dob)) / (365.25 * {_DAY}), 90.0) END AS age,
      upper(p.gender) AS sex,
      CASE
        WHEN a.ethnicity IS NULL THEN 'UNKNOWN'
        WHEN upper(a.ethnicity) LIKE 'WHITE%' THEN 'WHITE'
        WHEN upper(a.ethnicity) LIKE 'BLACK%' THEN 'BLACK'
        WHEN upper(a.ethnicity) LIKE 'HISPANIC%' OR upper(a.ethnicity) = 'SOUTH AMERICAN'
          THEN 'HISPANIC'
        WHEN upper(a.ethnicity) LIKE 'ASIAN%' THEN 'ASIAN'
        WHEN upper(a.ethnicity) IN ('UNKNOWN/NOT SPECIFIED', 'UNABLE TO OBTAIN',
                                    'PATIENT DECLINED TO ANSWER') THEN 'UNKNOWN'
        ELSE 'OTHER' END AS ethnicity_group,
      a.insurance, upper(a.admission_type) AS admission_type, a.admission_location,
      a.discharge_location,
      (epoch(a.dischtime) - epoch(a.admittime)) / {_DAY}.0 AS los_so_far_days
    FROM {c} u JOIN admissions a ON a.hadm_id = u.hadm_id
    LEFT JOIN patients p ON p.subject_id = u.subject_id
    """


def _utilisation(c: str) -> str:
    return f"""
    SELECT u.unit_id,
      count(b.hadm_id) FILTER (WHERE b.admittime >= u.admittime - INTERVAL 6 MONTH)
        AS prior_adm_6m,
      count(b.hadm_id) FILTER (WHERE b.admittime >= u.admittime - INTERVAL 12 MONTH)
        AS prior_adm_12m,
      min((epoch(u.admittime) - epoch(b.dischtime)) / {_DAY}.0)
        FILTER (WHERE b.dischtime <= u.admittime) AS days_since_last_discharge
    FROM {c} u LEFT JOIN admissions b
      ON b.subject_id = u.subject_id AND b.admittime < u.admittime AND b.hadm_id <> u.hadm_id
    GROUP BY u.unit_id
    """


def _icu(c: str) -> str:
    return f"""
    SELECT u.unit_id,
      count(i.icustay_id) FILTER (WHERE i.hadm_id <> u.hadm_id AND i.intime < u.admittime)
        AS prior_icu_stays,
      count(i.icustay_id) FILTER (WHERE i.hadm_id = u.hadm_id
                                   AND i.intime < u.prediction_time) AS icu_stays_so_far,
      any_value((epoch(i.intime) - epoch(u.admittime)) / {_H}.0)
        FILTER (WHERE i.icustay_id = u.icustay_id) AS hours_before_icu,
      any_value(i.first_careunit) FILTER (WHERE i.icustay_id = u.icustay_id)
        AS icu_first_careunit
    FROM {c} u LEFT JOIN icustays i
      ON i.subject_id = u.subject_id AND i.intime < u.prediction_time
    GROUP BY u.unit_id
    """


ELIX_PREFIXES = pa.table(
    {
        "prefix": [p for _, (_, _, prefixes) in ELIXHAUSER.items() for p in prefixes],
        "grp": [g for g, (_, _, prefixes) in ELIXHAUSER.items() for _ in prefixes],
        "weight": [w for _, (_, w, prefixes) in ELIXHAUSER.items() for _ in prefixes],
    }
)


def _elix_code_sql(prefixes: str) -> str:
    """Each distinct ICD-9 code of DIAGNOSES_ICD with its Elixhauser group and weight."""
    return f"""
        SELECT DISTINCT c.icd9_code, p.grp, p.weight
        FROM (SELECT DISTINCT icd9_code FROM diagnoses_icd WHERE icd9_code IS NOT NULL) c
        JOIN {prefixes} p ON starts_with(c.icd9_code, p.prefix)
        """


def _elix_map(con: duckdb.DuckDBPyConnection) -> None:
    # an Arrow table, not a VALUES list: parsing hundreds of literals costs more than the query
    # on one patient's codes (the FHIR route runs this per request)
    con.register("elix_prefixes", ELIX_PREFIXES)
    con.execute("CREATE OR REPLACE TEMP TABLE elix_prefix AS SELECT * FROM elix_prefixes")
    con.unregister("elix_prefixes")
    con.execute(f"CREATE OR REPLACE TEMP TABLE elix_code AS {_elix_code_sql('elix_prefix')}")


def _comorbidity(c: str, task: str) -> str:
    # Which admissions' codes a unit may see: its own only when predicting at discharge.
    own = "OR b.hadm_id = u.hadm_id" if TASKS[task].at_discharge else ""
    flags = ",\n      ".join(
        f"coalesce(max(CAST(g.grp = '{g}' AS INTEGER)), 0) AS elix_{g}" for g in ELIX_FLAGS
    )
    return f"""
    WITH seen AS (
      SELECT DISTINCT u.unit_id, b.hadm_id
      FROM {c} u JOIN admissions b ON b.subject_id = u.subject_id
        AND ((b.admittime < u.admittime AND b.hadm_id <> u.hadm_id
              AND b.dischtime < u.prediction_time) {own})
    ), groups AS (
      SELECT DISTINCT s.unit_id, e.grp, e.weight
      FROM seen s JOIN diagnoses_icd d ON d.hadm_id = s.hadm_id
      JOIN elix_code e ON e.icd9_code = d.icd9_code
    )
    SELECT u.unit_id,
      count(g.grp) AS elix_count,
      coalesce(sum(g.weight), 0) AS elix_vw_score,
      {flags}
    FROM {c} u LEFT JOIN groups g ON g.unit_id = u.unit_id
    GROUP BY u.unit_id
    """


def _code_counts(c: str) -> str:
    return f"""
    SELECT u.unit_id,
      (SELECT count(*) FROM diagnoses_icd d WHERE d.hadm_id = u.hadm_id) AS n_diag_current,
      (SELECT count(*) FROM procedures_icd p WHERE p.hadm_id = u.hadm_id) AS n_proc_current,
      (SELECT count(*) FROM diagnoses_icd d JOIN admissions b ON b.hadm_id = d.hadm_id
        WHERE b.subject_id = u.subject_id AND b.admittime < u.admittime
          AND b.hadm_id <> u.hadm_id AND b.dischtime < u.prediction_time) AS n_diag_prior
    FROM {c} u
    """


def _med_class_sql() -> str:
    """Each distinct (lower-case) drug name of PRESCRIPTIONS with its class flags, so the name
    patterns run once per name rather than once per prescription."""
    flags = []
    for cls, (_, patterns, _) in MED_CLASSES.items():
        cond = " OR ".join(f"drug_lc LIKE '%{p}%'" for p in patterns)
        if cls == "anticoagulant":  # line flushes are not anticoagulation
            cond = f"({cond}) AND drug_lc NOT LIKE '%flush%'"
        flags.append(f"CAST(({cond}) AS INTEGER) AS med_{cls}")
    return (
        f"SELECT drug_lc, {', '.join(flags)} "
        f"FROM (SELECT DISTINCT lower(drug) AS drug_lc FROM prescriptions WHERE drug IS NOT NULL)"
    )


def _med_class_map(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table `med_class` (see `_med_class_sql`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE med_class AS {_med_class_sql()}")


def _medications(c: str) -> str:
    cases = [f"coalesce(max(k.med_{cls}), 0) AS med_{cls}" for cls in MED_CLASSES]
    high_risk = [f"med_{cls}" for cls, (_, _, alert) in MED_CLASSES.items() if alert]
    return f"""
    WITH m AS (
      SELECT u.unit_id, lower(p.drug) AS drug_lc
      FROM {c} u JOIN prescriptions p ON p.hadm_id = u.hadm_id
      WHERE p.startdate + INTERVAL 1 DAY <= u.prediction_time AND p.drug IS NOT NULL
    ), agg AS (
      SELECT u.unit_id, count(DISTINCT m.drug_lc) AS n_meds,
        {", ".join(cases)}
      FROM {c} u LEFT JOIN m ON m.unit_id = u.unit_id
        LEFT JOIN med_class k ON k.drug_lc = m.drug_lc
      GROUP BY u.unit_id
    )
    SELECT *, {" + ".join(high_risk)} AS n_high_risk_med_classes FROM agg
    """


def time_value_key(t: str, v: str) -> str:
    """SQL for one HUGEINT that orders rows like the pair (`t`, `v`): the TIMESTAMP `t` in the high
    64 bits, the DOUBLE `v` in the low 64 (its IEEE bits, made order-preserving: negative numbers
    inverted, positive ones with the sign bit set). `arg_max(x, key)` over it is the value at the
    latest time, equal times broken towards the larger value, and runs about twice as fast as
    `arg_max` over the struct `(t, v)`."""
    bits = f"(({v})::BIT)::UBIGINT"
    low = (
        f"CASE WHEN {bits} >= 9223372036854775808 THEN 18446744073709551615 - {bits} "
        f"ELSE {bits} + 9223372036854775808 END"
    )
    return f"(epoch_us({t})::HUGEINT * 18446744073709551616 + ({low})::HUGEINT)"


def _lab_agg_sql(units: str, source: str) -> str:
    """Per (task, unit, item): last, min, max and abnormal count of the labs of `units` (rows of
    task number, unit_id, subject_id, admittime, prediction_time) in `source`."""
    return f"""
        SELECT u.task, u.unit_id, e.itemid,
          arg_max(e.valuenum, {time_value_key("e.charttime", "e.valuenum")})
            FILTER (WHERE e.valuenum IS NOT NULL) AS vlast,
          min(e.valuenum) AS vmin, max(e.valuenum) AS vmax,
          count(*) FILTER (WHERE e.abnormal) AS nab
        FROM ({units}) u JOIN {source} e ON e.subject_id = u.subject_id
        WHERE e.charttime >= u.admittime - INTERVAL 12 HOUR AND e.charttime < u.prediction_time
        GROUP BY u.task, u.unit_id, e.itemid
        """


def _lab_units(cohorts: dict[str, str]) -> str:
    return " UNION ALL ".join(  # tasks by number: a small integer groups faster than a string
        f"SELECT {i}::UTINYINT AS task, unit_id, subject_id, admittime, prediction_time FROM {c}"
        for i, c in enumerate(cohorts.values())
    )


def aggregate_labs(
    con: duckdb.DuckDBPyConnection, cohorts: dict[str, str], source: str = "labevents"
) -> None:
    """Table `lab_agg`: the labs of every task's units, per (task, unit, item), in ONE pass over
    `source` (the staged table, or a subquery reading the file directly).

    Labs count from 12 h before admission to the prediction time. "last" is the value at the latest
    chart time; equal times break towards the larger value.
    """
    con.execute(f"CREATE OR REPLACE TABLE lab_agg AS {_lab_agg_sql(_lab_units(cohorts), source)}")


def _lab_wide_sql(agg: str) -> str:
    """`agg` (see `_lab_agg_sql`) pivoted: one row per (task, unit), columns per item and
    statistic (`"<itemid>_last"`, `_min`, `_max`, `_nab`). A GROUP BY with one filtered
    aggregate per column: the same table as DuckDB's PIVOT, in about two thirds of its time."""
    cols = [
        f'any_value({stat}) FILTER (WHERE itemid = {itemid}) AS "{itemid}_{name}"'
        for itemid, _, _ in LABS.values()
        for stat, name in (("vlast", "last"), ("vmin", "min"), ("vmax", "max"), ("nab", "nab"))
    ]
    return f"SELECT task, unit_id, {', '.join(cols)} FROM {agg} GROUP BY task, unit_id"


def _labs_group_sql(c: str, wide: str, task_number: int) -> str:
    """The lab feature group of cohort `c` (task number `task_number`) from `wide`: units without
    labs get NULLs and zero counts."""
    cols = []
    for stem, (itemid, _, _) in LABS.items():
        cols += [
            f'w."{itemid}_last" AS lab_{stem}_last',
            f'w."{itemid}_min" AS lab_{stem}_min',
            f'w."{itemid}_max" AS lab_{stem}_max',
            f'coalesce(w."{itemid}_nab", 0) AS lab_{stem}_n_abnormal',
        ]
    return (
        f"SELECT u.unit_id, {', '.join(cols)} "
        f"FROM {c} u LEFT JOIN {wide} w ON w.unit_id = u.unit_id AND w.task = {task_number}"
    )


def pivot_labs(con: duckdb.DuckDBPyConnection, cohorts: dict[str, str]) -> None:
    """Temp tables `fg_<task>_labs` (one column per item and statistic) from `lab_agg`: one
    PIVOT for all tasks, then each task's units (units without labs get NULLs and zero counts)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE lab_wide AS {_lab_wide_sql('lab_agg')}")
    for i, (task, c) in enumerate(cohorts.items()):  # task numbers as in `aggregate_labs`
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE fg_{task}_labs AS {_labs_group_sql(c, 'lab_wide', i)}"
        )
    con.execute("DROP TABLE lab_agg")
    con.execute("DROP TABLE lab_wide")


def _micro_transfers_services(c: str) -> str:
    icu = _ids(ICU_UNITS)
    return f"""
    SELECT u.unit_id,
      (SELECT count(DISTINCT (coalesce(m.charttime, m.chartdate), m.org_name))
         FROM microbiologyevents m
        WHERE m.hadm_id = u.hadm_id AND m.org_name IS NOT NULL
          -- an organism is reported days after the specimen: count it 72 h after the specimen
          -- time (a date alone: its day's end), not when the specimen was taken
          AND coalesce(m.charttime, m.chartdate + INTERVAL 1 DAY) + INTERVAL 72 HOUR
              <= u.prediction_time
      ) AS n_positive_cultures,
      (SELECT count(*) FROM transfers t
        WHERE t.hadm_id = u.hadm_id AND lower(t.eventtype) = 'transfer'
          AND t.intime < u.prediction_time) AS n_transfers,
      (SELECT count(*) FROM transfers t
        WHERE t.hadm_id = u.hadm_id AND lower(t.eventtype) IN ('admit', 'transfer')
          AND upper(t.curr_careunit) IN {icu} AND t.intime < u.prediction_time
      ) AS n_icu_transfers,
      (SELECT count(*) FROM services s
        WHERE s.hadm_id = u.hadm_id AND s.transfertime < u.prediction_time) AS n_services,
      (SELECT arg_max(s.curr_service, (s.transfertime, s.curr_service)) FROM services s
        WHERE s.hadm_id = u.hadm_id AND s.transfertime < u.prediction_time
          AND s.curr_service IS NOT NULL) AS last_service
    FROM {c} u
    """


def vital_stem_sql(e: str = "e") -> str:
    """SQL: the vital sign (stem) of CHARTEVENTS row `e`, NULL when its value is not plausible
    (`VITAL_VALID`) or its item is not a vital sign's."""
    cases = " ".join(
        f"WHEN {e}.itemid IN {_ids(items)} AND {e}.valuenum BETWEEN {VITAL_VALID[stem][0]} "
        f"AND {VITAL_VALID[stem][1]} THEN '{stem}'"
        for stem, (items, _, _) in VITALS.items()
    )
    return f"CASE {cases} END"


def _vitals(c: str) -> str:
    """Last plausible value of each vital sign in the 24 h before the prediction time (same tie
    rule as the labs)."""
    cols = ", ".join(
        f"any_value(v.vlast) FILTER (WHERE v.vital = '{stem}') AS vital_{stem}_last"
        for stem in VITALS
    )
    return f"""
    WITH v AS (
      SELECT u.unit_id, {vital_stem_sql()} AS vital,
        arg_max(e.valuenum, {time_value_key("e.charttime", "e.valuenum")}) AS vlast
      FROM {c} u JOIN chartevents e ON e.subject_id = u.subject_id
      WHERE e.charttime >= u.prediction_time - INTERVAL 24 HOUR
        AND e.charttime < u.prediction_time AND vital IS NOT NULL
      GROUP BY ALL
    )
    SELECT u.unit_id, {cols}
    FROM {c} u LEFT JOIN v ON v.unit_id = u.unit_id
    GROUP BY u.unit_id
    """


def _groups(task: str, c: str) -> dict[str, str]:
    return {
        "demo": _demographics(c),
        "util": _utilisation(c),
        "icu": _icu(c),
        "elix": _comorbidity(c, task),
        "codes": _code_counts(c),
        "meds": _medications(c),
        "events": _micro_transfers_services(c),
        "vitals": _vitals(c),
    }


def compute_groups(con: duckdb.DuckDBPyConnection, task: str, cohort_table: str) -> None:
    """Temp tables `fg_<task>_<group>` for every feature group but the labs (which need
    LABEVENTS: see `aggregate_labs`)."""
    _elix_map(con)
    _med_class_map(con)
    for name, sql in _groups(task, cohort_table).items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE fg_{task}_{name} AS {sql}")


def prejoin(con: duckdb.DuckDBPyConnection, task: str, cohort_table: str) -> None:
    """Temp table `pre_<task>`: the cohort joined with every feature group but the labs."""
    c = cohort_table
    names = list(_groups(task, c))
    joins = "\n".join(f"LEFT JOIN fg_{task}_{n} USING (unit_id)" for n in names)
    con.execute(f"CREATE OR REPLACE TEMP TABLE pre_{task} AS SELECT * FROM {c} {joins}")
    for n in names:
        con.execute(f"DROP TABLE fg_{task}_{n}")


def assemble(
    con: duckdb.DuckDBPyConnection,
    task: str,
    cohort_table: str,
    absent_tables: tuple[str, ...] = (),
) -> tuple[str, list[Feature]]:
    """Table `features_<task>`: cohort columns + the task's features, from `pre_<task>` and the
    lab group (see `prejoin` and `pivot_labs`).

    Returns the table name and the features it holds (those whose source tables are present).
    """
    desc = con.execute(f"SELECT * FROM {cohort_table} LIMIT 0").description or []
    keys = ", ".join(f"p.{d[0]}" for d in desc)
    kept = [f for f in features_for(task) if not set(f.sources) & set(absent_tables)]
    cols = ", ".join(f.name for f in kept)
    table = f"features_{task}"
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT {keys}, {cols} FROM pre_{task} p "
        f"LEFT JOIN fg_{task}_labs USING (unit_id) ORDER BY p.unit_id"
    )
    con.execute(f"DROP TABLE pre_{task}")
    con.execute(f"DROP TABLE fg_{task}_labs")
    return table, kept


def unit_query(task: str, features: list[Feature]) -> str:
    """ONE statement with the same cohort, feature group, lab and assembly SQL as the build
    (`cohort_select`, `compute_groups`, `prejoin`, `aggregate_labs`, `pivot_labs`, `assemble`),
    each a CTE rather than a table: the cohort's columns and `features` of every unit, ordered by
    `unit_id` (the columns of the build's task table). For a few patients' rows (the FHIR route)
    the build's twenty statements cost more to plan and materialise than to run. Needs the
    Elixhauser prefixes registered as `elix_prefixes` (`ELIX_PREFIXES`)."""
    c = "cohort"
    groups = _groups(task, c)
    ctes = {
        c: cohort_select(task),
        "elix_code": _elix_code_sql("elix_prefixes"),
        "med_class": _med_class_sql(),
        **{f"fg_{name}": sql for name, sql in groups.items()},
        "lab_agg": _lab_agg_sql(_lab_units({task: c}), "labevents"),
        "lab_wide": _lab_wide_sql("lab_agg"),
        "fg_labs": _labs_group_sql(c, "lab_wide", 0),
    }
    joins = " ".join(f"LEFT JOIN fg_{n} USING (unit_id)" for n in [*groups, "labs"])
    cols = ", ".join(f.name for f in features)
    with_ = ",\n".join(f"{name} AS ({sql})" for name, sql in ctes.items())
    return f"WITH {with_}\nSELECT {c}.*, {cols} FROM {c} {joins} ORDER BY {c}.unit_id"
