"""Join keys at the grain of the user's table.

A key found by the search may not tell the user's rows apart: first names repeat across the series of a
baking contest, so a lake table of (series, baker, episode) rows joined on the name alone mixes the
bakers of every series into each row. When the key's columns are not unique in the user's table but
become unique with another column both tables share (same name, values found in the lake),
``composite_alternatives`` offers that composite key; enrichment tries both and keeps the one whose
cross-validated lift is higher.

A column whose cells list several values is never a key (``automodel.lake.list_cells``).
"""

from __future__ import annotations

import re

import pandas as pd

from automodel.lake.keys import compute_key
from automodel.lake.list_cells import is_list_valued
from automodel.lake.matches import KeyMatch

MIN_COMPOSITE_CONTAINMENT = 0.5
UNIQUE_SHARE = 0.98  # distinct combinations per user row for a composite to be "the user's grain"
MAX_ALTERNATIVES = 2


def _name(column) -> str:
    return re.sub(r"[^0-9a-z]+", "", str(column).lower())


def _shareable(series: pd.Series) -> bool:
    """A column that can sit beside a key: a code, a category or a whole number, not a measurement or a moment."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return False
    if pd.api.types.is_float_dtype(series):
        present = series.dropna()
        return bool(len(present)) and bool((present % 1 == 0).all())
    return True


def composite_alternatives(frame: pd.DataFrame, key, lake: pd.DataFrame, target: str | None = None) -> list:
    """Composite keys at the user's grain for a search hit's key (a ``KeyMatch``), best containment first.

    Offered only when the key does not tell the user's rows apart; each adds one column that the lake table
    also has (same name, normalised) and that makes the user's rows (nearly) unique."""
    if key is None or key.strategy != "direct" or not key.user_recipe or not key.lake_recipe:
        return []
    try:
        user_key = compute_key(frame, key.user_columns, key.user_recipe)
        lake_key = compute_key(lake, key.lake_columns, key.lake_recipe)
    except (KeyError, ValueError):
        return []
    present = user_key.notna()
    rows = int(present.sum())
    if rows < 2 or user_key[present].nunique() >= UNIQUE_SHARE * rows:
        return []  # the key already tells the user's rows apart
    lake_by_name = {_name(c): c for c in lake.columns if c not in key.lake_columns}
    found = []
    for column in frame.columns:
        if column in key.user_columns or column == target or _name(column) not in lake_by_name:
            continue
        lake_column = lake_by_name[_name(column)]
        if not (_shareable(frame[column]) and _shareable(lake[lake_column])) or is_list_valued(frame[column]):
            continue
        user_values = (user_key + "|" + compute_key(frame, [column], "generic")).where(present, None)
        user_values = user_values.where(user_values.notna() & compute_key(frame, [column], "generic").notna(), None)
        usable = user_values.dropna()
        if usable.nunique() < UNIQUE_SHARE * rows:
            continue  # the pair does not reach the user's grain either
        lake_values = (lake_key + "|" + compute_key(lake, [lake_column], "generic")).dropna()
        distinct = pd.unique(usable)
        containment = float(pd.Series(distinct).isin(set(lake_values)).mean())
        if containment < MIN_COMPOSITE_CONTAINMENT:
            continue
        found.append(KeyMatch([*key.user_columns, column], [*key.lake_columns, lake_column], f"{key.kind}+generic", key.strategy,
                              round(containment, 4), len(distinct), round(lake_values.nunique() / max(len(lake), 1), 4), key.bridge,
                              user_recipe=f"{key.user_recipe}&generic", lake_recipe=f"{key.lake_recipe}&generic", weight=key.weight))
    found.sort(key=lambda m: -m.containment)
    return found[:MAX_ALTERNATIVES]
