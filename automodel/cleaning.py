"""Cleaning as composable, named steps.

Each step takes a frame and a ``CleaningReport`` and returns a new frame; the report
counts every change. Steps never drop rows: predictions must stay row-aligned with the
input, so duplicates and outliers are only *marked* (``training_mask``) for the model.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NA_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "--", "?", "missing", "#n/a", "nil", ".", "n.a."}
TRUE_TOKENS = {"yes", "y", "true", "t"}
FALSE_TOKENS = {"no", "n", "false", "f"}
_NUMBER_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][+-]?\d+)?$")


@dataclass
class CleaningReport:
    """Counts of what cleaning changed, per step and column."""

    steps: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped_columns: dict[str, str] = field(default_factory=dict)
    converted: dict[str, str] = field(default_factory=dict)
    duplicate_rows: int = 0
    outlier_rows: int = 0

    def count(self, step: str, column: str, n: int) -> None:
        if n:
            self.steps.setdefault(step, {})
            self.steps[step][column] = self.steps[step].get(column, 0) + int(n)

    def total_changes(self) -> int:
        return sum(sum(cols.values()) for cols in self.steps.values())

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "dropped_columns": self.dropped_columns,
            "converted": self.converted,
            "duplicate_rows": self.duplicate_rows,
            "outlier_rows": self.outlier_rows,
            "total_changes": self.total_changes(),
        }


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def normalize_text(frame: pd.DataFrame, report: CleaningReport, columns=None) -> pd.DataFrame:
    """Strip stray whitespace and turn missing-value tokens into real missing values."""
    out = frame.copy()
    for col in columns or out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        as_str = series.astype("string")
        stripped = as_str.str.strip().str.replace(r"\s+", " ", regex=True)
        report.count("strip_whitespace", col, int((stripped != as_str).fillna(False).sum()))
        is_na_token = stripped.str.lower().isin(NA_TOKENS) & stripped.notna()
        report.count("missing_tokens", col, int(is_na_token.sum()))
        stripped = stripped.mask(is_na_token)
        out[col] = stripped.astype(object).where(stripped.notna(), np.nan)
    return out


def parse_number_text(values: pd.Series) -> pd.Series:
    """Parse '$1,200', '45%', '(300)', '1.2e3', '1 200' into floats; NaN where not a number."""
    text = values.astype("string").str.strip()
    negative = text.str.match(r"^\(.*\)$").fillna(False)
    percent = text.str.endswith("%").fillna(False)
    core = text.str.replace(r"^\((.*)\)$", r"\1", regex=True)
    core = core.str.replace(r"[$€£¥%\s]", "", regex=True).str.replace(r"(?i)^(usd|eur|gbp)|(usd|eur|gbp)$", "", regex=True)
    valid = core.str.match(_NUMBER_RE.pattern).fillna(False) & core.str.contains(r"\d").fillna(False)
    numbers = pd.to_numeric(core.where(valid).str.replace(",", "", regex=False), errors="coerce").astype("float64")
    numbers = numbers.where(~negative, -numbers)
    numbers = numbers.where(~percent, numbers / 100.0)
    return numbers.astype(float)


def convert_numbers(frame: pd.DataFrame, report: CleaningReport, threshold: float = 0.95) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        present = series.notna()
        if not present.any():
            continue
        parsed = parse_number_text(series)
        ok = parsed.notna() & present
        if ok.sum() / present.sum() >= threshold:
            plain = pd.to_numeric(series.where(present), errors="coerce")
            report.count("numbers_from_text", col, int((ok & plain.isna()).sum()))
            report.count("mixed_type_to_missing", col, int((present & ~ok).sum()))
            whole = parsed.dropna()
            if len(whole) and np.all(np.mod(whole, 1) == 0) and whole.abs().max() < 2**53:
                out[col] = parsed.astype("Int64").astype(float) if parsed.isna().any() else parsed.astype("int64")
            else:
                out[col] = parsed
            report.converted[col] = "number"
    return out


def convert_booleans(frame: pd.DataFrame, report: CleaningReport) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        lowered = series.dropna().astype(str).str.strip().str.lower()
        if lowered.empty:
            continue
        values = set(lowered.unique())
        if values <= TRUE_TOKENS | FALSE_TOKENS and values & TRUE_TOKENS and values & FALSE_TOKENS:
            mapped = series.astype("string").str.strip().str.lower().map(
                lambda v: True if v in TRUE_TOKENS else (False if v in FALSE_TOKENS else None), na_action="ignore"
            )
            out[col] = mapped.astype("boolean")
            report.count("booleans_from_text", col, int(series.notna().sum()))
            report.converted[col] = "boolean"
    return out


_DATE_HINT = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{4}-\d{2}|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}|\d{1,2} [A-Za-z]{3,9}\.? \d{4}")


def convert_to_datetime(frame: pd.DataFrame, report: CleaningReport, columns=None, threshold: float = 0.9) -> pd.DataFrame:
    """Convert text columns that hold dates (many formats) to datetimes."""
    out = frame.copy()
    for col in columns or out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        present = series.dropna().astype(str)
        if present.empty:
            continue
        sample = present.sample(min(len(present), 500), random_state=0)
        if sample.str.contains(_DATE_HINT).mean() < threshold:
            continue
        parsed = _parse_dates(series)
        ok = parsed.notna().sum()
        if ok / len(present) >= threshold:
            report.count("dates_from_text", col, int(ok))
            report.count("mixed_type_to_missing", col, int(len(present) - ok))
            out[col] = parsed
            report.converted[col] = "datetime"
    return out


def _parse_dates(series: pd.Series) -> pd.Series:
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs in ({"format": "ISO8601"}, {"format": "mixed", "dayfirst": False}, {"format": "mixed", "dayfirst": True}):
            try:
                parsed = pd.to_datetime(series, errors="coerce", utc=False, **kwargs)
            except (ValueError, TypeError):
                continue
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_convert(None)
            if best is None or parsed.notna().sum() > best.notna().sum():
                best = parsed
            if best.notna().all():
                break
    return best if best is not None else pd.Series(pd.NaT, index=series.index)


def drop_empty_and_constant(frame: pd.DataFrame, report: CleaningReport, keep=()) -> pd.DataFrame:
    out = frame
    for col in list(out.columns):
        if col in keep:
            continue
        non_null = out[col].dropna()
        if non_null.empty:
            report.dropped_columns[col] = "all values missing"
        elif len(out) > 1 and non_null.astype(str).nunique() == 1 and out[col].notna().all():
            report.dropped_columns[col] = "constant"
    return out.drop(columns=list(report.dropped_columns))


def mark_duplicates(frame: pd.DataFrame, report: CleaningReport) -> pd.Series:
    duplicated = frame.astype(str).duplicated(keep="first")
    report.duplicate_rows = int(duplicated.sum())
    return duplicated


def remove_outliers(frame: pd.DataFrame, report: CleaningReport, columns=None, method: str = "iqr", k: float = 3.0, protect=()) -> pd.Series:
    """Mark rows whose numeric values lie far outside the IQR fence; never the protected columns (the target)."""
    flags = pd.Series(False, index=frame.index)
    numeric = [c for c in (columns or frame.columns) if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) and c not in protect]
    for col in numeric:
        values = frame[col].astype(float)
        q1, q3 = values.quantile(0.25), values.quantile(0.75)
        iqr = q3 - q1
        if not np.isfinite(iqr) or iqr == 0:
            continue
        out = (values < q1 - k * iqr) | (values > q3 + k * iqr)
        report.count("outliers_marked", col, int(out.sum()))
        flags |= out.fillna(False)
    report.outlier_rows = int(flags.sum())
    return flags


def handle_missing_values(frame: pd.DataFrame, report: CleaningReport, strategy: str = "median") -> pd.DataFrame:
    """Impute numeric gaps (median or mean) and categorical gaps (most frequent). Used for analyses that need complete data."""
    out = frame.copy()
    for col in out.columns:
        missing = out[col].isna()
        if not missing.any():
            continue
        if pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            fill = out[col].mean() if strategy == "mean" else out[col].median()
        else:
            mode = out[col].mode(dropna=True)
            fill = mode.iloc[0] if len(mode) else None
        if fill is not None and not (isinstance(fill, float) and np.isnan(fill)):
            out[col] = out[col].fillna(fill)
            report.count("imputed", col, int(missing.sum()))
    return out


def encode_categorical_columns(frame: pd.DataFrame, report: CleaningReport, columns=None) -> pd.DataFrame:
    """Label-encode categorical text columns (codes in sorted order; missing stays missing)."""
    out = frame.copy()
    for col in columns or [c for c in out.columns if _is_text(out[c])]:
        codes = out[col].astype("category").cat.codes.replace(-1, np.nan)
        out[col] = codes
        report.count("label_encoded", col, int(codes.notna().sum()))
    return out


@dataclass
class CleanResult:
    frame: pd.DataFrame
    report: CleaningReport
    training_mask: pd.Series  # True for rows fit for training (not duplicate, not outlier)


def clean(raw: pd.DataFrame, protect: tuple[str, ...] = ()) -> CleanResult:
    """The default cleaning pipeline: text, numbers, booleans, dates, empty/constant columns, duplicates, outliers."""
    report = CleaningReport()
    frame = normalize_text(raw, report)
    frame = convert_booleans(frame, report)
    frame = convert_numbers(frame, report)
    frame = convert_to_datetime(frame, report)
    frame = drop_empty_and_constant(frame, report, keep=protect)
    duplicates = mark_duplicates(frame, report)
    outliers = remove_outliers(frame, report, protect=protect)
    frame = frame.reset_index(drop=True)
    mask = (~duplicates & ~outliers).reset_index(drop=True)
    return CleanResult(frame=frame, report=report, training_mask=mask)
