"""Leakage guards: columns that would make a model look better than it can be on new data.

A column is left out, with its reason, when it is
- identifier-like: an integer column unique per row and ordered like a row number; or
- a copy of the target in disguise: alone it predicts the held-out target almost exactly AND it is (nearly) a
  relabelling or a monotone transform of it: a one-to-one recoding of the classes, a number that sorts the rows
  like the target (a price in another currency), or a number the classes are cut from (a delay and "late").

A strong many-to-one predictor is not a leak: many dog breeds map to one species, many zip codes to one state.
Such a column stays in the model and is reported as suspected, so a person can decide (``--drop COL``); a column
the user keeps (``--keep COL``) is never left out by the guard. Whether a column was recorded after the fact
cannot be told from its values; that is the user's call, and the notes name every suspect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from automodel.ingest.roles import is_number

LEAK_R2 = 0.98
LEAK_BALANCED_ACCURACY = 0.98
MONOTONE_SPEARMAN = 0.99  # |rank correlation| of a number with a numeric target: a monotone transform
RELABEL_LEVELS = 1.5  # at most this many distinct values per class: a relabelling, not a hierarchy
SAMPLE_ROWS = 5_000


def identifier_like(series: pd.Series) -> str | None:
    present = series.dropna()
    if len(present) < 20 or not pd.api.types.is_integer_dtype(present) and not (
            pd.api.types.is_float_dtype(present) and (present % 1 == 0).all()):
        return None
    if present.nunique() < 0.99 * len(present):
        return None
    steps = np.diff(present.to_numpy(dtype=float))
    if len(steps) and (np.all(steps > 0) or np.all(steps < 0)):
        return "identifier-like: unique per row and ordered like a row number"
    return None


def _single_column_score(x: pd.Series, y: pd.Series, task: str, seed: int, max_leaves: int = 256) -> float:
    """Held-out R² (regression) or balanced accuracy (classification) of a model that sees only ``x``."""
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed)
    if is_number(x):
        fill = float(np.nanmin(x.to_numpy(dtype=float))) - 1 if x.notna().any() else 0.0
        model_cls = DecisionTreeRegressor if task == "regression" else DecisionTreeClassifier
        model = model_cls(max_leaf_nodes=max_leaves, min_samples_leaf=2, random_state=seed)
        model.fit(x_train.astype(float).fillna(fill).to_frame(), y_train)
        predicted = model.predict(x_test.astype(float).fillna(fill).to_frame())
    else:  # a category's mean (or majority) target, learnt on the training part
        keys_train, keys_test = x_train.astype(str), x_test.astype(str)
        if task == "regression":
            lookup = y_train.groupby(keys_train).mean()
            predicted = keys_test.map(lookup).fillna(y_train.mean()).to_numpy()
        else:
            lookup = y_train.groupby(keys_train).agg(lambda s: s.value_counts().index[0])
            predicted = keys_test.map(lookup).fillna(y_train.value_counts().index[0]).to_numpy()
    if task == "regression":
        from sklearn.metrics import r2_score

        return float(r2_score(y_test.astype(float), predicted.astype(float)))
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_test.astype(str), pd.Series(predicted).astype(str)))


def _copy_of_target(x: pd.Series, y: pd.Series, task: str, seed: int) -> str | None:
    """Why ``x`` is the target in disguise, or None when it is a strong but legitimate (many-to-one) predictor."""
    present = x.notna()
    if task == "regression":
        if is_number(x):
            rho = pd.Series(x[present].astype(float).to_numpy()).corr(pd.Series(y[present].to_numpy()), method="spearman")
            if abs(rho) >= MONOTONE_SPEARMAN:
                return f"a monotone transform of the target (rank correlation {rho:.3f})"
            return None
        levels, values = x[present].astype(str).nunique(), y[present].nunique()
        return f"a relabelling of the target ({levels} values for {values} target values)" if levels >= 0.5 * values else None
    classes = y[present].nunique()
    if is_number(x):
        # Classes cut from the number: a tree with one split per class boundary separates them.
        if _single_column_score(x[present], y[present], task, seed, max_leaves=max(classes, 2)) >= LEAK_BALANCED_ACCURACY:
            return f"a number the classes are cut from ({classes} ranges)"
        return None
    levels = x[present].astype(str).nunique()
    if levels <= RELABEL_LEVELS * classes:
        return f"a relabelling of the classes ({levels} values for {classes} classes)"
    return None


def find_leaks(df: pd.DataFrame, target: str, task: str, features: list[str], seed: int = 0,
               keep: tuple | list = ()) -> dict[str, str]:
    """Column -> reason for every feature that is identifier-like or a copy of the target (see the module docstring).
    Strong many-to-one predictors are in :func:`leakage_report`'s ``suspected``, not here."""
    return leakage_report(df, target, task, features, seed, keep)["leaks"]


def leakage_report(df: pd.DataFrame, target: str, task: str, features: list[str], seed: int = 0,
                   keep: tuple | list = ()) -> dict[str, dict[str, str]]:
    """``leaks``: columns to leave out, with the reason; ``suspected``: columns that predict the target almost exactly on
    their own but stay in the model (many-to-one, or kept by the user), with the reason."""
    out: dict[str, dict[str, str]] = {"leaks": {}, "suspected": {}}
    labelled = df[df[target].notna()]
    if len(labelled) > SAMPLE_ROWS:
        labelled = labelled.sample(SAMPLE_ROWS, random_state=seed)
    if len(labelled) < 30:
        return out
    y = labelled[target] if task == "regression" else labelled[target].astype(str)
    if task == "regression":
        y = pd.to_numeric(y, errors="coerce")
        if y.isna().any() or y.nunique() < 3:
            return out
    keep = set(keep or ())
    measure = "R²" if task == "regression" else "balanced accuracy"
    for col in features:
        if col not in labelled.columns:
            continue
        why = identifier_like(df[col])
        if why:
            (out["suspected"] if col in keep else out["leaks"])[col] = why + ("; kept by the user" if col in keep else "")
            continue
        x = labelled[col]
        if x.nunique(dropna=True) < 2 or pd.api.types.is_datetime64_any_dtype(x):
            continue
        try:
            score = _single_column_score(x, y, task, seed)
            if score < (LEAK_R2 if task == "regression" else LEAK_BALANCED_ACCURACY):
                continue
            copy = _copy_of_target(x, y, task, seed)
        except (ValueError, TypeError):
            continue
        alone = f"predicts {target!r} almost exactly on its own (held-out {measure} {score:.3f})"
        if copy and col not in keep:
            out["leaks"][col] = f"{alone} and is {copy}; likely leakage (keep it with --keep {col})"
        elif copy:
            out["suspected"][col] = f"{alone} and is {copy}; kept by the user"
        else:
            out["suspected"][col] = (f"{alone}; kept: many of its values map to each target value (a hierarchy, not a copy); "
                                     f"leave it out with --drop {col} if it is recorded after the outcome")
    return out
