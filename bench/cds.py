"""Benchmark: CDS Hooks cards from a real `safellm serve` (fake model) over real HTTP, the
patient's record sent as prefetch, against `/v1/predict` (a lookup in risks computed at start-up)
in the same run.

    .venv/bin/python bench/cds.py [--home DIR] [--patients 40] [--reps 200]

The first call for each admission's record (its resources not validated before) is timed apart
from the calls that follow (each resource found valid is remembered by its digest: an EHR sends
the same record at every hook). For `--patients` admissions of the home's data (exported with `safellm fhir export`'s code and
answered as an EHR's prefetch), `--reps` calls each of: `encounter-discharge` to
safellm-readmission, `patient-view` to safellm-icu-mortality (admissions with an ICU stay of
24 h), and `/v1/predict`. Prints p50 / p95 (ms), the prefetch sizes, and the card/predict
ratio. Target: card p95 <= 500 ms on this machine. The home (default $SAFELLM_HOME, else
.safellm) must hold built data and the two tasks' models (`safellm demo`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
from api import AUTH, server
from common import ROOT, parser, summary

sys.path.insert(0, str(ROOT / "tests" / "interop"))
from prefetch import prefetch_of

from safellm.fhir.export import iter_bundles
from safellm.risk.dataset import load_task


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("SAFELLM_HOME", ".safellm")))
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--port", type=int, default=8761)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    data = args.home / "data"
    readm = load_task(data, "readmission").frame
    icu = load_task(data, "icu_mortality").frame
    hadms = sorted(set(readm["hadm_id"]) & set(icu["hadm_id"]))[: args.patients]
    started = time.perf_counter()
    cases = []
    for b in iter_bundles(data, [int(h) for h in hadms]):
        hadm = int(b["id"].removeprefix("safellm-adm-"))
        patient = next(
            e["resource"]["id"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"
        )
        cases.append((hadm, patient, prefetch_of(b)))
    sizes = [len(json.dumps(p)) / 1e3 for _, _, p in cases]
    print(
        f"{len(cases)} admissions exported as prefetch in {time.perf_counter() - started:.1f} s; "
        f"prefetch {min(sizes):.0f}-{max(sizes):.0f} kB (median {sorted(sizes)[len(sizes) // 2]:.0f})"
    )
    (ROOT / ".safellm" / "bench").mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{args.port}"
    results: dict[str, tuple[float, float]] = {}
    with (
        server(args.home, "fake", args.port),
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as c,
    ):

        def card(sid: str, hook: str, i: int) -> float:
            hadm, patient, prefetch = cases[i % len(cases)]
            body = {
                "hook": hook,
                "hookInstance": f"bench-{i}",
                "context": {
                    "userId": "Practitioner/b",
                    "patientId": patient,
                    "encounterId": f"adm-{hadm}",
                },
                "prefetch": prefetch,
            }
            t = time.perf_counter()
            r = c.post(f"/cds-services/{sid}", json=body)
            ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise SystemExit(f"{sid} {hadm}: {r.status_code} {r.text[:300]}")
            return ms

        def predict(i: int) -> float:
            hadm = cases[i % len(cases)][0]
            t = time.perf_counter()
            r = c.post("/v1/predict", json={"task": "readmission", "hadm_id": hadm})
            ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise SystemExit(f"predict {hadm}: {r.status_code} {r.text[:300]}")
            return ms

        # first sight of each record: its resources are validated (then remembered as valid)
        cold = [card("safellm-readmission", "encounter-discharge", i) for i in range(len(cases))]
        results["encounter-discharge, record not seen before"] = summary(cold)
        runs = {
            "encounter-discharge -> readmission card, seen before": lambda i: card(
                "safellm-readmission", "encounter-discharge", i
            ),
            "patient-view -> ICU mortality card, seen before": lambda i: card(
                "safellm-icu-mortality", "patient-view", i
            ),
            "/v1/predict (baseline)": predict,
        }
        for name, fn in runs.items():
            results[name] = summary([fn(i) for i in range(args.reps)])
    base = results["/v1/predict (baseline)"][0]
    print(
        f"{len(cases)} first calls, then {args.reps} calls each, fake model, one client, "
        "real HTTP (ms)"
    )
    for name, (p50, p95) in results.items():
        print(f"{name:52} p50 {p50:7.1f}  p95 {p95:7.1f}  ({p50 / base:5.1f}x predict)")
    for n, (_, p95) in results.items():
        if "predict" not in n:
            verdict = "meets" if p95 <= 500 else "misses"
            print(f"{n}: p95 {p95:.0f} ms {verdict} the 500 ms target")
    if args.json:
        args.json.write_text(
            json.dumps({k: {"p50": v[0], "p95": v[1]} for k, v in results.items()}, indent=2)
        )


if __name__ == "__main__":
    main()
