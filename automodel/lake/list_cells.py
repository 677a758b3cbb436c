"""Cells that hold lists: a cell listing several values (``"Lea, Mark"``) is not one key value.

Matched whole it would meet nothing, or the wrong row. ``is_list_valued`` finds such columns (a share of cells
holding a separator, whose items appear elsewhere in the column as whole cells, or are a minority whose items are
as long as the single cells) so that they are never used as join keys.
"""

from __future__ import annotations

import re

import pandas as pd

LIST_SEPARATOR = re.compile(r"\s*[,;|]\s*")  # not "&" or "and": "Procter & Gamble" is one company
LIST_MIN_SHARE = 0.03  # of the distinct cells, at least this share hold a separator...
LIST_ITEMS_FOUND = 0.5  # ... and at least this share of their items are whole cells elsewhere in the column
LIST_MAX_SHARE = 0.5  # ... or, when their items are new values, the listing cells are a minority
LIST_ITEM_LENGTH = (0.5, 2.0)  # ... whose items are about as long as a single cell (median length ratio)
LIST_SAMPLE = 5000


def is_list_valued(series: pd.Series) -> bool:
    """Whether a text column's cells list several values (``"Lea, Mark"`` beside ``"Lea"`` and ``"Mark"``)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return False
    distinct = pd.Series(series.dropna().astype(str).str.strip().unique())
    if len(distinct) > LIST_SAMPLE:
        distinct = distinct.sample(LIST_SAMPLE, random_state=0)
    if len(distinct) < 5:
        return False
    listed = distinct[distinct.str.contains(LIST_SEPARATOR)]
    if len(listed) < 2 or len(listed) < LIST_MIN_SHARE * len(distinct):
        return False
    single_cells = distinct[~distinct.str.contains(LIST_SEPARATOR)]
    singles = set(single_cells.str.lower())
    items = [item.lower() for cell in listed for item in LIST_SEPARATOR.split(cell) if item]
    if not items or not all(re.search(r"[^\W\d_]", item) for item in items):
        return False  # "1,234" is a number written with a separator, not a list
    if sum(item in singles for item in items) / len(items) >= LIST_ITEMS_FOUND:
        return True
    # Items that are not found elsewhere may still be values of the same kind: mostly single cells, a minority
    # listing several, each item about as long as a single cell ("Lea, Mark" beside "Noel").
    if not len(single_cells) or len(listed) > LIST_MAX_SHARE * len(distinct):
        return False
    ratio = pd.Series([len(item) for item in items]).median() / single_cells.str.len().median()
    return LIST_ITEM_LENGTH[0] <= ratio <= LIST_ITEM_LENGTH[1]
