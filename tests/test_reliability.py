"""Reliability: runs at the same time, and user isolation.

These start real `automodel` processes against one AUTOMODEL_HOME, as users and sensors would. Runs killed with SIGKILL
inside each stage (whatever they stored loads whole; a rerun predicts what an uninterrupted run did) are in
test_reliability_recovery.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

AUTOMODEL = str(Path(sys.executable).parent / "automodel")


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(REPO / "datasets"), "HF_HUB_OFFLINE": "1",
            "AUTOMODEL_SEARCH_BUDGET_S": "600", **extra}


RUNS_AT_ONCE = 4  # twice the train pool's 2 slots, so runs wait for slots while others search; three users, one with two runs


@pytest.mark.slow
def test_runs_at_once_all_succeed_and_shared_state_stays_consistent(tmp_path):
    """Several `automodel run` processes started together on a home with no catalog yet: every run succeeds, none is
    lost or mixed with another in sessions, the action log or its predictions, and the lake catalog is built once.

    Four runs contend for everything eight did (the catalog's first build, SQLite writers, the 2-slot train pool, one user
    with two runs at once); more of them only make the test longer."""
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    home = tmp_path / "home"
    sources = []
    for i in range(RUNS_AT_ONCE):
        path = tmp_path / f"penguins_{i}.csv"
        penguins.sample(frac=0.9, random_state=i).to_csv(path, index=False)
        sources.append(path)
    env = _env(home, AUTOMODEL_SEARCH_BUDGET_S="3")  # the train pool's 2 slots run the searches two at a time
    procs = [subprocess.Popen([AUTOMODEL, "run", str(s), "--target", "species", "--user", f"user{i % 3}", "--json"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i, s in enumerate(sources)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    run_ids = {r["run_id"] for r in results}
    assert len(run_ids) == RUNS_AT_ONCE and all(r["status"] == "success" for r in results)
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


@pytest.mark.lake_indexed
def test_one_users_runs_are_invisible_to_another(home, cli, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "3")  # who sees what is checked here, not the model
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


@pytest.mark.lake_indexed
def test_symlinked_input_is_read_not_followed_into_the_store(home, cli, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "3")
    real = tmp_path / "real.csv"
    penguins.to_csv(real, index=False)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    out = cli("run", link, "--target", "species", "--user", "carol", "--json").json
    staged = list((home / "users" / "carol").rglob("*.csv"))
    assert out["status"] == "success" and len(staged) == 1
    assert not staged[0].is_symlink(), "the upload is a copy, so the store never points outside AUTOMODEL_HOME"
