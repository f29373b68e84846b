"""Operations metrics in Prometheus' exposition format at `/metrics` (`SAFELLM_METRICS`: `key`,
the default, asks for an API key as every route but `/health`; `open` for a scraper inside the
network; `off` serves nothing).

Requests by route, method and status with latency histograms (prometheus-fastapi-instrumentator:
`http_requests_total`, `http_request_duration_seconds`); and SafeLLM's own, each app with a
registry of its own:

- `safellm_explanations_total{route, outcome}`: guard outcomes (passed, re-asked, repaired,
  fallback, refused) of the explanations served, and `safellm_guard_violations_total{route, rule}`
  for the rules the model's answers broke;
- `safellm_llm_first_token_seconds`, `safellm_llm_tokens_per_second` (decoding speed of the first
  draft) and `safellm_explanation_seconds` (histograms);
- `safellm_queue_waiting` and `safellm_queue_service_seconds` (gauges, read at scrape time);
- `safellm_cds_cards_total{service, indicator}`;
- `safellm_build_info{llm, prompt, policy}` and `safellm_risk_model_info{task, version}`;
- concept drift, from the latest `safellm monitor` report of each task (read at scrape time):
  `safellm_model_performance{task, metric, period}` (metric: auroc, calibration_slope,
  calibration_intercept, brier; period: its first day), `safellm_model_performance_validation
  {task, metric}` and `safellm_model_performance_alert{task}` (1 when a period degraded).
"""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator

from safellm.rationale import Explanation

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 180)
_RATES = (1, 2, 5, 10, 15, 20, 30, 50, 100, 200, 500)
_PERFORMANCE = ("auroc", "calibration_slope", "calibration_intercept", "brier")


class MonitorReports(Collector):
    """The figures of the latest `safellm monitor` report of each task under `folder`
    (`$SAFELLM_HOME/monitor/<task>/drift.json`), read at each scrape."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[GaugeMetricFamily]:
        perf = GaugeMetricFamily(
            "safellm_model_performance",
            "Risk model performance per period of prediction time on known outcomes "
            "(safellm monitor).",
            labels=["task", "metric", "period"],
        )
        validation = GaugeMetricFamily(
            "safellm_model_performance_validation",
            "The risk model's validation (out-of-fold) figures the periods are compared with.",
            labels=["task", "metric"],
        )
        alert = GaugeMetricFamily(
            "safellm_model_performance_alert",
            "1 when a period's performance degraded beyond the settings (safellm monitor).",
            labels=["task"],
        )
        for path in sorted(self.folder.glob("*/drift.json")):
            try:
                report = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a report being written, or not one: the next scrape reads it
            found = report.get("performance")
            if not isinstance(found, dict):
                continue
            task = str(report.get("task", path.parent.name))
            for window in found.get("windows", []):
                for metric in _PERFORMANCE:
                    est = window.get(metric) or {}
                    if est.get("point") is not None:
                        perf.add_metric([task, metric, window["start"]], float(est["point"]))
            for metric in ("auroc", "brier"):
                value = found.get(f"validation_{metric}")
                if value is not None:
                    validation.add_metric([task, metric], float(value))
            alert.add_metric([task], 1.0 if found.get("alert") else 0.0)
        yield perf
        yield validation
        yield alert


class Metrics:
    """One app's metrics: a registry of its own (tests build several apps in one process)."""

    def __init__(self, monitor_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if monitor_dir is not None:
            r.register(MonitorReports(monitor_dir))
        self.explanations = Counter(
            "safellm_explanations",
            "Explanations served, by route and guard outcome.",
            ["route", "outcome"],
            registry=r,
        )
        self.violations = Counter(
            "safellm_guard_violations",
            "Guard rules broken by the model's answers, by route and rule.",
            ["route", "rule"],
            registry=r,
        )
        self.first_token = Histogram(
            "safellm_llm_first_token_seconds",
            "Seconds from the question to the model's first token.",
            buckets=_SECONDS,
            registry=r,
        )
        self.tokens_per_s = Histogram(
            "safellm_llm_tokens_per_second",
            "The model's decoding speed on the first draft (tokens per second after the first).",
            buckets=_RATES,
            registry=r,
        )
        self.latency = Histogram(
            "safellm_explanation_seconds",
            "Seconds to a finished, guarded explanation (queue wait included).",
            buckets=_SECONDS,
            registry=r,
        )
        self.cards = Counter(
            "safellm_cds_cards",
            "CDS Hooks cards returned, by service and indicator.",
            ["service", "indicator"],
            registry=r,
        )
        self.queue_waiting = Gauge(
            "safellm_queue_waiting", "Questions waiting for the model.", registry=r
        )
        self.queue_service = Gauge(
            "safellm_queue_service_seconds",
            "Moving average of seconds the model takes per question.",
            registry=r,
        )
        self.build = Info("safellm_build", "LLM, prompt and guard policy versions.", registry=r)
        self.risk_models = Gauge(
            "safellm_risk_model_info",
            "Risk model versions served (value 1).",
            ["task", "version"],
            registry=r,
        )

    def instrument(self, app: Any) -> None:
        """Requests by route template, method and status, with latency histograms."""
        Instrumentator(
            registry=self.registry,
            should_group_status_codes=False,
            excluded_handlers=["/metrics"],
        ).instrument(app)

    def watch_queue(self, waiting: Callable[[], int], service_s: Callable[[], float]) -> None:
        self.queue_waiting.set_function(lambda: float(waiting()))
        self.queue_service.set_function(service_s)

    def versions(self, versions: dict[str, Any]) -> None:
        self.build.info({k: str(versions.get(k, "")) for k in ("llm", "prompt", "policy")})
        for task, version in versions.get("risk_models", {}).items():
            self.risk_models.labels(task, str(version)).set(1)

    def explained(self, exp: Explanation, route: str) -> None:
        self.explanations.labels(route, exp.guard.outcome).inc()
        for rule in exp.guard.rules:
            self.violations.labels(route, rule).inc()
        if exp.first_token_s is not None:
            self.first_token.observe(exp.first_token_s)
        if exp.tokens_per_s is not None:
            self.tokens_per_s.observe(exp.tokens_per_s)
        self.latency.observe(exp.latency_s)

    def card(self, service_id: str, indicator: str) -> None:
        self.cards.labels(service_id, indicator).inc()
