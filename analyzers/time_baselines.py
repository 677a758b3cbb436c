"""Baselines for time-ordered rows: what a person would predict for the next period without a model.

Each is fitted on the training period and scored on the same held-out rows (the latest period) as the model,
by the same headline metric (R² or macro F1):

- ``training-period mean`` (the majority class for classifiers);
- ``last value``: each entity's last known value (without an entity, the last training period's mean or
  majority);
- ``seasonal naive``: the mean (majority) of the training rows of the same season: the hour of the day for
  stamps finer than a day, the day of the week for daily stamps, the month for monthly ones; per entity when
  there is one, falling back to the season alone and then to the mean.

The model must beat the best of them to be trusted (analyzers.supervised).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from analyzers.validation import as_stamps


def season_of(stamps: pd.Series) -> tuple[str, pd.Series] | None:
    """The calendar part that repeats in these stamps, named, or None for yearly and irregular ones."""
    present = stamps.dropna()
    distinct = np.sort(present.unique())
    if len(distinct) < 3:
        return None
    usual = float(np.median(np.diff(distinct).astype("timedelta64[s]").astype(np.int64)))
    if usual < 86400:
        return "hour of the day", stamps.dt.hour
    if usual < 7 * 86400:
        return "day of the week", stamps.dt.dayofweek
    if usual < 365 * 86400:
        return "month of the year", stamps.dt.month
    return None


def _score(task: str, actual: np.ndarray, predicted: np.ndarray) -> float:
    if task == "regression":
        return float(skm.r2_score(actual.astype(float), predicted.astype(float)))
    return float(skm.f1_score(actual.astype(str), predicted.astype(str), average="macro", zero_division=0))


def _summary(task: str, values: pd.Series):
    if task == "regression":
        return float(values.astype(float).mean())
    return values.astype(str).mode().iloc[0]


def time_order_baselines(stamps_column: pd.Series, y: pd.Series, train: np.ndarray, valid: np.ndarray, task: str,
                         entities: np.ndarray | None = None) -> list[dict]:
    """[{"model", "metric", "score", "rows"}] for each baseline that applies, scored on ``valid`` after fitting on ``train``
    (positions into ``y``)."""
    if len(train) == 0 or len(valid) == 0:
        return []
    stamps = as_stamps(stamps_column.reset_index(drop=True))
    y = y.reset_index(drop=True)
    metric = "r2" if task == "regression" else "f1"
    y_train, actual = y.iloc[train], y.iloc[valid].to_numpy()
    overall = _summary(task, y_train)
    out = [{"model": "training-period mean" if task == "regression" else "training-period majority class", "metric": metric,
            "score": _score(task, actual, np.full(len(valid), overall, dtype=object)), "rows": int(len(valid))}]
    # Last value: each entity's last training row, else the last training period's summary.
    train_frame = pd.DataFrame({"t": stamps.iloc[train].to_numpy(), "y": y_train.to_numpy()})
    last_period = train_frame["t"].max()
    last = _summary(task, train_frame.loc[train_frame["t"] == last_period, "y"])
    if entities is not None:
        train_frame["e"] = np.asarray(entities)[train]
        latest = train_frame.sort_values("t", kind="stable").groupby("e")["y"].last()
        predicted = pd.Series(np.asarray(entities)[valid]).map(latest).to_numpy(dtype=object)
        predicted = np.where(pd.isna(predicted), last, predicted)
        name = "last value (of the same entity)"
    else:
        predicted = np.full(len(valid), last, dtype=object)
        name = "last value (the last training period)"
    out.append({"model": name, "metric": metric, "score": _score(task, actual, predicted), "rows": int(len(valid))})
    season = season_of(stamps.iloc[train])
    if season is not None:
        label, parts = season
        parts = stamps.pipe(lambda s: {"hour of the day": s.dt.hour, "day of the week": s.dt.dayofweek,
                                       "month of the year": s.dt.month}[label]).to_numpy()
        train_frame["s"] = parts[train]
        by_season = train_frame.groupby("s")["y"].agg(lambda v: _summary(task, v))
        predicted = pd.Series(parts[valid]).map(by_season).to_numpy(dtype=object)
        if entities is not None:
            by_both = train_frame.groupby(["e", "s"])["y"].agg(lambda v: _summary(task, v))
            keys = pd.MultiIndex.from_arrays([np.asarray(entities)[valid], parts[valid]])
            both = pd.Series(by_both.reindex(keys).to_numpy(dtype=object))
            predicted = np.where(both.isna(), predicted, both.to_numpy(dtype=object))
        predicted = np.where(pd.isna(predicted), overall, predicted)
        out.append({"model": f"seasonal naive (same {label}{', same entity' if entities is not None else ''})", "metric": metric,
                    "score": _score(task, actual, predicted), "rows": int(len(valid))})
    return out
