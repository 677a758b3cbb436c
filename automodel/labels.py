"""The target's labels as the user wrote them.

Cleaning types columns for modelling: a two-valued ``Yes``/``No`` column becomes booleans. For a feature that is
right; for the target it would make predictions, ``proba_<class>`` columns, metrics and reports speak in ``True``/
``False`` instead of the user's own words. So the profile records, for the target, how each cleaned value was
written in the input (its most frequent spelling), and the enriched frame, the model and every output use those
labels. A target that was boolean in the input (a parquet ``bool`` column) stays boolean.

Class order is stable and documented: classes are sorted by their text (``No`` before ``Yes``); for two classes
the second one is the positive class of ROC-AUC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _is_boolean(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series) or str(series.dtype) == "boolean"


def written_labels(raw: pd.Series | None, cleaned: pd.Series) -> dict[str, str] | None:
    """Cleaned value (as text) -> the label as the input wrote it, when cleaning changed how the values are written;
    None when it did not (or the input itself was boolean)."""
    if raw is None or len(raw) != len(cleaned) or _is_boolean(raw) or not _is_boolean(cleaned):
        return None
    pairs = pd.DataFrame({"clean": cleaned.to_numpy(dtype=object), "raw": raw.to_numpy(dtype=object)})
    pairs = pairs[pairs["clean"].notna() & pairs["raw"].notna()]
    if pairs.empty:
        return None
    pairs["raw"] = pairs["raw"].astype(str).str.strip()
    labels = {}
    for value, spellings in pairs.groupby(pairs["clean"].astype(str))["raw"]:
        labels[str(value)] = str(spellings.value_counts().index[0])  # the most frequent spelling, ties by first seen
    return labels if len(set(labels.values())) == len(labels) else None


def restore_labels(frame: pd.DataFrame, column: str | None, labels: dict[str, str] | None) -> pd.DataFrame:
    """A copy of ``frame`` whose ``column`` holds the user's labels; the frame itself is not changed."""
    if not labels or not column or column not in frame.columns:
        return frame
    out = frame.copy()
    values = out[column].astype(object)
    out[column] = [labels.get(str(v), v) if v is not None and v is not pd.NA and not (isinstance(v, float) and np.isnan(v)) else np.nan
                   for v in values]
    out[column] = out[column].astype(object)
    return out
