"""Drift on scoring: have the rows being scored moved away from the rows the model was trained on?

At training time a compact reference of every feature column is saved with the model: for numbers (and the
length of free text) the training deciles and each decile's share of rows, for categories the shares of the most
frequent values, for dates the shares of months and weekdays (a later date is what new data is, so the calendar
profile is compared, and the date range is reported apart). Missing values are a bucket of their own.

A scoring run bins its rows the same way. A column is judged only when the batch holds at least ``MIN_ROWS``
values of it (AUTOMODEL_DRIFT_MIN_ROWS, 50 by default): below that no statistic separates a shift from the luck
of a small draw (ten rows, one per state, put every state far from its training share), and the run says "too
few rows to judge drift". A judged column is compared with a two-sample chi-square test of the bucket counts
(training counts are the shares times the training rows; buckets expected fewer than 5 rows are pooled), which
accounts for both sample sizes, Bonferroni-corrected over the columns compared (family-wise ``ALPHA`` 0.01).
The population stability index, PSI = sum((new - train) * ln(new / train)), is the size of the shift: a column
has moved when its test is significant and its PSI reaches ``MOVED_PSI`` (0.25, the usual reading), so a large
batch does not flag a shift too small to matter and a small one does not flag noise. Only the shares are kept,
so nothing the user trained on is copied into the model file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MOVED_PSI = 0.25
MODERATE_PSI = 0.1
MIN_ROWS = 50  # fewest values of a column in the scored batch for its drift to be judged
ALPHA = 0.01  # family-wise: each column's test is held to ALPHA / the number of columns compared
MIN_EXPECTED = 5.0  # chi-square buckets expected to hold fewer rows are pooled
REFERENCE_ROWS = 200_000  # reference_profile's sample: the training counts behind the shares
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


def _counts(labels: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in labels.value_counts().items()}


def two_sample_p(train_shares: dict[str, float], train_rows: int, new_counts: dict[str, int]) -> float:
    """p-value of a chi-square test that the training rows and the new rows fill the buckets alike."""
    from scipy.stats import chi2

    keys = sorted(set(train_shares) | set(new_counts))
    a = np.array([train_shares.get(k, 0.0) * train_rows for k in keys], dtype=float)
    b = np.array([new_counts.get(k, 0) for k in keys], dtype=float)
    if a.sum() <= 0 or b.sum() <= 0:
        return 1.0
    share_a = a.sum() / (a.sum() + b.sum())
    total = a + b
    small = np.minimum(total * share_a, total * (1 - share_a)) < MIN_EXPECTED
    if small.any():
        a = np.append(a[~small], a[small].sum())
        b = np.append(b[~small], b[small].sum())
        keep = (a + b) > 0
        a, b = a[keep], b[keep]
    if len(a) < 2:
        return 1.0
    total = a + b
    expected_a, expected_b = total * share_a, total * (1 - share_a)
    statistic = float(np.sum((a - expected_a) ** 2 / expected_a + (b - expected_b) ** 2 / expected_b))
    return float(chi2.sf(statistic, len(a) - 1))


def compare(reference: dict | None, frame: pd.DataFrame, threshold: float = MOVED_PSI, min_rows: int = MIN_ROWS,
            alpha: float = ALPHA) -> dict | None:
    """Per column (and view): the shift of the new rows from the training reference, judged as the module says.

    ``judged`` is False when no column has ``min_rows`` values (``reason`` says so); ``moved`` lists the judged columns
    whose test is significant and whose PSI reaches ``threshold``, largest first. None when the model carries no
    reference (trained before drift was recorded)."""
    if not reference or not reference.get("columns") or frame.empty:
        return None
    training_rows = min(int(reference.get("rows") or 0), REFERENCE_ROWS) or None
    views = []
    for col, spec in reference["columns"].items():
        if col not in frame.columns:
            continue
        present = int(frame[col].notna().sum())
        for view, labels in _buckets(frame[col], spec).items():
            views.append((col, view, spec, labels, present))
    judged = [v for v in views if v[4] >= min_rows]
    base = {"measure": "two-sample chi-square test of bucket counts (Bonferroni), population stability index as the size",
            "threshold": threshold, "alpha": alpha, "min_rows": min_rows, "rows": len(frame), "training_rows": reference.get("rows")}
    if not judged:
        return {**base, "judged": False, "reason": f"too few rows to judge drift ({len(frame):,} scored; at least {min_rows} values "
                                                    "of a column are needed)", "columns": [], "moved": [], "max_psi": None}
    measured = []
    for col, view, spec, labels, present in judged:
        shares = spec["shares"].get(view, {})
        value = psi(shares, _shares(labels))
        p_value = two_sample_p(shares, training_rows or len(frame), _counts(labels)) if training_rows else 1.0
        significant = p_value < alpha / len(judged)
        status = ("moved" if significant and value >= threshold else "moderate" if significant and value >= MODERATE_PSI else "stable")
        measured.append({"column": f"{col}{view}", "kind": spec["kind"], "psi": round(value, 4), "p_value": float(f"{p_value:.3g}"),
                         "rows": present, "status": status})
        if spec["kind"] == "date" and spec.get("range") and view == " (month)":
            stamps = pd.to_datetime(frame[col], errors="coerce").dropna()
            later = float((stamps > pd.Timestamp(spec["range"][1])).mean()) if len(stamps) else 0.0
            if later > 0:
                measured[-1]["after_training_range"] = round(later, 4)
    measured.sort(key=lambda m: (m["status"] != "moved", -m["psi"]))
    moved = [m for m in measured if m["status"] == "moved"]
    skipped = [f"{col}{view}" for col, view, _, _, present in views if present < min_rows]
    return {**base, "judged": True, "reason": None, "columns": measured, "moved": [m["column"] for m in moved],
            "max_psi": max(m["psi"] for m in measured), "too_few_rows": skipped}


def drift_sentence(drift: dict | None, shown: int = 5) -> str | None:
    """One sentence for the summary and the dashboard, or None when nothing moved."""
    if not drift or not drift.get("moved"):
        return None
    psis = {m["column"]: m["psi"] for m in drift["columns"]}
    names = ", ".join(f"{c!r} (PSI {psis[c]:.2f})" for c in drift["moved"][:shown])
    more = f" and {len(drift['moved']) - shown} more" if len(drift["moved"]) > shown else ""
    return (f"{len(drift['moved'])} column(s) moved since training: {names}{more}; the model was trained on different rows, "
            f"so check its predictions before acting on them.")


def drift_line(drift: dict | None, shown: int = 3) -> str | None:
    """The command line's one readable line about drift (details stay in the run's JSON and metadata)."""
    if not drift:
        return None
    if not drift.get("judged", True):
        return drift.get("reason") or "too few rows to judge drift"
    compared = len(drift.get("columns") or [])
    if not drift.get("moved"):
        return f"no column moved since training ({compared} compared on {drift['rows']:,} rows)"
    psis = {m["column"]: m["psi"] for m in drift["columns"]}
    names = ", ".join(f"{c} (PSI {psis[c]:.2f})" for c in drift["moved"][:shown])
    more = f" and {len(drift['moved']) - shown} more" if len(drift["moved"]) > shown else ""
    return f"ALERT: {len(drift['moved'])} of {compared} columns moved since training: {names}{more}"
