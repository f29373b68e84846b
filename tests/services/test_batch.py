"""`safellm batch`: one Parquet row per unit, the same rows after an interruption and a rerun
(the CLI killed with SIGKILL half way), a failing unit recorded without stopping the run, a
folder of another job refused, and the Ray engine on a real local cluster (a head and two worker
nodes on 127.0.0.1) giving the rows of the single-process engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from safellm.config import Settings
from safellm.errors import UserInputError
from safellm.services.batch import BatchJob, run_batch
from safellm.services.batch_rows import COLUMNS
from safellm.services.explanation import ExplanationService
from tests.samples import home_over

LIMIT = 24  # units per run: enough for several parts, quick with the fake model
VARYING = ["latency_s"]  # the only column that may differ between two runs of one job


@pytest.fixture
def home(demo_home: Path, tmp_path: Path) -> Path:
    """The demo's data and models, with an audit trail of its own."""
    return home_over(demo_home, tmp_path / "home")


def _settings(home: Path) -> Settings:
    return Settings(home=home, llm_model="fake", guard_judge=False, prefetch=False)


def _rows(out: Path, task: str = "readmission") -> pd.DataFrame:
    return pq.read_table(out / f"{task}.parquet").to_pandas().drop(columns=VARYING)


def test_a_batch_writes_one_guarded_row_per_unit_with_its_risk(home: Path, tmp_path: Path) -> None:
    settings = _settings(home)
    service = ExplanationService(settings)
    job = BatchJob(task="readmission", out=tmp_path / "out", limit=LIMIT, chunk=10)
    parts: list[Path] = []
    summary = run_batch(settings, job, service=service, on_part=parts.append)

    rows = _rows(job.out)
    assert list(rows.columns) == [c for c in COLUMNS if c not in VARYING]
    expected = service.task_data("readmission").frame["unit_id"].iloc[:LIMIT].tolist()
    assert rows["unit_id"].tolist() == expected  # the task table's order, each unit once
    assert len(parts) == 3  # 10 + 10 + 4
    for r in rows.itertuples():
        risk, band = service.risk_of("readmission", hadm_id=int(r.hadm_id))
        assert r.risk == pytest.approx(risk) and r.band == band
        facts = json.loads(r.facts)
        assert facts["hadm_id"] == r.hadm_id and facts["contributions"]
        assert r.rationale and list(r.citations) and r.guard_outcome in ("passed", "fallback")
        assert pd.isna(r.error) and r.llm == "fake"
    assert summary.units == summary.done_now == LIMIT and summary.errors == 0
    assert sum(summary.by_outcome.values()) == LIMIT and summary.units_per_hour > 0
    saved = json.loads((job.out / "summary.json").read_text())
    assert saved["units"] == LIMIT and saved["by_outcome"] == summary.by_outcome
    # audited as the API's answers are
    audited = service.audit.records()
    assert len(audited) == LIMIT and {a.key_id for a in audited} == {"batch"}


def test_a_failing_unit_is_a_row_with_its_error_and_the_run_goes_on(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(home)
    service = ExplanationService(settings)
    bad = int(service.task_data("readmission").frame["unit_id"].iloc[3])
    real = service.facts_of

    def facts_of(task: str, row: Any, question: str | None = None) -> Any:
        if int(row["unit_id"]) == bad:
            raise UserInputError("this unit's notes could not be read")
        return real(task, row, question)

    monkeypatch.setattr(service, "facts_of", facts_of)
    summary = run_batch(
        settings, BatchJob(task="readmission", out=tmp_path / "out", limit=8), service=service
    )
    rows = _rows(tmp_path / "out")
    assert len(rows) == 8 and summary.errors == 1
    failed = rows[rows["error"].notna()]
    assert failed["unit_id"].tolist() == [bad]
    assert failed["error"].iloc[0] == "UserInputError: this unit's notes could not be read"
    assert failed["rationale"].isna().all() and rows["rationale"].notna().sum() == 7


def test_a_folder_of_another_job_is_refused(home: Path, tmp_path: Path) -> None:
    settings = _settings(home)
    service = ExplanationService(settings)
    run_batch(
        settings, BatchJob(task="readmission", out=tmp_path / "out", limit=2), service=service
    )
    with pytest.raises(UserInputError, match=r"another batch job .*limit"):
        run_batch(
            settings, BatchJob(task="readmission", out=tmp_path / "out", limit=3), service=service
        )
    with pytest.raises(UserInputError, match="not in the readmission cohort"):
        run_batch(
            settings,
            BatchJob(task="readmission", out=tmp_path / "other", units=[1, 2]),
            service=service,
        )


def test_a_window_with_no_unit_gives_an_empty_table(home: Path, tmp_path: Path) -> None:
    from datetime import datetime

    settings = _settings(home)
    job = BatchJob(task="readmission", out=tmp_path / "out", since=datetime(2300, 1, 1))
    summary = run_batch(settings, job, service=ExplanationService(settings))
    assert summary.units == summary.done_now == 0 and summary.by_outcome == {}
    assert pq.read_table(job.out / "readmission.parquet").num_rows == 0


def _cli(home: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SAFELLM_HOME": str(home),
        "SAFELLM_GUARD_JUDGE": "false",
        "SAFELLM_PREFETCH": "false",
    }
    command = [sys.executable, "-m", "safellm.cli", "batch", "--task", "readmission"]
    command += ["--model", "fake", "--out", str(out), "--limit", str(LIMIT), "--chunk", "6"]
    return subprocess.Popen(
        [*command, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_killed_half_way_and_run_again_gives_the_rows_of_an_uninterrupted_run(
    home: Path, tmp_path: Path
) -> None:
    whole = _cli(home, tmp_path / "whole")
    assert whole.wait(600) == 0, whole.stdout.read().decode()[-2000:]  # type: ignore[union-attr]

    out = tmp_path / "resumed"
    first = _cli(home, out)
    deadline = time.monotonic() + 600
    while len(list((out / "parts").glob("part-*.parquet"))) < 2:  # half of the four parts
        assert first.poll() is None and time.monotonic() < deadline, "no part came"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    kept = len(list((out / "parts").glob("part-*.parquet")))
    assert 2 <= kept < 4 and not (out / "readmission.parquet").exists()

    again = _cli(home, out)
    said = again.communicate(timeout=600)[0].decode()
    assert again.returncode == 0, said[-2000:]
    assert f"{LIMIT - 6 * kept} / {6 * kept}" in said  # written now / found from the first run
    pd.testing.assert_frame_equal(_rows(out), _rows(tmp_path / "whole"))


@pytest.mark.slow
def test_the_ray_engine_on_a_local_cluster_gives_the_rows_of_one_process(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every node and the driver on 127.0.0.1: Ray otherwise rewrites a loopback address to the
    # machine's outward address, where a loopback cluster does not listen (the variable is
    # read when Ray is imported; the constant is set too in case it was imported before)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    settings = _settings(home)
    local = run_batch(settings, BatchJob(task="readmission", out=tmp_path / "local", limit=LIMIT))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": 100 * 2**20,
            "node_ip_address": "127.0.0.1",
        },
    )
    try:
        for _ in range(2):  # two worker nodes, one actor each
            cluster.add_node(
                num_cpus=1, object_store_memory=100 * 2**20, node_ip_address="127.0.0.1"
            )
        cluster.wait_for_nodes()
        on_ray = run_batch(
            settings,
            BatchJob(
                task="readmission",
                out=tmp_path / "ray",
                limit=LIMIT,
                engine="ray",
                address=cluster.address,
                workers=2,
                chunk=6,
            ),
        )
        nodes = _nodes(cluster)  # the head and the two workers, all on loopback
        assert len(nodes) == 3 and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    finally:
        cluster.shutdown()
    assert on_ray.done_now == local.done_now == LIMIT and on_ray.errors == 0
    pd.testing.assert_frame_equal(_rows(tmp_path / "ray"), _rows(tmp_path / "local"))


def _nodes(cluster: Any) -> list[dict[str, Any]]:
    import ray

    ray.init(address=cluster.address, log_to_driver=False)
    try:
        return [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
