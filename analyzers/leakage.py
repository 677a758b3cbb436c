"""Leakage guards: columns that would make a model look better than it can be on new data.

Two kinds are flagged and left out, each with its reason:
- identifier-like columns: integer columns that are unique per row and ordered like a row number;
- near-perfect single-column predictors of the target (a copy of the target in another unit, an
  outcome recorded after the fact): one column alone predicts the held-out target almost exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

LEAK_R2 = 0.98
LEAK_BALANCED_ACCURACY = 0.98
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


def _single_column_score(x: pd.Series, y: pd.Series, task: str, seed: int) -> float:
    """Held-out R² (regression) or balanced accuracy (classification) of a model that sees only ``x``."""
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed)
    if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
        fill = float(np.nanmin(x.to_numpy(dtype=float))) - 1 if x.notna().any() else 0.0
        model_cls = DecisionTreeRegressor if task == "regression" else DecisionTreeClassifier
        model = model_cls(max_leaf_nodes=256, min_samples_leaf=2, random_state=seed)
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


def find_leaks(df: pd.DataFrame, target: str, task: str, features: list[str], seed: int = 0) -> dict[str, str]:
    """Column -> reason for every feature that is identifier-like or predicts the target near-perfectly alone."""
    labelled = df[df[target].notna()]
    if len(labelled) > SAMPLE_ROWS:
        labelled = labelled.sample(SAMPLE_ROWS, random_state=seed)
    if len(labelled) < 30:
        return {}
    y = labelled[target] if task == "regression" else labelled[target].astype(str)
    if task == "regression":
        y = pd.to_numeric(y, errors="coerce")
        if y.isna().any() or y.nunique() < 3:
            return {}
    reasons: dict[str, str] = {}
    for col in features:
        if col not in labelled.columns:
            continue
        why = identifier_like(df[col])
        if why:
            reasons[col] = why
            continue
        x = labelled[col]
        if x.nunique(dropna=True) < 2 or pd.api.types.is_datetime64_any_dtype(x):
            continue
        try:
            score = _single_column_score(x, y, task, seed)
        except (ValueError, TypeError):
            continue
        limit = LEAK_R2 if task == "regression" else LEAK_BALANCED_ACCURACY
        if score >= limit:
            measure = "R²" if task == "regression" else "balanced accuracy"
            reasons[col] = f"predicts {target!r} almost exactly on its own (held-out {measure} {score:.3f}); likely leakage"
    return reasons
