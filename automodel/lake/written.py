"""Join keys see a table's columns as written, before cleaning decides what a model needs.

Cleaning drops a column with one value in every row (it tells no rows apart, so a model has no use
for it), but as part of a key it can matter: a table of one year's flights has ``year`` = 2013 in
every row, and without it ``month`` and ``day`` do not make a date. Cleaning also reads times that
name their zone (``2013-01-01T05:00:00Z``, ``-05:00``) as naive UTC timestamps, so whether a time
column named its zone is only known from the values as written.

``with_written_columns`` gives key forming both: the dropped columns back (typed as cleaning types
them, with their column metadata) and the names of the time columns that named their zone. The
columns it restores are for keys only; whoever joins drops them again from the features.
"""

from __future__ import annotations

import pandas as pd

from automodel.lake.keys import ZONED_ATTR, carries_zone


def restorable_columns(frame: pd.DataFrame, written: pd.DataFrame | None) -> list[str]:
    """Columns of the table as written that cleaning left out of ``frame`` although they hold values."""
    if written is None or len(written) != len(frame):
        return []
    return [c for c in written.columns if c not in frame.columns and _has_values(written[c])]


def _has_values(series: pd.Series) -> bool:
    present = series.dropna()
    if not pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_datetime64_any_dtype(present):
        present = present[present.astype(str).str.strip() != ""]
    return bool(len(present))


KEY_ONLY_ATTR = "automodel_key_only_columns"


def restore_for_keys(frame: pd.DataFrame, written: pd.DataFrame | None) -> pd.DataFrame:
    """``frame`` with the columns cleaning dropped from ``written`` added back, typed as cleaning types them;
    their names are in ``attrs[KEY_ONLY_ATTR]`` (they may form keys, they are not features)."""
    from automodel.ingest.cleaning import clean

    restored = restorable_columns(frame, written)
    if restored:
        typed = clean(written[restored].reset_index(drop=True), protect=tuple(restored)).frame
        typed.index = frame.index
        out = pd.concat([frame, typed], axis=1)
    else:
        out = frame.copy(deep=False)
    out.attrs = {**frame.attrs, KEY_ONLY_ATTR: restored}
    return out


def with_written_columns(frame: pd.DataFrame, metas: list, written: pd.DataFrame | None) -> tuple[pd.DataFrame, list, list[str]]:
    """``frame`` and ``metas`` with the columns cleaning dropped from ``written`` added back, and the names
    of those columns; the frame's ``attrs`` name its time columns whose written values named their zone."""
    from automodel.ingest.roles import infer_column_meta

    out = restore_for_keys(frame, written)
    restored = out.attrs[KEY_ONLY_ATTR]
    if restored:
        metas = list(metas) + infer_column_meta(out[restored], written[restored].reset_index(drop=True).set_axis(out.index).astype(str))
    zoned = [c for c in out.columns if isinstance(out[c].dtype, pd.DatetimeTZDtype)
             or (pd.api.types.is_datetime64_any_dtype(out[c]) and written is not None and c in written.columns and carries_zone(written[c]))]
    out.attrs[ZONED_ATTR] = zoned
    return out, metas, restored
