"""PyCaret's compare_models as a second search backend (setting ``search_backend: pycaret``,
env AUTOMODEL_SEARCH_BACKEND=pycaret).

PyCaret takes about ten seconds to import, so it is imported only when this backend runs. The saved
pipeline is ours around PyCaret's: our FrameCoercer selects the trained columns by name and types them,
PyCaret's finalized pipeline does its own preprocessing and the model; classes are our codes, so
``ClassLabelPipeline`` gives probabilities for every class label as with the other backend.

PyCaret is an optional extra (``pip install 'automodel[pycaret]'``): PyCaret 3.3, its latest release, holds numpy, pandas
and scikit-learn at their 2024 versions, so it installs only in an environment of its own, not beside the locked core.
Where it is missing this backend says so in one sentence.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from analyzers.models import ClassLabelPipeline
from analyzers.preprocess import FrameCoercer
from analyzers.search import SearchResult, classification_metrics, encode_target, holdout_positions, holdout_predictions, regression_metrics
from resources.settings import current as current_settings
from automodel.errors import AutomodelError

TARGET = "__target__"
SORT = {"r2": "R2", "rmse": "RMSE", "mae": "MAE", "f1": "F1", "accuracy": "Accuracy", "roc_auc": "AUC"}
MISSING = ("The pycaret search backend needs PyCaret, which is not installed in this environment: install the optional extra "
           "(pip install 'automodel[pycaret]', in an environment of its own: PyCaret 3.3 needs numpy below 1.27, pandas below 2.2 "
           "and scikit-learn below 1.5), or set AUTOMODEL_SEARCH_BACKEND=automodel.")


def pycaret_experiment(task: str):
    """PyCaret's experiment class for ``task``; one clear sentence where PyCaret cannot be imported."""
    try:
        if task == "regression":
            from pycaret.regression import RegressionExperiment as Experiment
        else:
            from pycaret.classification import ClassificationExperiment as Experiment
    except ImportError:
        raise AutomodelError(MISSING) from None
    return Experiment


def _keep_pycaret_log_under_home() -> None:
    """PyCaret writes ./logs.log unless told otherwise; all local state belongs under AUTOMODEL_HOME."""
    if "PYCARET_CUSTOM_LOGGING_PATH" not in os.environ:
        home = Path(current_settings().home)
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PYCARET_CUSTOM_LOGGING_PATH"] = str(home / "pycaret.log")


def pycaret_search(X: pd.DataFrame, y: pd.Series, task: str, plan: dict, time_budget_s: float, seed: int = 0, n_jobs: int = 2,
                   time_column: str | None = None, metric: str | None = None) -> SearchResult:
    started = time.perf_counter()
    X, y = X.reset_index(drop=True), y.reset_index(drop=True)
    classes = sorted(pd.unique(y).tolist(), key=str) if task == "classification" else None
    coercer = FrameCoercer(plan["numeric"], plan["categorical"], plan["date"], plan.get("text", []))
    frame = coercer.transform(X)
    frame[TARGET] = encode_target(y, classes)
    train, valid = holdout_positions(X, y, task, time_column, seed)
    _keep_pycaret_log_under_home()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiment = pycaret_experiment(task)()
        experiment.setup(
            frame.iloc[train], test_data=frame.iloc[valid], target=TARGET, session_id=seed, n_jobs=n_jobs, verbose=False, html=False,
            system_log=False, memory=False, numeric_features=plan["numeric"] + coercer.date_parts(), categorical_features=plan["categorical"],
            text_features=plan.get("text", []) or None, fold=3, data_split_shuffle=time_column is None,
            fold_strategy="timeseries" if time_column else "kfold" if task == "regression" else "stratifiedkfold",
        )
        sort = SORT.get(metric or ("r2" if task == "regression" else "f1"), "R2" if task == "regression" else "F1")
        # budget_time counts compare_models only: what setup used and the final refit come out of the same budget.
        left = max(time_budget_s - (time.perf_counter() - started), 5.0) * 0.8
        best = experiment.compare_models(sort=sort, n_select=1, verbose=False, budget_time=left / 60)
        leaderboard_frame = experiment.pull()
        holdout = experiment.predict_model(best, verbose=False, **({"raw_score": True} if task == "classification" else {}))
        final = experiment.finalize_model(best)
    if task == "regression":
        held_out = holdout["prediction_label"].to_numpy(dtype=float)
        metrics = regression_metrics(y.iloc[valid].astype(float).to_numpy(), held_out)
    else:
        proba = np.column_stack([holdout.get(f"prediction_score_{code}", pd.Series(0.0, index=holdout.index)).to_numpy()
                                 for code in range(len(classes))])
        metrics = classification_metrics(y.iloc[valid].astype(object).to_numpy(), proba, classes)
        held_out = proba
    pipeline = Pipeline([("coerce", coercer), ("pycaret", final)])
    if task == "classification":
        pipeline = ClassLabelPipeline(pipeline, classes)
    leaderboard = [{"model": str(row.get("Model", index)), **{k: (round(float(v), 6) if isinstance(v, (int, float, np.floating)) else str(v))
                                                             for k, v in row.items() if k != "Model"}}
                   for index, row in leaderboard_frame.iterrows()]
    name = type(final.steps[-1][1]).__name__ if hasattr(final, "steps") else type(final).__name__
    return SearchResult(pipeline=pipeline, best_name=f"pycaret:{name}", metrics=metrics, leaderboard=leaderboard, classes=classes,
                        details={"validation": "PyCaret 3-fold CV on 80%, scored on the 20% holdout", "backend": "pycaret",
                                 "search_seconds": round(time.perf_counter() - started, 3), "final_fit_rows": int(len(X)),
                                 "holdout_basis": f"{round(100 * len(valid) / len(X))} % {'time-ordered' if time_column else 'random'} holdout, "
                                                  f"{len(valid):,} rows"},
                        holdout=holdout_predictions(y, valid, held_out, classes))
