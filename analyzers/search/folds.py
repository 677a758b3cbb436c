"""Validation schemes: cross-validation folds on small tables, holdouts on larger ones (time-ordered when a date orders
the rows), the preprocessed matrices per fold, and the held-out predictions a report shows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from analyzers.preprocess import build_preprocessor
from analyzers.validation import as_stamps, forward_folds, grouped_folds, grouped_holdout, latest_holdout

SMALL_TABLE_ROWS = 4_000  # below this, cross-validation; above, holdout + successive halving
SMALL_TABLE_FOLDS = 5
MIN_RUNG_ROWS = 2_000  # the smallest row sample successive halving and the large-table plan fit


def time_order(X: pd.DataFrame, time_column: str | None) -> np.ndarray | None:
    if not time_column or time_column not in X.columns:
        return None
    stamps = as_stamps(X[time_column])  # dates, times, or whole-number years
    return np.argsort(stamps.to_numpy(dtype="datetime64[ns]"), kind="stable")


def strata(y: pd.Series) -> np.ndarray:
    """Class labels as integer codes (booleans and mixed objects confuse sklearn's splitters)."""
    return pd.factorize(y.astype(str))[0]


def can_stratify(y: pd.Series, folds: int) -> bool:
    counts = y.value_counts()
    return counts.min() >= folds and len(counts) <= len(y) * 0.2


def holdout_positions(X, y, task, time_column, seed, valid_share: float = 0.2, groups: np.ndarray | None = None):
    if time_column and time_column in X.columns:
        # The latest periods, whole (rows of one day never on both sides), after a gap (analyzers.validation).
        return latest_holdout(as_stamps(X[time_column]).to_numpy(), valid_share)
    if groups is not None:
        return grouped_holdout(groups, valid_share, seed)
    positions = np.arange(len(X))
    stratify = strata(y) if task == "classification" and can_stratify(y, 2) else None
    train, valid = train_test_split(positions, test_size=valid_share, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(valid)


def validation_folds(X: pd.DataFrame, y: pd.Series, task: str, time_column: str | None, seed: int,
                     groups: np.ndarray | None = None) -> tuple[list, str]:
    """(train positions, validation positions) pairs and a description of the scheme. ``groups``: entity codes, for
    grouped folds (no entity on both sides); a ``time_column`` makes forward-chaining folds cut on whole periods."""
    order = time_order(X, time_column)
    n = len(X)
    if n > SMALL_TABLE_ROWS:
        train, valid = holdout_positions(X, y, task, time_column, seed, groups=groups)
        kind = ("time-ordered holdout (the latest 20%, whole periods)" if order is not None else
                "grouped holdout (20% of the entities)" if groups is not None else "holdout (20%)")
        return [(train, valid)], kind
    if order is not None:
        folds = forward_folds(as_stamps(X[time_column]).to_numpy(), n_folds=4)
        return folds, f"forward-chaining time-series CV ({len(folds)} folds cut on whole periods; the last is the latest period)"
    k = SMALL_TABLE_FOLDS
    if groups is not None:
        folds = grouped_folds(groups, k, seed, strata(y) if task == "classification" and can_stratify(y, k) else None)
        return folds, f"grouped {len(folds)}-fold CV (no entity in both training and validation)"
    if task == "classification" and can_stratify(y, k):
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), strata(y))), f"stratified {k}-fold CV"
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n))), f"{k}-fold CV"


class PreparedFolds:
    """Preprocessed matrices per fold and preprocessing kind, computed once and shared by candidates."""

    def __init__(self, X, y_codes, folds, plan, task):
        self.X, self.y, self.folds, self.plan, self.task = X, y_codes, folds, plan, task
        self._cache: dict = {}

    def get(self, fold: int, kind: str):
        key = (fold, kind)
        if key not in self._cache:
            train, valid = self.folds[fold]
            prep = build_preprocessor(self.plan, kind, self.task)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Xt = np.asarray(prep.fit_transform(self.X.iloc[train], self.y[train]), dtype=np.float32)
                Xv = np.asarray(prep.transform(self.X.iloc[valid]), dtype=np.float32)
            self._cache[key] = (prep, Xt, Xv)
        return self._cache[key]


def encode_target(y: pd.Series, classes):
    if classes is None:
        return y.astype(float).to_numpy()
    lookup = {c: i for i, c in enumerate(classes)}
    return y.map(lookup).to_numpy().astype(int)


def holdout_predictions(y: pd.Series, positions: np.ndarray, predicted: np.ndarray, classes: list | None,
                        fold: np.ndarray | None = None) -> pd.DataFrame:
    """One row per held-out row: ``row`` (position in ``y``), ``actual``, ``prediction`` and, for classifiers,
    ``proba_<class>`` in the order of ``classes``, then ``fold``, where given: the validation fold that held the row out.
    ``predicted`` holds numbers (regression) or class-code probabilities (classification), row-aligned with ``positions``."""
    positions = np.asarray(positions, dtype=int)
    out = pd.DataFrame({"row": positions, "actual": y.iloc[positions].to_numpy()})
    if classes is None:
        out["prediction"] = np.asarray(predicted, dtype=float)
    else:
        proba = np.asarray(predicted, dtype=float)
        out["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
        for i, cls in enumerate(classes):
            out[f"proba_{cls}"] = proba[:, i]
    if fold is not None:
        out["fold"] = np.asarray(fold, dtype=int)
    return out


def fold_of_rows(folds: list, positions: np.ndarray) -> np.ndarray:
    """The validation fold (0..len(folds)-1) of each of ``positions``, which every fold's validation part covers."""
    fold_of = np.full(int(max(np.max(v) for _, v in folds)) + 1, -1)
    for number, (_, valid) in enumerate(folds):
        fold_of[valid] = number
    return fold_of[np.asarray(positions, dtype=int)]


def holdout_basis(folds: list, time_ordered: bool, n_held_out: int, n_rows: int, grouped: bool = False) -> str:
    """What the held-out predictions are, in words a person reads next to a metric."""
    if len(folds) == 1:
        share = round(100 * n_held_out / max(n_rows, 1))
        kind = ("time-ordered holdout (the latest periods)" if time_ordered else
                "grouped holdout (entities never seen in training)" if grouped else "random holdout")
        return f"{share} % {kind}, {n_held_out:,} rows"
    if time_ordered:
        return (f"the latest period, {len(folds[-1][1]):,} rows, after training on every earlier period (the last of "
                f"{len(folds)} forward-chaining folds)")
    if grouped:
        return f"grouped {len(folds)}-fold out-of-fold predictions (each entity held out whole), {n_held_out:,} rows"
    return f"{len(folds)}-fold out-of-fold predictions, {n_held_out:,} rows"
