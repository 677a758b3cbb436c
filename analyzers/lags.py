"""Lag and rolling features of the target that never look ahead.

When the target's own past is known at scoring time (yesterday's demand when predicting today's: the user
says so with ``--lags`` or the sidecar key ``lags``), each row gets, from strictly earlier time stamps of the
same entity only:

- ``<target> (previous)``: the target at the entity's latest earlier time stamp (averaged over its rows there);
- ``<target> (mean of previous N)``: the mean over the entity's last N earlier time stamps.

Rows of the same time stamp never feed each other, nor do later ones. ``score`` replays the same features
from the batch's own history: rows with the target filled in are history, the others are predicted; a
batch without the target column or without any history before the rows it predicts is refused with one
sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analyzers.validation import as_stamps

ROLLING_PERIODS = 7


@dataclass
class LagSpec:
    target: str
    time_column: str
    entity: tuple = ()
    window: int = ROLLING_PERIODS

    @property
    def columns(self) -> list[str]:
        return [f"{self.target} (previous)", f"{self.target} (mean of previous {self.window})"]

    def to_dict(self) -> dict:
        return {**asdict(self), "entity": list(self.entity), "columns": self.columns}

    @classmethod
    def from_dict(cls, data: dict) -> LagSpec:
        return cls(data["target"], data["time_column"], tuple(data.get("entity") or ()), int(data.get("window", ROLLING_PERIODS)))

    def sentence(self) -> str:
        per = f" of the same {'+'.join(self.entity)}" if self.entity else ""
        return (f"lag features of {self.target!r} from strictly earlier {self.time_column!r} stamps{per} "
                f"(the previous value and the mean of the previous {self.window}); scoring replays them from the batch's own history")


def add_lag_features(frame: pd.DataFrame, spec: LagSpec, scoring: bool = False) -> pd.DataFrame:
    """``frame`` with the spec's columns added (a copy). ``scoring``: refuse, in one sentence, a batch that lacks the history."""
    from automodel.errors import ScoringError

    if spec.target not in frame.columns:
        if scoring:
            raise ScoringError(f"The model uses earlier values of {spec.target!r} (lag features): add the {spec.target!r} column with "
                               f"the known past values, and leave it empty on the rows to predict.")
        raise ValueError(f"lag features need the target {spec.target!r}")
    missing = [c for c in (spec.time_column, *spec.entity) if c not in frame.columns]
    if missing:
        raise ScoringError(f"The model's lag features follow column {missing[0]!r}, which this file lacks; add it.")
    stamps = as_stamps(frame[spec.time_column]).reset_index(drop=True)
    target = pd.to_numeric(frame[spec.target], errors="coerce").reset_index(drop=True)
    if spec.entity:
        entity = frame[list(spec.entity)].astype(str).agg("\x1f".join, axis=1).reset_index(drop=True)
    else:
        entity = pd.Series("", index=stamps.index)
    if scoring:
        to_predict = target.isna()
        history = target.notna()
        if to_predict.any() and (not history.any() or stamps[history].min() >= stamps[to_predict].max()):
            raise ScoringError(f"The model uses earlier values of {spec.target!r} (lag features), but this file has no rows with "
                               f"{spec.target!r} filled in before the rows to predict; include the recent history and score again.")
    rows = pd.DataFrame({"t": stamps, "e": entity, "y": target, "pos": np.arange(len(frame))})
    known = rows.dropna(subset=["y", "t"]).groupby(["e", "t"], sort=True)["y"].mean().reset_index()
    known["rolling"] = known.groupby("e")["y"].transform(lambda v: v.rolling(spec.window, min_periods=1).mean())
    known = known.rename(columns={"t": "t_known"}).sort_values("t_known", kind="stable")
    left = rows.dropna(subset=["t"]).sort_values("t", kind="stable")
    # The latest known stamp strictly before each row's own: never the row's stamp, never a later one.
    joined = pd.merge_asof(left, known, left_on="t", right_on="t_known", by="e", allow_exact_matches=False, direction="backward",
                           suffixes=("", "_known"))
    previous = np.full(len(frame), np.nan)
    rolling = np.full(len(frame), np.nan)
    previous[joined["pos"].to_numpy()] = joined["y_known"].to_numpy(dtype=float)
    rolling[joined["pos"].to_numpy()] = joined["rolling"].to_numpy(dtype=float)
    out = frame.copy()
    out[spec.columns[0]] = previous
    out[spec.columns[1]] = rolling
    return out
