"""`/metrics` scraped from the live server before and after a few requests: the request, guard,
LLM and CDS counters move; the latest `safellm monitor` report's performance per period is
exported as read at each scrape; the scrape needs a key by default (and `open` / `off` do what
they say)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.api import create_app
from safellm.config import Settings
from tests.interop.prefetch import prefetch_of


def _scrape(live_server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    r = httpx.get(
        f"{live_server.url}/metrics",
        headers={"Authorization": f"Bearer {live_server.key}"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _sum(m: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        v
        for (n, ls), v in m.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def test_counters_move(live_server, demo_build) -> None:  # type: ignore[no-untyped-def]
    from safellm.fhir.export import iter_bundles

    auth = {"Authorization": f"Bearer {live_server.key}"}
    hadm = int(
        pd.read_parquet(live_server.home / "data" / "readmission.parquet")["hadm_id"].iloc[3]
    )
    assert httpx.get(f"{live_server.url}/metrics", timeout=30).status_code == 401
    before = _scrape(live_server)
    with httpx.Client(base_url=live_server.url, headers=auth, timeout=120) as c:
        for _ in range(3):
            assert c.post("/v1/predict", json={"task": "readmission", "hadm_id": hadm}).is_success
        assert c.post("/v1/predict", json={"task": "readmission", "hadm_id": 1}).status_code == 404
        r = c.post("/v1/explain", json={"task": "readmission", "hadm_id": hadm})
        assert r.status_code == 200
        outcome = r.json()["guard"]
        bundle = next(iter_bundles(demo_build.out_dir, [142345]))
        card = c.post(
            "/cds-services/safellm-readmission",
            json={
                "hook": "encounter-discharge",
                "hookInstance": "m-1",
                "context": {
                    "userId": "Practitioner/p",
                    "patientId": "mimic-10006",
                    "encounterId": "adm-142345",
                },
                "prefetch": prefetch_of(bundle),
            },
        )
        assert card.status_code == 200, card.text
        indicator = card.json()["cards"][0]["indicator"]
    after = _scrape(live_server)

    def moved(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    assert moved("http_requests_total", handler="/v1/predict", status="200") == 3
    assert moved("http_requests_total", handler="/v1/predict", status="404") == 1
    assert moved("http_request_duration_seconds_count", handler="/v1/explain") == 1
    assert moved("safellm_explanations_total", route="/v1/explain") == 1
    kind = "fallback" if outcome["fallback_used"] else None
    if kind:
        assert moved("safellm_explanations_total", route="/v1/explain", outcome=kind) == 1
    assert moved("safellm_explanation_seconds_count") == 1
    assert moved("safellm_llm_tokens_per_second_count") == 1
    assert moved("safellm_llm_tokens_per_second_sum") > 0
    assert moved("safellm_cds_cards_total", service="safellm-readmission", indicator=indicator) == 1
    assert _sum(after, "safellm_queue_waiting") == 0
    assert _sum(after, "safellm_build_info", llm="fake") == 1
    assert _sum(after, "safellm_risk_model_info", task="readmission") == 1


def test_open_and_off(demo_home: Path, tmp_path: Path) -> None:
    from tests.samples import home_over

    home = home_over(demo_home, tmp_path / "home")
    for mode, unkeyed in (("open", 200), ("off", 404)):
        settings = Settings(
            home=home,
            llm_model="fake",
            guard_judge=False,
            metrics=mode,
            api_keys=[SecretStr("sk-m")],
        )
        with TestClient(create_app(settings, chat=False)) as client:
            r = client.get("/metrics")
            assert r.status_code == unkeyed
            if mode == "open":
                assert "http_requests_total" in r.text or "safellm_build_info" in r.text


def test_the_dashboard_reads_metrics_the_app_exports(live_server) -> None:  # type: ignore[no-untyped-def]
    import json
    import re

    dash = json.loads(
        (Path(__file__).resolve().parents[2] / "deploy/grafana/safellm-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    r = httpx.get(
        f"{live_server.url}/metrics",
        headers={"Authorization": f"Bearer {live_server.key}"},
        timeout=30,
    )
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_count", "_sum"],
        "info": ["_info"],
    }
    exported = {  # declared families (with or without samples yet), as their samples are named
        f.name + sfx
        for f in text_string_to_metric_families(r.text)
        for sfx in suffixes.get(f.type, [""])
    }
    for expr in exprs:
        names = set(re.findall(r"\b((?:safellm|http)_[a-z_]+)\b", expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_the_latest_monitor_report_is_exported(live_server) -> None:  # type: ignore[no-untyped-def]
    import json

    import numpy as np

    from safellm.risk.drift import Thresholds, performance_drift

    rng = np.random.default_rng(0)
    times = pd.Series(pd.date_range("2150-01-01", periods=400, freq="6h"))  # Jan to Apr
    p = rng.uniform(0.05, 0.6, 400)
    y = (rng.random(400) < p).astype(int)
    y[300:] = 1 - y[300:]  # the outcomes turn against the model in the last 25 days
    perf = performance_drift(
        times, y, p, np.arange(400), Thresholds(), validation_auroc=0.7, validation_brier=0.2
    )
    assert perf.alert
    folder = live_server.home / "monitor" / "readmission"
    folder.mkdir(parents=True, exist_ok=True)
    report = {"task": "readmission", "performance": perf.model_dump(mode="json")}
    before = _scrape(live_server)
    assert _sum(before, "safellm_model_performance_alert", task="readmission") == 0
    (folder / "drift.json").write_text(json.dumps(report))
    (live_server.home / "monitor" / "los").mkdir(exist_ok=True)
    (live_server.home / "monitor" / "los" / "drift.json").write_text("{not json")  # skipped
    try:
        after = _scrape(live_server)
    finally:
        (folder / "drift.json").unlink()
    judged = [w for w in perf.windows if w.auroc is not None]
    assert len(judged) == 4
    for w in judged:
        for metric in ("auroc", "calibration_slope", "calibration_intercept", "brier"):
            got = _sum(
                after,
                "safellm_model_performance",
                task="readmission",
                metric=metric,
                period=w.start,
            )
            assert got == getattr(w, metric).point
    assert _sum(after, "safellm_model_performance_validation", metric="auroc") == 0.7
    assert _sum(after, "safellm_model_performance_alert", task="readmission") == 1
