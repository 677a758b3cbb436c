"""The real dagster-daemon killed with SIGKILL and started again: no dropped file is lost or run twice.

The local drop sensor's cursor lives in the Dagster instance and each run's manifest in sessions.db;
both must outlive the daemon. Two drops are handled before the kill (their runs still going when it lands) and one
after the restart: a drop handled twice or never would show in either group, whatever its size.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import REPO, with_lake_indexed

BIN = Path(sys.executable).parent


def _session_ids(home: Path) -> set[str]:
    try:
        with sqlite3.connect(home / "sessions.db", timeout=30) as con:
            return {r for (r,) in con.execute("SELECT run_id FROM runs").fetchall()}
    except sqlite3.OperationalError:  # not created yet
        return set()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start_daemon(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env=env, cwd=REPO,
                            stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
def test_daemon_sigkill_and_restart_loses_and_repeats_no_drop(tmp_path, penguins):
    home, drop = with_lake_indexed(tmp_path / "home"), tmp_path / "drop"
    env = {**os.environ, "AUTOMODEL_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "AUTOMODEL_DROP_DIR": str(drop),
           "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": "3", "HF_HUB_OFFLINE": "1",
           "DAGSTER_DISABLE_TELEMETRY": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    subprocess.run([str(BIN / "automodel"), "index"], env=env, cwd=REPO, check=True, capture_output=True, timeout=600)
    subprocess.run([str(BIN / "dagster"), "sensor", "start", "local_drop_sensor", "-w", str(REPO / "workspace.yaml")],
                   env=env, cwd=REPO, check=True, capture_output=True, timeout=600)

    def drop_files(names):
        (drop / "alice").mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            penguins.sample(frac=0.8, random_state=len(name) + i).to_csv(drop / "alice" / name, index=False)

    drop_files(["first.csv", "second.csv"])
    log = tmp_path / "daemon.log"
    daemon = _start_daemon(env, log)
    try:
        _wait(lambda: len(_session_ids(home)) >= 2, 240, "the first two drops to become runs")
        os.kill(daemon.pid, signal.SIGKILL)  # the daemon only: runs it launched go on, as after a crash of the daemon process
        daemon.wait(timeout=30)
        drop_files(["third.csv"])
        daemon = _start_daemon(env, log)
        _wait(lambda: len(_session_ids(home)) >= 3, 240, "the later drop to become a run after the restart")
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))

        def all_finished() -> bool:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="automodel_run"))
            return len(runs) >= 3 and all(r.is_finished for r in runs)

        _wait(all_finished, 300, "every run to finish")
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
    runs = instance.get_runs(filters=dg.RunsFilter(job_name="automodel_run"))
    partitions = [r.tags.get("dagster/partition") for r in runs]
    assert sorted(partitions) == sorted(_session_ids(home)), log.read_text()[-3000:]
    assert len(set(partitions)) == len(partitions) == 3, "each drop is requested exactly once across the restart"
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert set(instance.get_dynamic_partitions("run_id")) == set(partitions)
    sensor_state = next(s for s in instance.all_instigator_state() if s.name == "local_drop_sensor")
    cursor = sensor_state.instigator_data.cursor
    assert all(name in cursor for name in ("first.csv", "second.csv", "third.csv")), "the cursor outlived the daemon"
