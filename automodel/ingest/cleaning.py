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
    protected: list[str] = field(default_factory=list)
    # How each column was read (unit, decimal comma, date format, case spellings...): the training schema
    # replays these on every batch scored later (automodel.ingest.schema); not part of to_dict.
    decisions: dict[str, dict] = field(default_factory=dict)

    def decide(self, column: str, **decision) -> None:
        self.decisions.setdefault(column, {}).update(decision)

    def count(self, step: str, column: str, n: int) -> None:
        if n:
            self.steps.setdefault(step, {})
            self.steps[step][column] = self.steps[step].get(column, 0) + int(n)

    def to_markdown(self) -> str:
        """The changes as a table for the Dagster UI: one row per step and column, then what was dropped or marked."""
        lines = ["| step | column | changed values |", "|---|---|---|"]
        for step, columns in self.steps.items():
            lines += [f"| {step} | {col} | {n:,} |" for col, n in sorted(columns.items(), key=lambda kv: -kv[1])]
        lines += [f"| dropped | {col} | {why} |" for col, why in self.dropped_columns.items()]
        if len(lines) == 2:
            lines.append("| none | | 0 |")
        tail = f"\n\n{self.duplicate_rows:,} duplicate rows marked (kept, left out of training) and {self.outlier_rows:,} outlier rows marked (kept, and trained on unless AUTOMODEL_DROP_OUTLIERS=1)."
        if self.protected:
            tail += f" Never dropped or used for outliers: {', '.join(self.protected)}."
        return "\n".join(lines) + tail

    def total_changes(self) -> int:
        return sum(sum(cols.values()) for cols in self.steps.values())

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "dropped_columns": self.dropped_columns,
            "converted": self.converted,
            "duplicate_rows": self.duplicate_rows,
            "outlier_rows": self.outlier_rows,
            "protected": self.protected,
            "total_changes": self.total_changes(),
        }


TEXT_DTYPE = pd.StringDtype("pyarrow")
_GATE_SAMPLE = 2_000


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series.dtype)


def _as_text(series: pd.Series) -> pd.Series:
    """The column as Arrow-backed text (fast string kernels); cells that are not strings become text first."""
    if series.dtype == TEXT_DTYPE:
        return series
    if series.dtype == object:
        series = series.map(lambda v: v if isinstance(v, str) or v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return series.astype(TEXT_DTYPE)


def _sample(series: pd.Series, n: int = _GATE_SAMPLE) -> pd.Series:
    """Up to ``n`` present values at fixed random positions (decisions on a column are gated on a sample)."""
    if len(series) > n:
        positions = np.sort(np.random.default_rng(0).choice(len(series), n, replace=False))
        series = series.iloc[positions]
    return series.dropna()


_ODD_WHITESPACE = r"\s{2,}|[^\S ]"


def normalize_text(frame: pd.DataFrame, report: CleaningReport, columns=None, unify_case: bool = True, _wide: bool = True) -> pd.DataFrame:
    """Strip stray whitespace, turn missing-value tokens into real missing values and, in label columns,
    write values that differ only by case ("Yes"/"yes") the way they are written most often."""
    dtypes = frame.dtypes  # one lookup for all columns: frame[c] costs ~0.1 ms each, minutes on a wide table
    is_text = {t: t == object or pd.api.types.is_string_dtype(t) for t in set(dtypes)}
    text_columns = [c for c in (columns or frame.columns) if is_text[dtypes[c]]]
    # Many columns, or a few rows (a row posted to the API): each pandas string operation has a fixed cost per column,
    # so all the text cells go through each Arrow kernel once.
    few_rows = len(frame) <= _FEW_ROWS and len(text_columns) > 1
    if _wide and (len(text_columns) >= _WIDE_COLUMNS or few_rows) and len(frame) <= _GATE_SAMPLE and frame.columns.is_unique:
        return _normalize_text_wide(frame, report, text_columns, unify_case)
    out = frame.copy()
    for col in columns or out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        as_text = _as_text(series)
        stripped = as_text.str.strip()
        # Runs of whitespace and tabs or line breaks become one space. The pattern matches exactly where \s+ would
        # change a value, so each value is treated alike whatever the other rows hold (a batch scored later agrees).
        if stripped.str.contains(_ODD_WHITESPACE, regex=True).any():
            stripped = stripped.str.replace(_ODD_WHITESPACE, " ", regex=True)
        report.count("strip_whitespace", col, int((stripped != as_text).fillna(False).sum()))
        lowered = stripped.str.lower()
        is_na_token = lowered.isin(NA_TOKENS).fillna(False)
        n_tokens = int(is_na_token.sum())
        if n_tokens:
            report.count("missing_tokens", col, n_tokens)
            stripped = stripped.mask(is_na_token)
        if unify_case:
            stripped = _unify_case(stripped, col, report)
        out[col] = stripped
    return out


_WIDE_COLUMNS = 200
_FEW_ROWS = 64


def _normalize_text_wide(frame: pd.DataFrame, report: CleaningReport, text_columns: list, unify_case: bool) -> pd.DataFrame:
    """``normalize_text`` for wide tables (many text columns, at most _GATE_SAMPLE rows), with the same results.

    Column by column, each of a dozen string operations costs a fixed ~0.1 ms of pandas overhead whatever
    the column's length: 50,000 columns of 30 rows took minutes for 1.5 million cells. Here every text cell
    goes through each Arrow kernel once, in one array, and per-column counts come from the column index of
    each cell. Only columns that may hold case variants ("Yes"/"yes") go back to the per-column rule."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(frame)
    arrays = _column_arrays(frame)
    pieces = []
    for col in text_columns:
        values = arrays[col]
        if values.dtype != TEXT_DTYPE:
            values = _as_text(pd.Series(values, copy=False)).array
        pieces.extend(chunk.cast(pa.string()) for chunk in pa.chunked_array(values._pa_array).chunks)
    try:  # slices of one string array share its buffers, so the columns split back without copies
        cells = pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())
    except (pa.ArrowInvalid, pa.ArrowCapacityError):  # over 2 GB of text in all: column by column
        return normalize_text(frame, report, text_columns, unify_case, _wide=False)
    column_of = np.repeat(np.arange(len(text_columns)), rows)

    def per_column(mask) -> np.ndarray:
        flags = np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
        return np.bincount(column_of[flags], minlength=len(text_columns))

    # The same rule as column by column: runs of whitespace and tabs or line breaks become one space.
    stripped = pc.replace_substring_regex(pc.utf8_trim_whitespace(cells), _ODD_WHITESPACE, " ")
    changed = per_column(pc.not_equal(stripped, cells))
    is_na_token = pc.fill_null(pc.is_in(pc.utf8_lower(stripped), value_set=pa.array(sorted(NA_TOKENS), pa.string())), False)
    tokens = per_column(is_na_token)
    stripped = pc.if_else(is_na_token, pa.scalar(None, pa.string()), stripped)
    for i, col in enumerate(text_columns):
        report.count("strip_whitespace", col, int(changed[i]))
    for i, col in enumerate(text_columns):
        report.count("missing_tokens", col, int(tokens[i]))

    may_unify = set()
    lettered = per_column(pc.match_substring_regex(stripped, "[A-Za-z]")) > 0
    if unify_case and lettered.any():
        present = pc.is_valid(stripped)
        keep = pc.and_(present, pa.array(np.repeat(lettered, rows)))
        kept_at = np.flatnonzero(np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool))
        encoded = pc.filter(stripped, keep).dictionary_encode()
        values = pd.DataFrame({"column": column_of[kept_at], "value": encoded.indices.to_numpy(zero_copy_only=False),
                               "folded": pc.filter(pc.utf8_lower(stripped), keep).dictionary_encode().indices.to_numpy(zero_copy_only=False)})
        n_present = values.groupby("column").size()
        n_distinct = values.drop_duplicates(["column", "value"]).groupby("column").size()
        n_folded = values.drop_duplicates(["column", "folded"]).groupby("column").size()
        # The per-column rule acts only where some labels differ by case alone and values repeat: test just those.
        candidates = n_distinct[(n_folded < n_distinct) & (n_distinct <= 1_000) & (n_distinct <= 0.5 * n_present)].index
        if len(candidates):
            stripped, tied = _unify_case_wide(stripped, values, kept_at, encoded.dictionary, set(candidates), text_columns, report)
            may_unify = {text_columns[i] for i in tied}

    as_arrays = {}
    for i, col in enumerate(text_columns):
        array = pd.arrays.ArrowStringArray(stripped.slice(i * rows, rows))
        as_arrays[col] = _unify_case(pd.Series(array, index=frame.index), col, report).array if col in may_unify else array
    return pd.DataFrame({col: as_arrays[col] if col in as_arrays else arrays[col] for col in frame.columns}, index=frame.index, copy=False)


def _unify_case_wide(stripped, values: pd.DataFrame, kept_at: np.ndarray, dictionary, candidates: set, text_columns: list,
                     report: CleaningReport):
    """``_unify_case`` for many columns at once: in each column, spellings that differ only by case become the most
    frequent one. Where two spellings tie for most frequent, the per-column rule decides (returned as ``tied``)."""
    import pyarrow as pa

    in_candidate = values["column"].isin(candidates).to_numpy()
    cells = values[in_candidate].reset_index(drop=True)
    positions = kept_at[in_candidate]
    counts = cells.groupby(["column", "folded", "value"], sort=False).size().rename("n").reset_index()
    leaders = counts[counts["n"] == counts.groupby(["column", "folded"])["n"].transform("max")]
    per_group = leaders.groupby(["column", "folded"]).size()
    tied = set(per_group[per_group > 1].index.get_level_values(0))
    canonical = leaders.drop_duplicates(["column", "folded"])[["column", "folded", "value"]].rename(columns={"value": "canonical"})
    merged = cells.merge(canonical, on=["column", "folded"], how="left")  # a left merge keeps the cells' order
    change = (merged["canonical"].to_numpy() != merged["value"].to_numpy()) & ~merged["column"].isin(tied).to_numpy()
    if change.any():
        for i, n in zip(*np.unique(merged["column"].to_numpy()[change], return_counts=True)):
            report.count("case_unified", text_columns[i], int(n))
        out = stripped.to_numpy(zero_copy_only=False).astype(object)
        out[positions[change]] = dictionary.take(pa.array(merged["canonical"].to_numpy()[change])).to_numpy(zero_copy_only=False)
        stripped = pa.array(out, type=pa.string())
    return stripped, tied


def _column_arrays(frame: pd.DataFrame) -> dict:
    """Each column's values by name, in one pass (selecting 50,000 columns one by one takes seconds)."""
    iterate = getattr(frame, "_iter_column_arrays", None)
    if iterate is None:  # a pandas without the internal iterator
        return {col: frame[col].array for col in frame.columns}
    return dict(zip(frame.columns, iterate()))


def _unify_case(series: pd.Series, col: str, report: CleaningReport, max_labels: int = 1_000) -> pd.Series:
    sample = _sample(series)
    if not sample.str.contains(r"[A-Za-z]", regex=True).any() or sample.nunique() > max_labels:
        return series  # numbers have no case; a sample with this many labels means free text or ids
    counts = series.value_counts(dropna=True)
    if counts.empty or len(counts) > max_labels or len(counts) > 0.5 * counts.sum():
        return series  # free text or identifiers: case may carry meaning there
    folded = pd.Series(counts.index.str.lower(), index=counts.index)
    canonical = {}
    for spelling, key in folded.items():  # value_counts is sorted, so the first spelling seen is the most frequent
        canonical.setdefault(key, spelling)
    report.decide(col, case_map=canonical)  # a label column: later batches spell its values the same way
    if folded.nunique() == len(counts):
        return series
    mapping = {spelling: canonical[key] for spelling, key in folded.items() if canonical[key] != spelling}
    changed = series.isin(list(mapping)).fillna(False)
    report.count("case_unified", col, int(changed.sum()))
    return series.where(~changed, series.map(mapping)).astype(TEXT_DTYPE)


_DECIMAL_COMMA = re.compile(r"^[-+(]?[$€£¥]?\s?\d{1,3}(\.\d{3})*,\d+\s?[%€]?\)?$|^[-+]?\d+,\d+$")


def uses_decimal_comma(sample: pd.Series) -> bool:
    """European numbers ('1.234,5', '12,75'): some comma is followed by other than three digits and no value
    uses a point as the decimal mark."""
    text = _as_text(sample).dropna().str.strip()
    if text.empty:
        return False
    comma_decimal = text.str.contains(r",(?:\d{1,2}|\d{4,})(?:\D|$)", regex=True).fillna(False)
    point_decimal = text.str.contains(r"\.(?:\d{1,2}|\d{4,})(?:\D|$)", regex=True).fillna(False)
    return bool(comma_decimal.any()) and not bool(point_decimal.any()) and text.str.match(_DECIMAL_COMMA.pattern).mean() > 0.5


def parse_number_text(values: pd.Series, decimal_comma: bool = False) -> pd.Series:
    """Parse '$1,200', '45%', '(300)', '1.2e3', '1 200', '€5', '-12 USD' (and '1.234,5' with ``decimal_comma``)
    into floats; NaN where not a number."""
    text = _as_text(values).str.strip()
    if decimal_comma:
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    negative = text.str.match(r"^\(.*\)$").fillna(False)
    percent = text.str.endswith("%").fillna(False)
    core = text.str.replace(r"^\((.*)\)$", r"\1", regex=True)
    core = core.str.replace("[$€£¥%\\s\u00a0']", "", regex=True).str.replace(r"(?i)^(usd|eur|gbp)|(usd|eur|gbp)$", "", regex=True)
    valid = (core.str.match(_NUMBER_RE.pattern).fillna(False) & core.str.contains(r"\d").fillna(False)).astype(bool)
    numbers = pd.to_numeric(core.where(valid).str.replace(",", "", regex=False), errors="coerce").astype(float)
    numbers = numbers.where(~negative.astype(bool), -numbers)
    numbers = numbers.where(~percent.astype(bool), numbers / 100.0)
    return numbers.astype(float)


_LEADING_ZERO_CODE = re.compile(r"^0\d+$")


def _is_leading_zero_code(sample: pd.Series) -> bool:
    """Codes such as zip '02134' or FIPS '06037' lose their meaning as numbers; they stay text."""
    text = sample.astype(str).str.strip()
    zeros = text.str.match(_LEADING_ZERO_CODE.pattern)
    return bool(zeros.any()) and text.str.len().nunique() <= 2 and text.str.fullmatch(r"\d+(-\d{4})?").mean() > 0.95


def _plain_numbers(series: pd.Series) -> pd.Series:
    """Plain numbers ('12', '-3.5e2') as floats, NaN elsewhere; Arrow's cast when every value is plain (fast)."""
    import pyarrow as pa
    import pyarrow.compute as pac

    if series.dtype == TEXT_DTYPE:
        try:
            array = pac.cast(pa.chunked_array(series.array._pa_array), pa.float64())
            return pd.Series(array.to_numpy(zero_copy_only=False), index=series.index, dtype=float)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, AttributeError):
            pass
    return pd.to_numeric(_as_text(series), errors="coerce").astype(float)


def convert_numbers(frame: pd.DataFrame, report: CleaningReport, threshold: float = 0.95) -> pd.DataFrame:
    """Numbers written as text ('$1,200', '45%', '(300)', '1.2e3', '12,345') become numbers; a column whose
    values are at least ``threshold`` numbers is converted and its few other values become missing."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        present = series.notna()
        n_present = int(present.sum())
        if not n_present:
            continue
        sample = _sample(series)
        unit = _common_unit(sample)
        if unit:  # '12 min', '3.5 kg': one unit for the whole column is part of the header, not of the values
            series = _as_text(series).str.replace(rf"\s*{re.escape(unit)}$", "", regex=True)
            sample = _as_text(sample).str.replace(rf"\s*{re.escape(unit)}$", "", regex=True)
        decimal_comma = uses_decimal_comma(sample)
        if parse_number_text(sample, decimal_comma).notna().mean() < threshold or _is_leading_zero_code(sample):
            continue
        parsed, plain = read_numbers(series, decimal_comma)
        if decimal_comma:
            report.count("decimal_comma", col, int(parsed.notna().sum()))
        ok = parsed.notna() & present
        if ok.sum() / n_present < threshold:
            continue
        report.count("numbers_from_text", col, int((ok & plain.isna()).sum()))
        report.count("mixed_type_to_missing", col, int((present & ~ok).sum()))
        whole = parsed.dropna()
        if len(whole) and bool(np.all(np.mod(whole.to_numpy(), 1) == 0)) and whole.abs().max() < 2**53 and not parsed.isna().any():
            out[col] = parsed.astype("int64")
        else:
            out[col] = parsed
        report.converted[col] = f"number (unit {unit!r} removed)" if unit else "number"
        report.decide(col, number=True, unit=unit, decimal_comma=decimal_comma)
        if unit:
            report.count("unit_removed", col, int(ok.sum()))
    return out


def read_numbers(series: pd.Series, decimal_comma: bool = False) -> tuple[pd.Series, pd.Series]:
    """(numbers, plain numbers): each value read on its own, so a value reads the same whatever rows come with it.

    Plain numbers ('12', '-3.5e2') go through Arrow's fast cast; the rest ('$1,200', '45%') through
    ``parse_number_text``. With a decimal comma every value takes the second path ('1.234' is 1234 there).
    """
    plain = _plain_numbers(series)
    if decimal_comma:
        return parse_number_text(series, True), plain
    unread = series.notna() & plain.isna()
    if not unread.any():
        return plain, plain
    return plain.where(~unread, parse_number_text(series.where(unread), False)), plain


_UNIT = re.compile(r"^[-+(]?[\d.,]+\)?\s*([A-Za-z°/][A-Za-z°/.²³]{0,7})$")


def _common_unit(sample: pd.Series) -> str | None:
    """The unit every number of the sample carries ('min', 'kg', 'mph'), or None."""
    text = _as_text(sample).dropna().str.strip()
    if text.empty:
        return None
    units = text.str.extract(_UNIT.pattern, expand=False)
    if units.isna().mean() > 0.05:
        return None
    counts = units.value_counts()
    if len(counts) != 1 or counts.index[0].lower() in {"e", "usd", "eur", "gbp"}:
        return None
    return str(counts.index[0])


def convert_booleans(frame: pd.DataFrame, report: CleaningReport) -> pd.DataFrame:
    """Two-valued yes/no, y/n, true/false, t/f columns become booleans (missing stays missing)."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not _is_text(series):
            continue
        sample = set(_as_text(_sample(series, 200)).str.strip().str.lower())
        if not sample or not sample <= TRUE_TOKENS | FALSE_TOKENS:
            continue
        counts = _as_text(series).str.strip().str.lower().value_counts(dropna=True)
        if counts.empty:
            continue
        values = set(counts.index)
        if values <= TRUE_TOKENS | FALSE_TOKENS and values & TRUE_TOKENS and values & FALSE_TOKENS:
            lowered = _as_text(series).str.strip().str.lower()
            mapped = pd.Series(pd.NA, index=series.index, dtype="boolean")
            mapped[lowered.isin(TRUE_TOKENS).fillna(False).astype(bool)] = True
            mapped[lowered.isin(FALSE_TOKENS).fillna(False).astype(bool)] = False
            out[col] = mapped
            report.count("booleans_from_text", col, int(series.notna().sum()))
            report.converted[col] = "boolean"
            report.decide(col, boolean=True)
    return out


_DATE_HINT = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{4}-\d{2}|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}|\d{1,2}[ -][A-Za-z]{3,9}\.?[ -]\d{2,4}|[A-Za-z]{3}-\d{2,4}")
_DATE_FORMATS = (
    "ISO8601", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y",
    "%b %d %Y", "%b-%Y", "%b-%y", "%Y%m%d",
)
_EPOCH_WORDS = {"timestamp", "epoch", "unix", "ts", "time", "datetime", "date", "created", "updated"}


def convert_to_datetime(frame: pd.DataFrame, report: CleaningReport, columns=None, threshold: float = 0.9) -> pd.DataFrame:
    """Convert text columns that hold dates (many formats) to datetimes, and epoch-second or -millisecond
    numbers in columns named like timestamps."""
    out = frame.copy()
    for col in columns or out.columns:
        series = out[col]
        if _is_text(series):
            present = series.dropna()
            if present.empty:
                continue
            sample = _sample(series, 500).astype(str)
            if sample.str.contains(_DATE_HINT).mean() < threshold:
                continue
            parsed, date_format = _parse_dates(series, sample)
            ok = int(parsed.notna().sum())
            if ok / len(present) >= threshold:
                report.count("dates_from_text", col, ok)
                report.count("mixed_type_to_missing", col, int(len(present) - ok))
                out[col] = parsed
                report.converted[col] = "datetime"
                report.decide(col, date_format=date_format)
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and _name_words(col) & _EPOCH_WORDS:
            values = series.dropna()
            if values.empty:
                continue
            unit = "s" if values.between(1e8, 4.1e9).all() else ("ms" if values.between(1e11, 4.1e12).all() else None)
            if unit:
                out[col] = pd.to_datetime(series, unit=unit, errors="coerce")
                report.count("dates_from_epoch", col, int(values.size))
                report.converted[col] = f"datetime (epoch {unit})"
                report.decide(col, epoch_unit=unit)
    return out


def _name_words(name) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return {t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t}


def _to_datetime(values: pd.Series, fmt: str, dayfirst: bool = False) -> pd.Series:
    kwargs = {"format": fmt} if fmt != "mixed" else {"format": "mixed", "dayfirst": dayfirst}
    try:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, **kwargs)
    except (ValueError, TypeError, OverflowError):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    return parsed.dt.tz_convert(None)


def _parse_dates(series: pd.Series, sample: pd.Series) -> tuple[pd.Series, str]:
    """Pick the format that reads most of a sample, then parse the whole column with it (fast, one format);
    columns that mix formats are parsed value by value. Returns the dates and the format used
    (a strptime format, 'ISO8601', or 'mixed' / 'mixed dayfirst' for value by value)."""
    text = series.astype(object).where(series.notna(), None)
    sample_text = sample.astype(object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best_fmt, best_ok = None, -1
        for fmt in _DATE_FORMATS:
            ok = int(_to_datetime(sample_text, fmt).notna().sum())
            if ok > best_ok:
                best_fmt, best_ok = fmt, ok
            if ok == len(sample_text):
                break
        if best_fmt is not None and best_ok == len(sample_text):
            parsed = _to_datetime(text, best_fmt)
            if parsed.notna().sum() >= 0.99 * series.notna().sum():
                return parsed, best_fmt
        distinct = pd.Series(pd.unique(text.dropna()), dtype=object)
        mixed_format = max(("mixed", "mixed dayfirst"), key=lambda f: _mixed_dates(distinct, f).notna().sum())
        mixed = parse_dates_as(text, mixed_format)
        if best_fmt is not None:
            single = _to_datetime(text, best_fmt)
            if single.notna().sum() >= mixed.notna().sum():
                return single, best_fmt
        return mixed, mixed_format


def _mixed_dates(values: pd.Series, date_format: str) -> pd.Series:
    return _to_datetime(values, "mixed", dayfirst=date_format == "mixed dayfirst")


def parse_dates_as(values: pd.Series, date_format: str) -> pd.Series:
    """Dates read with a format ``_parse_dates`` chose; each value on its own, so any batch reads alike."""
    text = values.astype(object).where(values.notna(), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not date_format.startswith("mixed"):
            return _to_datetime(text, date_format)
        # Value-by-value parsing is slow: parse each distinct text once and map it back to the rows.
        distinct = pd.Series(pd.unique(text.dropna()), dtype=object)
        return text.map(dict(zip(distinct, _mixed_dates(distinct, date_format)))).astype("datetime64[ns]")


def _distinct(series: pd.Series) -> int:
    try:
        return int(series.nunique(dropna=True))
    except TypeError:  # unhashable cells (lists from JSON)
        return int(series.dropna().astype(str).nunique())


def drop_empty_and_constant(frame: pd.DataFrame, report: CleaningReport, keep=()) -> pd.DataFrame:
    """Drop columns with no values or one value in every row (they carry no information); never the kept ones."""
    out = frame
    for col in list(out.columns):
        if col in keep:
            continue
        present = int(out[col].notna().sum())
        if present == 0:
            report.dropped_columns[col] = "all values missing"
        elif len(out) > 1 and present == len(out) and _distinct(out[col]) == 1:
            report.dropped_columns[col] = "constant"
    return out.drop(columns=list(report.dropped_columns))


def mark_duplicates(frame: pd.DataFrame, report: CleaningReport) -> pd.Series:
    """True for rows that repeat an earlier row exactly (compared through a 64-bit hash of each row)."""
    if frame.shape[1] == 0:
        report.duplicate_rows = 0
        return pd.Series(False, index=frame.index)
    try:
        hashes = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells: compare their text
        hashes = pd.util.hash_pandas_object(frame.astype(str), index=False)
    duplicated = hashes.duplicated(keep="first")
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


def text_to_object(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain Python strings with NaN for missing, the form the modelling code expects."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == TEXT_DTYPE or isinstance(out[col].dtype, pd.StringDtype):
            values = out[col].astype(object)
            out[col] = values.where(out[col].notna(), np.nan)
    return out


def clean(raw: pd.DataFrame, protect: tuple[str, ...] = ()) -> CleanResult:
    """The default pipeline: text, booleans, numbers, dates, empty/constant columns, duplicates, outliers.

    Rows are never dropped; ``protect`` (the target) is never dropped and never used to mark outliers.
    """
    report = CleaningReport()
    report.protected = [c for c in protect if c in raw.columns]
    frame = normalize_text(raw, report)
    frame = convert_booleans(frame, report)
    frame = convert_numbers(frame, report)
    frame = convert_to_datetime(frame, report)
    frame = drop_empty_and_constant(frame, report, keep=protect)
    frame = text_to_object(frame)
    duplicates = mark_duplicates(frame, report)
    outliers = remove_outliers(frame, report, protect=protect)
    frame = frame.reset_index(drop=True)
    mask = (~duplicates & ~outliers).reset_index(drop=True)
    return CleanResult(frame=frame, report=report, training_mask=mask)
