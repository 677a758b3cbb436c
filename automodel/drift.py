"""Drift on scoring: have the rows being scored moved away from the rows the model was trained on?

At training time a compact reference of every feature column is saved with the model: for numbers (and the
length of free text) the training deciles and each decile's share of rows, for categories the shares of the most
frequent values, for dates the shares of months and weekdays (a later date is what new data is, so the calendar
profile is compared, and the date range is reported apart). Missing values are a bucket of their own.

A scoring run bins its rows the same way and measures each column's population stability index,
PSI = sum((new - train) * ln(new / train)) over the buckets. The usual reading: below 0.1 stable, 0.1-0.25 a
moderate shift, above 0.25 (``MOVED_PSI``) the column has moved. The two-sample alternative needs the training
values themselves; PSI needs only the shares, so nothing the user trained on is copied into the model file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MOVED_PSI = 0.25
MODERATE_PSI = 0.1
DECILES = np.linspace(0.1, 0.9, 9)
TOP_CATEGORIES = 30
MISSING = "__missing__"
OTHER = "__other__"
SHARE_FLOOR = 1e-4  # an empty bucket on one side would make PSI infinite
NUMERIC_ROLES = {"numeric", "currency", "percent", "latitude", "longitude"}
DATE_ROLES = {"date", "datetime"}


def _kind(series: pd.Series, role: str | None) -> str:
    if role in DATE_ROLES or pd.api.types.is_datetime64_any_dtype(series):
        return "date"
    if role == "text":
        return "text"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and (role in NUMERIC_ROLES or role is None):
        return "numeric"
    return "categorical"


def _numeric_buckets(values: pd.Series, edges: list[float]) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    codes = np.searchsorted(np.asarray(edges, dtype=float), numbers.to_numpy(), side="right").astype(object)
    codes[numbers.isna().to_numpy()] = MISSING
    return pd.Series(codes, index=values.index).astype(str)


def _category_buckets(values: pd.Series, known: list[str]) -> pd.Series:
    text = values.astype(object).where(values.notna(), None)
    keys = text.map(lambda v: MISSING if v is None else str(v))
    allowed = set(known) | {MISSING}
    return keys.where(keys.isin(allowed), OTHER)


def _buckets(series: pd.Series, spec: dict) -> dict[str, pd.Series]:
    """The column's values as bucket labels, one series per compared view (dates have two)."""
    kind = spec["kind"]
    if kind == "numeric":
        return {"": _numeric_buckets(series, spec["edges"])}
    if kind == "text":
        lengths = series.astype(object).map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else len(str(v)))
        return {"": _numeric_buckets(lengths, spec["edges"])}
    if kind == "date":
        stamps = pd.to_datetime(series, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert(None)
        month = stamps.dt.month.astype("Int64").astype(str).where(stamps.notna(), MISSING)
        weekday = stamps.dt.dayofweek.astype("Int64").astype(str).where(stamps.notna(), MISSING)
        return {" (month)": month, " (weekday)": weekday}
    return {"": _category_buckets(series, spec["categories"])}


def _shares(labels: pd.Series) -> dict[str, float]:
    return {str(k): float(v) for k, v in labels.value_counts(normalize=True).items()}


def reference_profile(frame: pd.DataFrame, columns: list[str], roles: dict[str, str] | None = None, max_rows: int = 200_000,
                      seed: int = 0) -> dict:
    """What drift is measured against, computed on the training rows (a fixed sample of at most ``max_rows``)."""
    roles = roles or {}
    rows = frame.sample(max_rows, random_state=seed) if len(frame) > max_rows else frame
    out: dict = {"rows": len(frame), "columns": {}}
    for col in columns:
        if col not in rows.columns:
            continue
        series = rows[col]
        kind = _kind(series, roles.get(col))
        spec: dict = {"kind": kind, "role": roles.get(col)}
        if kind in ("numeric", "text"):
            values = series if kind == "numeric" else series.astype(object).map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else len(str(v)))
            numbers = pd.to_numeric(values, errors="coerce").dropna().astype(float)
            spec["edges"] = sorted(set(np.quantile(numbers, DECILES).round(12).tolist())) if len(numbers) else []
        elif kind == "date":
            stamps = pd.to_datetime(series, errors="coerce").dropna()
            spec["range"] = [str(stamps.min()), str(stamps.max())] if len(stamps) else None
        else:
            counts = series.astype(object).where(series.notna(), None).dropna().map(str).value_counts()
            spec["categories"] = counts.index[:TOP_CATEGORIES].tolist()
        spec["shares"] = {view: _shares(labels) for view, labels in _buckets(series, spec).items()}
        out["columns"][col] = spec
    return out


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    keys = set(expected) | set(actual)
    e = np.array([max(expected.get(k, 0.0), SHARE_FLOOR) for k in keys])
    a = np.array([max(actual.get(k, 0.0), SHARE_FLOOR) for k in keys])
    return float(np.sum((a - e) * np.log(a / e)))


def compare(reference: dict | None, frame: pd.DataFrame, threshold: float = MOVED_PSI) -> dict | None:
    """Per column (and view): PSI of the new rows against the training reference; ``moved`` lists those at or above
    ``threshold``, largest first. None when the model carries no reference (trained before drift was recorded)."""
    if not reference or not reference.get("columns") or frame.empty:
        return None
    measured = []
    for col, spec in reference["columns"].items():
        if col not in frame.columns:
            continue
        for view, labels in _buckets(frame[col], spec).items():
            value = psi(spec["shares"].get(view, {}), _shares(labels))
            measured.append({"column": f"{col}{view}", "kind": spec["kind"], "psi": round(value, 4),
                             "status": "moved" if value >= threshold else "moderate" if value >= MODERATE_PSI else "stable"})
        if spec["kind"] == "date" and spec.get("range"):
            stamps = pd.to_datetime(frame[col], errors="coerce").dropna()
            if len(stamps):
                later = float((stamps > pd.Timestamp(spec["range"][1])).mean())
                if later > 0:
                    measured[-1]["after_training_range"] = round(later, 4)
    measured.sort(key=lambda m: m["psi"], reverse=True)
    moved = [m for m in measured if m["status"] == "moved"]
    return {"measure": "population stability index", "threshold": threshold, "rows": len(frame), "training_rows": reference.get("rows"),
            "columns": measured, "moved": [m["column"] for m in moved], "max_psi": measured[0]["psi"] if measured else 0.0}


def drift_sentence(drift: dict | None, shown: int = 5) -> str | None:
    """One sentence for the summary and the dashboard, or None when nothing moved."""
    if not drift or not drift.get("moved"):
        return None
    psis = {m["column"]: m["psi"] for m in drift["columns"]}
    names = ", ".join(f"{c!r} (PSI {psis[c]:.2f})" for c in drift["moved"][:shown])
    more = f" and {len(drift['moved']) - shown} more" if len(drift["moved"]) > shown else ""
    return (f"{len(drift['moved'])} column(s) moved since training: {names}{more}; the model was trained on different rows, "
            f"so check its predictions before acting on them.")
