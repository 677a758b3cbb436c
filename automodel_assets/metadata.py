"""Typed Dagster metadata: sortable tables, numbers that keep their type across partitions, links.

A value that does not exist for a partition (no lift without a kept enrichment, no reused model) is
left out rather than written as "n/a" or "None", so a metadata key has one type in every partition
and the UI can plot it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real

import dagster as dg
import pandas as pd


def cell(value):
    """A table cell: str, int, float, bool or None (NaN and infinities become None; numpy scalars their Python value)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (list, tuple, dict)):
        try:
            value = item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, bool):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _column_type(values: list) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def table(rows: Iterable[Mapping], columns: list[str] | None = None) -> dg.MetadataValue:
    """A sortable table from dict rows; a column keeps one type (mixed columns become text)."""
    rows = [dict(r) for r in rows]
    if columns is None:
        columns = []
        for row in rows:
            columns += [str(k) for k in row if str(k) not in columns]
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    types = [_column_type([r[i] for r in cells]) for i in range(len(columns))]
    for r in cells:
        for i, kind in enumerate(types):
            if kind == "string" and r[i] is not None and not isinstance(r[i], str):
                r[i] = str(r[i])
            elif kind == "float" and isinstance(r[i], int):
                r[i] = float(r[i])
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in zip(columns, types)])
    return dg.MetadataValue.table(records=[dg.TableRecord(dict(zip(columns, r))) for r in cells], schema=schema)


def frame_table(frame, limit: int = 10) -> dg.MetadataValue:
    """The first ``limit`` rows of a DataFrame as a table, its columns named as the input wrote them."""
    head = frame.head(limit)
    return table(head.to_dict(orient="records"), [str(c) for c in head.columns])


def pairs_table(values: Mapping, key: str = "name", value: str = "value") -> dg.MetadataValue:
    return table([{key: k, value: v} for k, v in values.items()], [key, value])


def numbers(values: Mapping, prefix: str) -> dict[str, float | int]:
    """``{prefix}/{name}`` entries for the finite numbers among ``values`` (others are left out, not "n/a")."""
    out = {}
    for name, value in values.items():
        number = cell(value)
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            out[f"{prefix}/{name}"] = float(number)
    return out


def present(**values) -> dict:
    """The entries whose value exists (not None, not NaN): a missing value is absent, never a placeholder."""
    return {k: v for k, v in values.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
