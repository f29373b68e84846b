"""Load and fault benchmark of the API: a real `safellm serve` (a separate process) on loopback,
driven by real HTTP clients (httpx, one per client thread).

    .venv/bin/python bench/api.py [--part throughput|kill|local|drop|flood|all] [--home DIR]

- `throughput` (fake model, a queue with room for all clients): `/v1/predict` and `/v1/explain`
  at concurrency 1, 8 and 32 for `--seconds` each: requests/s, p50/p95 latency, errors. Target: predict >= 300 req/s at
  concurrency 8, no errors at any level.
- `kill` (fake model): 32 clients explaining; the server is killed (SIGKILL) mid-load, once 10
  answers have arrived: every answer a client received must have its audit row (by request id).
- `local` (the packaged local model, behind the queue): `/v1/explain` at concurrency 1, 3, 6,
  one request per client: latencies, and how many were refused (503) by the queue's bound or
  the key's share.
- `drop` (local model): a stream dropped after its first token: seconds until the audit trail
  records the generation as cancelled. Target: < 1 s.
- `flood` (local model): 45 explanations at once from one key (clients give up after 5 s)
  while `/health` is polled: 503s beyond the bound, `/health` p95. Target: < 50 ms.
The home (`--home`, default $SAFELLM_HOME or .safellm) must hold built data and trained models
(`safellm demo`). Figures also written as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, parser, summary

KEY = "sk-bench-api"
# the fake model answers at once: a queue with room for every client of one key (the bound and
# the per-key share protect the slow local model, which the local parts keep at the defaults)
ROOMY = {"SAFELLM_QUEUE_MAX_WAITING": "64", "SAFELLM_QUEUE_PER_KEY": "0"}
AUTH = {"Authorization": f"Bearer {KEY}"}


@contextmanager
def server(home: Path, model: str, port: int, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`safellm serve` on 127.0.0.1:`port` over `home`, answering with `model`."""
    e = {
        **os.environ,
        "SAFELLM_HOME": str(home),
        "SAFELLM_LLM_MODEL": model,
        "SAFELLM_API_KEYS": KEY,
        "SAFELLM_API_RATE_PER_MINUTE": "1000000",
        "SAFELLM_GUARD_JUDGE": "false",
        "SAFELLM_PREFETCH": "false",
        **env,
    }
    log = open(ROOT / ".safellm" / "bench" / f"serve-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "safellm.cli", "serve", "--port", str(port)],
        env=e,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise SystemExit(f"the server did not start; see {log.name}")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def units(home: Path, n: int) -> list[int]:
    """The first `n` readmission admissions of the home's task table."""
    import pandas as pd

    return [int(h) for h in pd.read_parquet(home / "data" / "readmission.parquet")["hadm_id"][:n]]


def load(
    url: str,
    route: str,
    hadms: list[int],
    concurrency: int,
    *,
    seconds: float | None = None,
    per_client: int | None = None,
    timeout: float = 120.0,
    on_ok: Callable[[httpx.Response], None] | None = None,
    halt: threading.Event | None = None,
) -> dict[str, Any]:
    """`concurrency` client threads posting to `route` (for `seconds`, or `per_client` times
    each, or until `halt` is set): requests/s, latency p50/p95 (ms, answered requests), status
    counts, errors."""
    lat: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()

    # the clients are made before the clock starts (an httpx client costs milliseconds to make:
    # 45 of them at once would load the 2 cores the server runs on before it is asked anything)
    clients = [httpx.Client(timeout=timeout) for _ in range(concurrency)]
    go = threading.Barrier(concurrency + 1)
    stop = time.monotonic() + seconds if seconds else None

    def client(i: int) -> None:
        go.wait()
        with clients[i] as c:
            n = 0
            while (
                (stop is None or time.monotonic() < stop)
                and (per_client is None or n < per_client)
                and not (halt is not None and halt.is_set())
            ):
                body = {"task": "readmission", "hadm_id": hadms[(i + n) % len(hadms)]}
                t = time.perf_counter()
                try:
                    r = c.post(url + route, json=body, headers=AUTH)
                    key = str(r.status_code)
                    if r.status_code == 200 and on_ok is not None:
                        on_ok(r)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    codes[key] = codes.get(key, 0) + 1
                    if key == "200":
                        lat.append(ms)
                n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    go.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    p50, p95 = summary(lat) if lat else (float("nan"), float("nan"))
    ok = codes.get("200", 0)
    return {
        "route": route,
        "concurrency": concurrency,
        "requests": sum(codes.values()),
        "req_per_s": ok / wall,
        "p50_ms": p50,
        "p95_ms": p95,
        "codes": codes,
        "errors": sum(v for k, v in codes.items() if k != "200"),
    }


def show(row: dict[str, Any]) -> None:
    print(
        f"  {row['route']:<12} c={row['concurrency']:<3} {row['req_per_s']:8.1f} req/s  "
        f"p50 {row['p50_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms  {row['codes']}",
        flush=True,
    )


def part_throughput(args: argparse.Namespace) -> dict[str, Any]:
    hadms = units(args.home, 64)
    rows = []
    print(f"[throughput] fake model, {args.seconds:g} s per level", flush=True)
    with server(args.home, "fake", args.port, **ROOMY):
        url = f"http://127.0.0.1:{args.port}"
        load(url, "/v1/predict", hadms, 4, seconds=2)  # warm-up
        load(url, "/v1/explain", hadms, 1, per_client=2)  # the first answers load the embedder
        for route in ("/v1/predict", "/v1/explain"):
            for c in (1, 8, 32):
                row = load(url, route, hadms, c, seconds=args.seconds)
                show(row)
                rows.append(row)
    p8 = next(r for r in rows if r["route"] == "/v1/predict" and r["concurrency"] == 8)
    errors = sum(r["errors"] for r in rows)
    print(
        f"predict at concurrency 8: {p8['req_per_s']:.0f} req/s (target >= 300: "
        f"{'MET' if p8['req_per_s'] >= 300 else 'MISSED'}); errors at every level: {errors} "
        f"(target 0: {'MET' if errors == 0 else 'MISSED'})",
        flush=True,
    )
    return {"rows": rows}


def audit_ids(home: Path) -> dict[str, str]:
    """request id -> outcome of every audit row (read-only)."""
    con = sqlite3.connect(f"file:{home / 'audit.sqlite'}?mode=ro", uri=True)
    try:
        return {r[0]: r[1] for r in con.execute("SELECT request_id, outcome FROM audit")}
    finally:
        con.close()


def part_kill(args: argparse.Namespace) -> dict[str, Any]:
    hadms = units(args.home, 64)
    delivered: list[str] = []
    print(
        "[kill] fake model, 32 clients explaining; SIGKILL once 10 answers have arrived",
        flush=True,
    )
    with server(args.home, "fake", args.port, **ROOMY) as proc:
        url = f"http://127.0.0.1:{args.port}"
        load(url, "/v1/explain", hadms, 2, per_client=2)  # warm-up: the first answers load more

        def kill_mid_load() -> None:
            deadline = time.monotonic() + 120
            while len(delivered) < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # more answers on their way: some cut off mid-write
            proc.kill()
            killed.set()

        killed = threading.Event()
        killer = threading.Thread(target=kill_mid_load, daemon=True)
        killer.start()
        row = load(
            url,
            "/v1/explain",
            hadms,
            32,
            seconds=150,
            timeout=60,
            on_ok=lambda r: delivered.append(r.headers["X-Request-ID"]),
            halt=killed,
        )
        proc.wait(30)
    audited = audit_ids(args.home)
    missing = [rid for rid in delivered if audited.get(rid) != "delivered"]
    print(
        f"  {len(delivered)} answers received before the kill, {len(missing)} without their "
        f"audit row (target 0: {'MET' if delivered and not missing else 'MISSED'}); "
        f"{row['codes']}",
        flush=True,
    )
    return {"delivered": len(delivered), "missing": len(missing), "codes": row["codes"]}


def part_local(args: argparse.Namespace) -> dict[str, Any]:
    hadms = units(args.home, 16)
    rows = []
    print("[local] packaged local model behind the queue, one request per client", flush=True)
    with server(args.home, "local", args.port):
        url = f"http://127.0.0.1:{args.port}"
        for c in (1, 3, 6):
            row = load(url, "/v1/explain", hadms, c, per_client=1, timeout=600)
            show(row)
            rows.append(row)
    return {"rows": rows}


def part_drop(args: argparse.Namespace) -> dict[str, Any]:
    hadm = units(args.home, 1)[0]
    print("[drop] a stream dropped after its first token (local model)", flush=True)
    with server(args.home, "local", args.port):
        url = f"http://127.0.0.1:{args.port}"
        body = {"task": "readmission", "hadm_id": hadm}
        with httpx.stream(
            "POST", f"{url}/v1/explain/stream", json=body, headers=AUTH, timeout=300
        ) as s:
            rid = s.headers["X-Request-ID"]
            for line in s.iter_lines():
                if line.startswith("event: token"):
                    break
        dropped = time.perf_counter()
        while audit_ids(args.home).get(rid) is None and time.perf_counter() - dropped < 60:
            time.sleep(0.02)
        stopped_s = time.perf_counter() - dropped
        outcome = audit_ids(args.home).get(rid)
    print(
        f"  generation recorded as {outcome!r} {stopped_s:.2f} s after the drop (target < 1 s: "
        f"{'MET' if outcome == 'cancelled' and stopped_s < 1 else 'MISSED'})",
        flush=True,
    )
    return {"outcome": outcome, "stopped_s": stopped_s}


def poll_health(url: str, stop: Any, out: Any) -> None:
    """`GET /health` every 50 ms until `stop` is set; the latencies (ms) put on `out`. Run in a
    process of its own, so that the flood's client threads do not delay its measurements."""
    lat: list[float] = []
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            t = time.perf_counter()
            c.get(f"{url}/health")
            lat.append((time.perf_counter() - t) * 1000)
            time.sleep(0.05)
    out.put(lat)


def part_flood(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing as mp

    hadms = units(args.home, 45)
    print("[flood] 45 explanations at once from one key (local model), /health polled", flush=True)
    ctx = mp.get_context("spawn")
    with server(args.home, "local", args.port):
        url = f"http://127.0.0.1:{args.port}"
        stop, out = ctx.Event(), ctx.Queue()
        prober = ctx.Process(target=poll_health, args=(url, stop, out))
        prober.start()
        time.sleep(1)
        row = load(url, "/v1/explain", hadms, 45, per_client=1, timeout=5)
        time.sleep(2)  # the clients that gave up: their work must stop too
        stop.set()
        health = out.get(timeout=30)
        prober.join(30)
    p50, p95 = summary(health)
    print(
        f"  {row['codes']}; /health p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(health):.1f} ms "
        f"over {len(health)} polls (target p95 < 50 ms: {'MET' if p95 < 50 else 'MISSED'})",
        flush=True,
    )
    return {"codes": row["codes"], "health_p50_ms": p50, "health_p95_ms": p95}


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument(
        "--part",
        choices=["throughput", "kill", "local", "drop", "flood", "all"],
        default="all",
    )
    ap.add_argument("--home", type=Path, default=Path(os.environ.get("SAFELLM_HOME", ".safellm")))
    ap.add_argument("--seconds", type=float, default=10.0, help="throughput: per level")
    ap.add_argument("--port", type=int, default=8931)
    ap.add_argument("--out", type=Path, default=ROOT / ".safellm" / "bench" / "api_bench.json")
    args = ap.parse_args(argv)
    args.home = args.home.resolve()
    (ROOT / ".safellm" / "bench").mkdir(parents=True, exist_ok=True)
    parts = ["throughput", "kill", "local", "drop", "flood"] if args.part == "all" else [args.part]
    done = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for part in parts:
        done[part] = globals()[f"part_{part}"](args)
        print()
    args.out.write_text(json.dumps(done, indent=2, default=str) + "\n")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
