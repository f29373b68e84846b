"""ETL benchmark: `safellm data synth`, `safellm data build` (DuckDB) and the pandas reference.

    .venv/bin/python bench/etl.py [--patients 46000] [--seed 0] [--workdir .safellm/bench]
                                  [--chartevents none|vitals|full] [--ingest]
                                  [--skip-pandas] [--pandas-patients M]

Generates a synthetic hospital of N patients (reused when already in the workdir), then times each
step in its own subprocess, so that the peak memory is per step: wall-clock seconds and peak
resident set size (the kernel's max RSS of the process and its reaped children, as `/usr/bin/time -v`
reports it, together with the peak of the whole process tree's RSS sampled every 0.1 s, the
peak of what the step keeps in /dev/shm (NOTEEVENTS inflated whole, the pieces `safellm data
ingest` writes, a chunk the build hands to DuckDB as a file): that is memory too, and the peak of
DuckDB's spill files; the memory target counts all three).
`--chartevents full` gives the hospital a CHARTEVENTS of the real table's size (~7,000 rows per
patient: ~330 M rows for 46,000 patients); the pandas reference then reads it in chunks, as a
careful pandas user would. `--ingest` also times `safellm data ingest` (the one-time conversion
to Parquet) and the build from the ingested folder, reported apart. The build
runs twice: as users run it (with the notes and event-sequence exports) and without them, which is
exactly the pandas reference's work (cohorts + features) and gives the ratio. Checks that
the DuckDB build and the pandas reference give the same cohort report (and the same tables), prints
a table with the pandas/DuckDB ratios and the targets (build peak memory < 4 GiB; build >= 5x faster
than pandas), and writes the figures to `<workdir>/etl_bench.json`.

The pandas run is stopped when it exceeds `--pandas-timeout` seconds or `--pandas-max-rss-gb` of
RSS (so it cannot take the machine down); `--pandas-patients M` also runs pandas (and the build,
for the ratio) on a smaller hospital of M patients.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import etl_pandas
import pandas as pd
from common import BENCH, ROOT, parser

MiB = 1024 * 1024
TARGET_BUILD_RSS_MIB = 4096  # 4 GiB
TARGET_SPEEDUP = 5.0


@dataclass
class Run:
    step: str
    patients: int
    wall_s: float | None = None
    peak_rss_mib: float | None = None  # kernel max RSS (largest single process of the tree)
    tree_rss_mib: float | None = None  # sampled peak of the summed RSS of the process tree
    shm_mib: float | None = None  # sampled peak of the step's files in shared memory (/dev/shm)
    spill_mib: float | None = None  # sampled peak of DuckDB's spill files (disk, temp_directory)
    status: str = "ok"  # ok | failed (rc N) | timeout | over memory cap | reused | skipped
    log: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "reused")


# ------------------------------------------------------------------------------------ measuring
def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of `pid` and all its descendants, from /proc."""
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        todo += _children(p)
    return total


def _shm_used() -> int:
    """Bytes used in /dev/shm (a large table is inflated there: memory, though not RSS)."""
    try:
        return shutil.disk_usage("/dev/shm").used
    except OSError:
        return 0


def _spill_used(workdir: Path) -> int:
    """Bytes of DuckDB spill files under the build/ingest staging folders of `workdir`."""
    total = 0
    for staging in workdir.glob(".*.tmp-*"):
        for name in ("spill", ".spill"):
            for dirpath, _dirs, files in os.walk(staging / name):
                for f in files:
                    try:
                        total += os.stat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        continue
    return total


def measure(
    step: str,
    patients: int,
    cmd: list[str],
    log: Path,
    *,
    timeout_s: float | None = None,
    max_rss_mib: float | None = None,
    env: dict[str, str] | None = None,
    spill_root: Path | None = None,
) -> Run:
    """Run `cmd` in a fresh process (its own process group); wall time and peak memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    run = Run(step, patients, log=str(log))
    tree_peak = shm_peak = spill_peak = 0
    shm_base = _shm_used()
    started = time.perf_counter()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        killed = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss(proc.pid))
            shm_peak = max(shm_peak, _shm_used() - shm_base)
            if spill_root is not None:
                spill_peak = max(spill_peak, _spill_used(spill_root))
            elapsed = time.perf_counter() - started
            if not killed and timeout_s is not None and elapsed > timeout_s:
                killed = "timeout"
            if not killed and max_rss_mib is not None and tree_peak > max_rss_mib * MiB:
                killed = "over memory cap"
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    run.wall_s = time.perf_counter() - started
    run.peak_rss_mib = usage.ru_maxrss / 1024  # Linux: KiB
    run.tree_rss_mib = max(tree_peak / MiB, run.peak_rss_mib)
    run.shm_mib = shm_peak / MiB
    run.spill_mib = spill_peak / MiB
    if killed:
        run.status = killed
    elif proc.returncode != 0:
        run.status = f"failed (rc {proc.returncode})"
    return run


def _safellm() -> list[str]:
    exe = Path(sys.executable).with_name("safellm")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from safellm.cli import main; main()"]


def _env(workdir: Path) -> dict[str, str]:
    # Keep the CLI's settings and caches inside the workdir; no colours or progress escapes.
    return {**os.environ, "SAFELLM_HOME": str(workdir / "home"), "NO_COLOR": "1", "TERM": "dumb"}


# ----------------------------------------------------------------------------------------- steps
def _tag(patients: int, chart: str) -> str:
    return f"n{patients}" + ("" if chart == "none" else f"-chart{chart}")


def synth(workdir: Path, patients: int, seed: int, chart: str = "none") -> tuple[Path, Run]:
    """The synthetic hospital of `patients` in the workdir, generated (and timed) if absent."""
    tag = _tag(patients, chart)
    hospital = workdir / f"hospital-{tag}-s{seed}"
    record = workdir / f"synth-{tag}-s{seed}.json"
    if (hospital / "ADMISSIONS.csv.gz").exists() and record.exists():
        run = Run(**json.loads(record.read_text()))
        run.status = "reused"
        return hospital, run
    shutil.rmtree(hospital, ignore_errors=True)
    cmd = [*_safellm(), "data", "synth", "--patients", str(patients), "--seed", str(seed)]
    cmd += ["--out", str(hospital), "--chartevents", chart]
    run = measure("synth", patients, cmd, workdir / "logs" / f"synth-{tag}.log", env=_env(workdir))
    if not run.ok:
        raise SystemExit(f"synth failed ({run.status}); see {run.log}")
    run.extra["size_mb"] = round(sum(f.stat().st_size for f in hospital.iterdir()) / 1e6, 1)
    chart_file = hospital / "CHARTEVENTS.csv.gz"
    if chart_file.exists():
        run.extra["chartevents_mb"] = round(chart_file.stat().st_size / 1e6, 1)
    record.write_text(json.dumps(asdict(run), indent=2) + "\n")
    return hospital, run


def build(
    workdir: Path,
    hospital: Path,
    patients: int,
    notes: bool = True,
    tag: str | None = None,
    step: str | None = None,
) -> tuple[Path, Run]:
    """`safellm data build`; without notes (and event sequences) it does exactly the pandas
    reference's work."""
    tag = tag or f"n{patients}"
    step = step or ("build" if notes else "build -notes")
    out = workdir / (f"build-{tag}" if notes else f"build-nonotes-{tag}")
    cmd = [*_safellm(), "data", "build", "--mimic-dir", str(hospital), "--out", str(out), "--json"]
    cmd += [] if notes else ["--no-notes", "--no-events"]
    log = workdir / "logs" / f"{out.name}.log"
    return out, measure(step, patients, cmd, log, env=_env(workdir), spill_root=workdir)


def ingest(workdir: Path, hospital: Path, patients: int, tag: str) -> tuple[Path, Run]:
    """`safellm data ingest` (the one-time Parquet conversion)."""
    out = workdir / f"ingested-{tag}"
    cmd = [*_safellm(), "data", "ingest", "--mimic-dir", str(hospital), "--out", str(out)]
    log = workdir / "logs" / f"ingest-{tag}.log"
    run = measure("ingest", patients, cmd, log, env=_env(workdir), spill_root=workdir)
    if run.ok:
        run.extra["size_mb"] = round(
            sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 1
        )
    return out, run


def pandas_ref(
    workdir: Path,
    hospital: Path,
    patients: int,
    timeout_s: float,
    max_rss_gb: float,
    tag: str | None = None,
) -> tuple[Path, Run]:
    tag = tag or f"n{patients}"
    out = workdir / f"pandas-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(BENCH / "etl_pandas.py"), str(hospital), "--out", str(out)]
    run = measure(
        "pandas",
        patients,
        cmd,
        workdir / "logs" / f"pandas-{tag}.log",
        timeout_s=timeout_s,
        max_rss_mib=max_rss_gb * 1024,
        env=_env(workdir),
    )
    return out, run


def compare(build_out: Path, pandas_out: Path) -> dict[str, object]:
    """Same cohort report? Same tables (unit by unit, floats within 1e-9)?"""
    a = json.loads((build_out / "cohort_report.json").read_text())
    b = json.loads((pandas_out / "cohort_report.json").read_text())
    diffs: dict[str, list[str]] = {}
    for task in etl_pandas.TASKS:
        sql = pd.read_parquet(build_out / f"{task}.parquet")
        ref = pd.read_parquet(pandas_out / f"{task}.parquet")
        d = etl_pandas.mismatches(sql, ref, etl_pandas.UNIT_KEYS[task])
        if d:
            diffs[task] = d
    return {"same_report": a == b, "report": a, "pandas_report": b, "table_diffs": diffs}


# ---------------------------------------------------------------------------------------- output
def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def table(runs: list[Run]) -> str:
    head = (
        f"{'step':<30} {'patients':>9} {'wall s':>9} {'peak RSS MiB':>13} {'tree RSS MiB':>13} "
        f"{'shm MiB':>8} {'spill MiB':>9}  status"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(
            f"{'safellm data ' + r.step if r.step != 'pandas' else 'pandas reference':<30} "
            f"{r.patients:>9,} {_fmt(r.wall_s):>9} {_fmt(r.peak_rss_mib, 0):>13} "
            f"{_fmt(r.tree_rss_mib, 0):>13} {_fmt(r.shm_mib, 0):>8} {_fmt(r.spill_mib, 0):>9}  "
            f"{r.status}"
        )
    return "\n".join(lines)


def ratios(b: Run, p: Run) -> dict[str, float | None]:
    if not (b.ok and p.ok and b.wall_s and b.peak_rss_mib and p.wall_s and p.peak_rss_mib):
        return {"wall": None, "memory": None}
    return {"wall": p.wall_s / b.wall_s, "memory": p.peak_rss_mib / b.peak_rss_mib}


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--patients", type=int, default=46000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".safellm" / "bench")
    ap.add_argument(
        "--chartevents",
        choices=("none", "vitals", "full"),
        default="none",
        help="CHARTEVENTS of the synthetic hospital [none]; full: the real table's size",
    )
    ap.add_argument(
        "--ingest",
        action="store_true",
        help="also time `safellm data ingest` and the build from the Parquet tables",
    )
    ap.add_argument("--skip-pandas", action="store_true", help="time synth and build only")
    ap.add_argument(
        "--pandas-patients",
        type=int,
        default=None,
        help="also run pandas (and the build) on a hospital of M patients",
    )
    ap.add_argument("--pandas-timeout", type=float, default=1800.0, help="seconds [1800]")
    ap.add_argument(
        "--pandas-max-rss-gb", type=float, default=18.0, help="stop pandas above this RSS [18]"
    )
    args = ap.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {mem_gib:.1f} GiB RAM"
    print(f"ETL benchmark on {machine}; workdir {workdir}", flush=True)

    sizes = [args.patients]
    if args.pandas_patients and args.pandas_patients != args.patients:
        sizes.append(args.pandas_patients)
    runs: list[Run] = []
    results: dict[str, object] = {"machine": machine, "sizes": {}}
    chart = args.chartevents
    results["chartevents"] = chart
    for n in sizes:
        tag = _tag(n, chart)
        print(f"\n[{n:,} patients, CHARTEVENTS {chart}] synth ...", flush=True)
        hospital, s = synth(workdir, n, args.seed, chart)
        print(f"  synth: {s.status}, {_fmt(s.wall_s)} s, {_fmt(s.peak_rss_mib, 0)} MiB", flush=True)
        print(f"[{n:,} patients] build (DuckDB, with notes and events) ...", flush=True)
        _, full = build(workdir, hospital, n, tag=tag)
        print(f"  build: {full.status}, {_fmt(full.wall_s)} s, {_fmt(full.peak_rss_mib, 0)} MiB")
        print(f"[{n:,} patients] build (DuckDB, cohorts + features only) ...", flush=True)
        build_out, b = build(workdir, hospital, n, notes=False, tag=tag)
        print(f"  build: {b.status}, {_fmt(b.wall_s)} s, {_fmt(b.peak_rss_mib, 0)} MiB", flush=True)
        ing = bp = None
        if args.ingest:
            print(f"[{n:,} patients] ingest to Parquet (once) ...", flush=True)
            ingested, ing = ingest(workdir, hospital, n, tag)
            print(f"  ingest: {ing.status}, {_fmt(ing.wall_s)} s", flush=True)
            if ing.ok:
                print(f"[{n:,} patients] build from Parquet (cohorts + features only) ...")
                bp_out, bp = build(
                    workdir, ingested, n, notes=False, tag=f"{tag}-parquet", step="build -notes pq"
                )
                print(f"  build from Parquet: {bp.status}, {_fmt(bp.wall_s)} s", flush=True)
        p = Run("pandas", n, status="skipped")
        check: dict[str, object] = {}
        check_pq: dict[str, object] = {}
        if not args.skip_pandas:
            print(f"[{n:,} patients] pandas reference ...", flush=True)
            pandas_out, p = pandas_ref(
                workdir, hospital, n, args.pandas_timeout, args.pandas_max_rss_gb, tag
            )
            print(
                f"  pandas: {p.status}, {_fmt(p.wall_s)} s, {_fmt(p.peak_rss_mib, 0)} MiB",
                flush=True,
            )
            if b.ok and p.ok:
                check = compare(build_out, pandas_out)
            if bp is not None and bp.ok and p.ok:
                check_pq = compare(bp_out, pandas_out)
        runs += [s, full, b] + [r for r in (ing, bp) if r is not None] + [p]
        results["sizes"][str(n)] = {  # type: ignore[index]
            "synth": asdict(s),
            "build_with_notes": asdict(full),
            "build": asdict(b),
            "ingest": None if ing is None else asdict(ing),
            "build_from_parquet": None if bp is None else asdict(bp),
            "pandas": asdict(p),
            "ratio_pandas_over_duckdb": ratios(b, p),
            "ratio_pandas_over_parquet_build": None if bp is None else ratios(bp, p),
            "check": check,
            "check_parquet": check_pq,
        }

    print("\n" + table(runs))
    print()
    for n in sizes:
        r = results["sizes"][str(n)]  # type: ignore[index]
        b, p = r["build"], r["pandas"]
        rt = r["ratio_pandas_over_duckdb"]
        print(f"{n:,} patients, CHARTEVENTS {chart}:")
        if rt["wall"] is not None:
            print(
                f"  pandas / DuckDB (cohorts + features): wall x{rt['wall']:.1f}, "
                f"peak memory x{rt['memory']:.1f}"
            )
        else:
            print(f"  pandas / DuckDB: n/a (pandas {p['status']})")
        for label, chk in (("", r["check"]), (" (build from Parquet)", r["check_parquet"])):
            if chk:
                same_tables = not chk["table_diffs"]
                print(
                    f"  same cohort_report{label}: {'yes' if chk['same_report'] else 'NO'}; "
                    f"same tables: {'yes' if same_tables else 'NO'}"
                )
                for task, d in chk["table_diffs"].items():
                    for line in d[:5]:
                        print(f"    {task}: {line}")
        if r["ingest"] is not None:
            ing, bp, rp = r["ingest"], r["build_from_parquet"], r["ratio_pandas_over_parquet_build"]
            print(
                f"  ingest to Parquet (once): {_fmt(ing['wall_s'])} s, "
                f"{ing['extra'].get('size_mb', '-')} MB; build from Parquet "
                f"{_fmt(bp and bp['wall_s'])} s"
                + (f" (pandas / it: x{rp['wall']:.1f})" if rp and rp["wall"] else "")
            )
        # memory of a step: its process tree's peak RSS plus what it put in shared memory and
        # DuckDB's spill files
        steps = [b, r["build_with_notes"], r["synth"]] + [
            x for x in (r["ingest"], r["build_from_parquet"]) if x is not None
        ]
        peaks = [
            None
            if x["tree_rss_mib"] is None
            else x["tree_rss_mib"] + (x.get("shm_mib") or 0) + (x.get("spill_mib") or 0)
            for x in steps
        ]
        peak = None if None in peaks else max(peaks)
        mem_ok = peak is not None and peak < TARGET_BUILD_RSS_MIB
        print(
            f"  target peak memory of every step (RSS + shared memory + spill) < 4 GiB: "
            f"{'MET' if mem_ok else 'MISSED'} ({_fmt(peak, 0)} MiB)"
        )
        if rt["wall"] is not None:
            fast = rt["wall"] >= TARGET_SPEEDUP
            print(
                f"  target build >= {TARGET_SPEEDUP:.0f}x faster than pandas: "
                f"{'MET' if fast else 'MISSED'} (x{rt['wall']:.1f})"
            )
        else:
            print(f"  target build >= {TARGET_SPEEDUP:.0f}x faster than pandas: not measured")
    out = workdir / ("etl_bench.json" if chart == "none" else f"etl_bench_chart{chart}.json")
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
