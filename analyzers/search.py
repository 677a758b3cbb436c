"""Model search: candidates compared on a holdout, within a time budget, best refit on all rows."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from analyzers.preprocess import build_preprocessor


@dataclass
class Candidate:
    name: str
    make: Callable[[], object]
    preprocessing: str = "tree"  # or "linear"


def regression_candidates(n_jobs: int, seed: int) -> list[Candidate]:
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import RidgeCV

    return [
        Candidate("ridge", lambda: RidgeCV(alphas=np.logspace(-3, 3, 13)), "linear"),
        Candidate("lightgbm", lambda: LGBMRegressor(n_estimators=300, learning_rate=0.05, num_leaves=31, n_jobs=n_jobs, random_state=seed, verbose=-1)),
        Candidate("random_forest", lambda: RandomForestRegressor(n_estimators=200, min_samples_leaf=2, n_jobs=n_jobs, random_state=seed)),
    ]


def classification_candidates(n_jobs: int, seed: int) -> list[Candidate]:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return [
        Candidate("logistic_regression", lambda: LogisticRegression(max_iter=2000, class_weight="balanced"), "linear"),
        Candidate("lightgbm", lambda: LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, class_weight="balanced", n_jobs=n_jobs, random_state=seed, verbose=-1)),
        Candidate("random_forest", lambda: RandomForestClassifier(n_estimators=200, min_samples_leaf=1, class_weight="balanced", n_jobs=n_jobs, random_state=seed)),
    ]


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = np.abs(y_true) > 1e-12
    mape = float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero]))) if nonzero.any() else float("nan")
    return {
        "r2": float(skm.r2_score(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "mape": mape,
    }


def classification_metrics(y_true, proba: np.ndarray, classes: list) -> dict[str, float]:
    y_pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    y_true = np.asarray(y_true, dtype=object)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(skm.roc_auc_score((y_true == classes[1]).astype(int), proba[:, 1]))
        else:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    except ValueError:
        pass
    return out


@dataclass
class SearchResult:
    pipeline: Pipeline
    best_name: str
    metrics: dict[str, float]
    leaderboard: list[dict]
    classes: list | None


def holdout_split(X: pd.DataFrame, y: pd.Series, task: str, time_column: str | None, seed: int):
    """Time-ordered split when a date orders the rows, else a (stratified) random split."""
    if time_column and time_column in X.columns:
        order = pd.to_datetime(X[time_column], errors="coerce").sort_values(kind="stable").index
        cut = int(len(order) * 0.8)
        return X.loc[order[:cut]], X.loc[order[cut:]], y.loc[order[:cut]], y.loc[order[cut:]]
    stratify = None
    if task == "classification":
        counts = y.value_counts()
        if counts.min() >= 2 and len(counts) <= len(y) * 0.2:
            stratify = y
    return train_test_split(X, y, test_size=0.2, random_state=seed, stratify=stratify)


def search(X: pd.DataFrame, y: pd.Series, task: str, plan: dict, candidates: list[Candidate], time_budget_s: float, seed: int = 0, time_column: str | None = None) -> SearchResult:
    """Fit every candidate on the training part, score on the holdout, refit the best on all rows."""
    X_train, X_valid, y_train, y_valid = holdout_split(X, y, task, time_column, seed)
    classes = sorted(pd.unique(y).tolist(), key=str) if task == "classification" else None
    start = time.perf_counter()
    leaderboard, best = [], None
    for candidate in candidates:
        if leaderboard and time.perf_counter() - start > time_budget_s:
            leaderboard.append({"model": candidate.name, "skipped": "time budget spent"})
            continue
        pipeline = Pipeline([("prep", build_preprocessor(plan, candidate.preprocessing)), ("model", candidate.make())])
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.fit(X_train, _encode(y_train, classes))
                scores = _evaluate(pipeline, X_valid, y_valid, task, classes)
        except (ValueError, np.linalg.LinAlgError) as exc:
            leaderboard.append({"model": candidate.name, "error": str(exc).splitlines()[0][:200]})
            continue
        row = {"model": candidate.name, **{k: round(v, 6) for k, v in scores.items()}, "fit_seconds": round(time.perf_counter() - t0, 3)}
        leaderboard.append(row)
        key = "r2" if task == "regression" else "f1"
        if best is None or scores[key] > best[1][key]:
            best = (candidate, scores, pipeline)
    if best is None:
        raise ValueError("every candidate model failed: " + "; ".join(r.get("error", "") for r in leaderboard))
    candidate, scores, _ = best
    final = Pipeline([("prep", build_preprocessor(plan, candidate.preprocessing)), ("model", candidate.make())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final.fit(X, _encode(y, classes))
    if task == "classification":
        final = ClassLabelPipeline(final, classes)
    return SearchResult(pipeline=final, best_name=candidate.name, metrics=scores, leaderboard=leaderboard, classes=classes)


def _encode(y: pd.Series, classes):
    if classes is None:
        return y.astype(float).to_numpy()
    lookup = {c: i for i, c in enumerate(classes)}
    return y.map(lookup).to_numpy()


def _evaluate(pipeline, X_valid, y_valid, task, classes) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(y_valid, pipeline.predict(X_valid))
    proba = _full_proba(pipeline, X_valid, len(classes))
    return classification_metrics(y_valid, proba, classes)


def _full_proba(pipeline, X, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, also those absent from the training part."""
    proba = pipeline.predict_proba(X)
    seen = pipeline.classes_ if hasattr(pipeline, "classes_") else pipeline.named_steps["model"].classes_
    full = np.zeros((len(X), n_classes))
    full[:, np.asarray(seen, dtype=int)] = proba
    return full


class ClassLabelPipeline:
    """Wraps a pipeline trained on class codes so it predicts probabilities for every class label."""

    def __init__(self, pipeline: Pipeline, classes: list):
        self.pipeline = pipeline
        self.classes_ = list(classes)

    def predict_proba(self, X) -> np.ndarray:
        return _full_proba(self.pipeline, X, len(self.classes_))

    def predict(self, X):
        return np.asarray(self.classes_, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    @property
    def named_steps(self):
        return self.pipeline.named_steps
