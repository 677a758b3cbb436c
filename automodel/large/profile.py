"""The column profile of a table larger than memory: exact aggregates by DuckDB over every row, roles on a sample.

``column_profile`` runs one pass for the counts (rows, missing, distinct) and one query per column for its
quantiles and most frequent values, all over the Parquet parts. ``profile_table`` infers roles and the target with
the in-memory code (``automodel.stages.profile_frame``) on a sample of rows in file order, then replaces the
sample's counts by the exact ones, so the figures a user sees are those of the whole table.
"""

from __future__ import annotations

import pandas as pd

from automodel.large.table import ROW, TableRef, connect, held_out_sql, quote

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_VALUES = 5


def _family(dtype: str) -> str:
    dtype = dtype.lower()
    if dtype in ("bool", "boolean"):
        return "boolean"
    if dtype.startswith(("int", "uint", "float")):
        return "number"
    if dtype.startswith("datetime64"):
        return "datetime"
    return "text"


def column_profile(ref: TableRef, settings=None) -> dict:
    """Per column: dtype, missing count and share, distinct count; numbers: min, max, mean, std and quantiles
    (linear interpolation, as pandas); every column: its most frequent values with their counts."""
    source = f"read_parquet('{ref.glob}')"
    names = list(ref.columns)
    with connect(settings) as con:
        counts = ", ".join(f"count({quote(c)}), count(DISTINCT {quote(c)})" for c in names)
        row = con.execute(f"SELECT count(*), {counts} FROM {source}").fetchone()
        total = int(row[0])
        out: dict[str, dict] = {}
        for i, name in enumerate(names):
            present, distinct = int(row[1 + 2 * i]), int(row[2 + 2 * i])
            entry = {"dtype": ref.columns[name], "family": _family(ref.columns[name]), "missing": total - present,
                     "missing_share": round((total - present) / total, 6) if total else 0.0, "distinct": distinct}
            column = quote(name)
            if entry["family"] == "number" and present:
                q = ", ".join(str(x) for x in QUANTILES)
                low, high, mean, std, quantiles = con.execute(
                    f"SELECT min({column})::DOUBLE, max({column})::DOUBLE, avg({column}::DOUBLE), stddev_samp({column}::DOUBLE), "
                    f"quantile_cont({column}::DOUBLE, [{q}]) FROM {source}").fetchone()
                entry.update({"min": low, "max": high, "mean": mean, "std": std,
                              "quantiles": {str(p): v for p, v in zip(QUANTILES, quantiles)}})
            elif entry["family"] == "datetime" and present:
                low, high = con.execute(f"SELECT min({column}), max({column}) FROM {source}").fetchone()
                entry.update({"min": str(low), "max": str(high)})
            top = con.execute(f"SELECT {column}, count(*) AS n FROM {source} WHERE {column} IS NOT NULL GROUP BY {column} "
                              f"ORDER BY n DESC, {column} LIMIT {TOP_VALUES}").fetchall()
            whole = ref.columns[name].lower().startswith(("int", "uint"))  # stored as floats: shown as the integers they are
            entry["top_values"] = [{"value": int(v) if whole and v is not None else _plain(v), "count": int(n)} for v, n in top]
            out[name] = entry
    return {"rows": total, "columns": out}


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def sample_rows(ref: TableRef, rows: int, settings=None, columns: list[str] | None = None) -> pd.DataFrame:
    """About ``rows`` rows spread over the whole table (chosen by a hash of their position), in file order."""
    share = min(1.0, rows / max(ref.rows, 1))
    return ref.read(columns, where=None if share >= 1.0 else held_out_sql(share), settings=settings)


def sample_share(total_rows: int, rows: int) -> float:
    return min(1.0, rows / max(total_rows, 1))


def is_non_decreasing(ref: TableRef, column: str, settings=None) -> bool:
    """Whether ``column`` never decreases from one row to the next over the whole table (a time order)."""
    with connect(settings) as con:
        down = con.execute(f"SELECT count(*) FROM (SELECT {quote(column)} < lag({quote(column)}) OVER (ORDER BY {ROW}) AS down "
                           f"FROM read_parquet('{ref.glob}')) WHERE down").fetchone()[0]
    return int(down) == 0


def profile_table(ref: TableRef, raw_sample: pd.DataFrame, target: str | None, labels: dict | None, sample_rows_wanted: int,
                  reused_target: str | None = None, training_roles: dict | None = None, settings=None):
    """``automodel.stages.Profile`` of the whole table: roles and target on the sample, counts exact (DuckDB)."""
    from automodel import stages
    from automodel.errors import TargetError

    aggregates = ref.profile or column_profile(ref, settings)
    ref.profile = aggregates
    # The profile sample: the rows as loaded that cleaning kept aside, and the same rows as cleaned, in file order.
    cleaned = _rows_at(ref, raw_sample[ROW].to_numpy(), settings)
    raw = raw_sample.set_index(ROW).loc[cleaned[ROW]].reset_index(drop=True)
    frame = cleaned.drop(columns=[ROW]).reset_index(drop=True)
    if target and target not in frame.columns:
        stages.profile_frame(frame, raw, target, labels, sample_rows_wanted)  # raises the in-memory path's sentence
    if target and target in aggregates["columns"] and aggregates["columns"][target]["missing"] == aggregates["rows"]:
        raise TargetError(f"Target column {target!r} is empty in every row; choose a column with values.")
    profile = stages.profile_frame(frame, raw, target, labels, sample_rows_wanted, reused_target, training_roles)
    for meta in profile.metas:
        exact = aggregates["columns"].get(meta.name)
        if exact:
            meta.missing_count, meta.unique_count = int(exact["missing"]), int(exact["distinct"])
    if profile.time_column and not is_non_decreasing(ref, profile.time_column, settings):
        profile.time_column = None
    return profile


def _rows_at(ref: TableRef, rows, settings=None) -> pd.DataFrame:
    """The cleaned rows at these positions, in file order."""
    import numpy as np

    positions = pd.DataFrame({"wanted": np.asarray(rows, dtype=np.int64)})
    names = ", ".join(quote(c) for c in [ROW, *ref.columns])
    with connect(settings) as con:
        con.register("wanted_rows", positions)
        frame = con.execute(f"SELECT {names} FROM read_parquet('{ref.glob}') WHERE {ROW} IN (SELECT wanted FROM wanted_rows) "
                            f"ORDER BY {ROW}").df()
    from automodel.large.table import restore_dtypes

    return restore_dtypes(frame, ref.columns)
