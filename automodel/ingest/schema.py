"""The training schema: what cleaning decided on the training file, replayed on every batch scored later.

Cleaning decides per column from the values it sees (is this column numbers, dates, booleans? which unit,
which date format, which spelling of "Yes"? is it constant?). Deciding again on a batch to score would make
a row's prediction depend on the rows that came with it: a column constant in three rows would be dropped,
'12' would be read as an integer in one batch and a float in another. So training records the decisions
here (a plain, JSON-serialisable object saved with the model) and ``TrainingSchema.apply`` reads any batch
exactly as training read its file, value by value, and reports what it had to do: columns missing and
imputed, categories the model never saw, extra columns ignored, values that could not be read.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from automodel.errors import ScoringError
from automodel.ingest.cleaning import (
    FALSE_TOKENS,
    TRUE_TOKENS,
    CleaningReport,
    _as_text,
    _is_text,
    normalize_text,
    parse_dates_as,
    read_numbers,
)

SCHEMA_VERSION = 1
MAX_LEVELS = 1_000  # text columns with more distinct values are free text or identifiers: no "unseen category" there
SHOWN_VALUES = 5
FEW_ROWS = 64  # batches up to this many rows are read cell by cell where that is cheaper than pandas


@dataclass
class ColumnSchema:
    """How one training column was read, and what its cleaned values looked like."""

    name: str
    dtype: str  # the cleaned training column's dtype: 'int64', 'float64', 'boolean', 'datetime64[ns]', 'object', ...
    text: bool = False  # the column was text as loaded (every delimited file is)
    number: bool = False  # numbers were read from text
    unit: str | None = None  # a unit written after every number ('12 min') and removed
    decimal_comma: bool = False  # '1.234,5' means 1234.5
    boolean: bool = False  # yes/no, true/false... read as booleans
    date_format: str | None = None  # strptime format, 'ISO8601', 'mixed' or 'mixed dayfirst'
    epoch_unit: str | None = None  # 's' or 'ms': numbers are seconds or milliseconds since 1970
    case_map: dict[str, str] | None = None  # lower-cased value -> the spelling training used ('yes' -> 'Yes')
    levels: list[str] | None = None  # the distinct values of a text column, when few enough to be categories
    had_missing: bool = False  # some training rows had no value: the model learned to do without it

    @cached_property
    def level_set(self) -> frozenset:
        return frozenset(self.levels or ())

    @cached_property
    def family(self) -> str:
        if self.dtype in ("bool", "boolean"):
            return "boolean"
        if self.dtype.startswith("datetime64"):
            return "datetime"
        try:
            if pd.api.types.is_numeric_dtype(pd.api.types.pandas_dtype(self.dtype)):
                return "number"
        except TypeError:
            pass
        return "text" if self.text else "other"

    def replay(self, series: pd.Series) -> tuple[pd.Series, int]:
        """The batch's column read as training read it, and how many values could not be read (now missing)."""
        return self.read(_normalised(pd.DataFrame({"v": series}))["v"])

    def read(self, series: pd.Series) -> tuple[pd.Series, int]:
        """``replay`` for a column whose text is already normalised (stripped, missing-value tokens removed)."""
        given = series.notna()
        family = self.family
        if family == "boolean":
            values = self._booleans(series)
        elif family == "datetime":
            values = self._dates(series)
        elif family == "number":
            values = self._cast_number(self._numbers(series))
        elif family == "text":
            values = self._text(series)
        else:
            values = series
        return values, int((given & values.isna()).sum())

    def _numbers(self, series: pd.Series) -> pd.Series:
        if not _is_text(series):
            return pd.to_numeric(series, errors="coerce")
        text = _as_text(series)
        if self.unit:
            text = text.str.replace(rf"\s*{re.escape(self.unit)}$", "", regex=True)
        return read_numbers(text, self.decimal_comma)[0]

    def _cast_number(self, values: pd.Series) -> pd.Series:
        values = values.astype(float) if not pd.api.types.is_float_dtype(values) else values
        present = values.dropna()
        whole = bool(np.all(np.mod(present.to_numpy(), 1) == 0)) and (present.abs() < 2**53).all()
        dtype = pd.api.types.pandas_dtype(self.dtype)
        if pd.api.types.is_integer_dtype(dtype):
            if not whole:
                return values.astype("float64")
            if values.isna().any():  # a nullable integer keeps '12' spelled as training spelled it (not '12.0')
                return values.astype("Int64")
        try:
            return values.astype(dtype)
        except (TypeError, ValueError):
            return values.astype("float64")

    def _booleans(self, series: pd.Series) -> pd.Series:
        if not _is_text(series):
            out = pd.Series(pd.NA, index=series.index, dtype="boolean")
            numeric = pd.to_numeric(series, errors="coerce")
            out[numeric == 1] = True
            out[numeric == 0] = False
            return out
        lowered = _as_text(series).str.strip().str.lower()
        out = pd.Series(pd.NA, index=series.index, dtype="boolean")
        out[lowered.isin(TRUE_TOKENS).fillna(False).astype(bool)] = True
        out[lowered.isin(FALSE_TOKENS).fillna(False).astype(bool)] = False
        return out

    def _dates(self, series: pd.Series) -> pd.Series:
        if self.epoch_unit:
            numbers = self._numbers(series) if _is_text(series) else pd.to_numeric(series, errors="coerce")
            values = pd.to_datetime(numbers, unit=self.epoch_unit, errors="coerce")
        elif _is_text(series):
            values = parse_dates_as(series, self.date_format or "mixed")
        else:
            values = pd.to_datetime(series, errors="coerce")
        try:
            return values.astype(self.dtype)
        except (TypeError, ValueError):
            return values

    def _text(self, series: pd.Series) -> pd.Series:
        if not _is_text(series):  # numbers where training had text (a typed file format): written as a person would
            series = series.map(_as_written)
        values = _as_text(series)
        if self.case_map:
            spelled = values.str.lower().map(self.case_map)
            values = spelled.where(spelled.notna(), values)
        values = values.astype(object)
        return values.where(values.notna(), np.nan)


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Text stripped and missing-value tokens made missing, as cleaning does first (all columns in one pass)."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if categorical:
        frame = frame.astype(dict.fromkeys(categorical, object))
    return normalize_text(frame, CleaningReport(), unify_case=False)


def _as_written(value):
    """A typed value as text the way a delimited file writes it: 12.0 read from Parquet is '12', not '12.0'."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return value
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class ScoringReport:
    """What replaying the training schema on a batch had to do, in the user's column names."""

    rows: int = 0
    missing_imputed: list[str] = field(default_factory=list)  # model inputs absent from the batch, filled as missing values
    missing_unused: list[str] = field(default_factory=list)  # training columns absent from the batch that the model does not use
    unseen_categories: dict[str, dict] = field(default_factory=dict)  # column -> {"rows": n, "values": first few}
    extra_columns: list[str] = field(default_factory=list)  # batch columns the model was not trained on, ignored
    renamed: dict[str, str] = field(default_factory=dict)  # batch spelling -> training name ('job ' -> 'Job')
    unreadable: dict[str, int] = field(default_factory=dict)  # column -> values that could not be read as training read them
    replayed: bool = True  # False for a model saved before training schemas existed (cleaning re-decided, model inputs kept)

    def notes(self) -> list[str]:
        """One plain sentence per thing done, for the summary and the run's metadata."""
        out = []
        if not self.replayed:
            out.append("The model was saved without its training schema, so this batch was cleaned afresh (the model's columns were kept).")
        if self.missing_imputed:
            out.append(f"Missing from the file and scored as unknown (imputed as in training): {_names(self.missing_imputed)}.")
        for col, seen in self.unseen_categories.items():
            values = ", ".join(repr(v) for v in seen["values"])
            out.append(f"{seen['rows']} row(s) have a value of {col!r} the model never saw in training ({values}); "
                       "they were scored as an unknown category.")
        if self.unreadable:
            parts = ", ".join(f"{col!r} ({n})" for col, n in self.unreadable.items())
            out.append(f"Values that could not be read as training read them were scored as missing: {parts}.")
        if self.renamed:
            out.append("Columns matched to the training names: " + ", ".join(f"{a!r} as {b!r}" for a, b in self.renamed.items()) + ".")
        if self.extra_columns:
            out.append(f"Columns the model was not trained on were ignored: {_names(self.extra_columns)}.")
        if self.missing_unused:
            out.append(f"Not in the file, and not used by the model: {_names(self.missing_unused)}.")
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "notes": self.notes()}


def _names(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _key(name) -> str:
    return " ".join(str(name).split()).casefold()


@dataclass
class TrainingSchema:
    """The training file's cleaning decisions and the model's inputs; ``apply`` reads a batch the same way."""

    columns: list[ColumnSchema]
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why cleaning dropped it (constant, empty)
    target: str | None = None
    features: list[str] = field(default_factory=list)  # the columns the model reads (set when the model is saved)
    join_keys: list[str] = field(default_factory=list)  # columns the model's lake enrichment joins on
    roles: dict[str, str] = field(default_factory=dict)  # each column's role in training (a scoring run shows these, not a guess)
    version: int = SCHEMA_VERSION

    @classmethod
    def capture(cls, raw: pd.DataFrame, cleaned: pd.DataFrame, report: CleaningReport, target: str | None = None) -> TrainingSchema:
        """The schema of a training file: ``raw`` as loaded, ``cleaned`` and ``report`` from ``clean`` on it."""
        columns = []
        for name in cleaned.columns:
            decided = report.decisions.get(name, {})
            values = cleaned[name]
            column = ColumnSchema(name=str(name), dtype=str(values.dtype), text=bool(name in raw.columns and _is_text(raw[name])),
                                  number=bool(decided.get("number")), unit=decided.get("unit"),
                                  decimal_comma=bool(decided.get("decimal_comma")), boolean=bool(decided.get("boolean")),
                                  date_format=decided.get("date_format"), epoch_unit=decided.get("epoch_unit"),
                                  case_map=decided.get("case_map"), had_missing=bool(values.isna().any()))
            if column.family != "text":
                column.case_map = None  # '12 °F' looks like a label to the case step; as a number it has no spelling
            else:
                try:
                    distinct = pd.unique(values.dropna())
                except TypeError:  # unhashable cells (lists from JSON): not categories
                    distinct = None
                if distinct is not None and len(distinct) <= MAX_LEVELS and all(isinstance(v, str) for v in distinct):
                    column.levels = sorted(distinct)
            columns.append(column)
        return cls(columns=columns, dropped=dict(report.dropped_columns), target=target)

    def for_model(self, features: list[str], join_keys: list[str] | None = None, target: str | None = None) -> TrainingSchema:
        """This schema with the model's inputs recorded (what scoring needs and what it can do without)."""
        known = {c.name for c in self.columns}
        return TrainingSchema(columns=self.columns, dropped=self.dropped, target=target or self.target,
                              features=[f for f in features if f in known], join_keys=[k for k in join_keys or [] if k in known],
                              roles={k: v for k, v in self.roles.items() if k in known}, version=self.version)

    @property
    def required(self) -> list[str]:
        """Inputs the model cannot do without: features that had a value in every training row, and join keys."""
        by_name = {c.name: c for c in self.columns}
        needed = [f for f in self.features if not by_name[f].had_missing]
        return needed + [k for k in self.join_keys if k not in needed]

    def apply(self, raw: pd.DataFrame, memo: ReplayMemo | None = None) -> tuple[pd.DataFrame, ScoringReport]:
        """``raw`` (as loaded) read exactly as the training file was: same columns, types, spellings; never
        decided from the batch. Raises ScoringError, one sentence, when a column the model needs is absent.
        ``memo``: a warm model's memory of cells it has read before (ReplayMemo), used for a few rows of text."""
        report = ScoringReport(rows=len(raw))
        matched = self._match(raw, report)
        required = set(self.required)
        used = set(self.features) | set(self.join_keys)
        absent_required = [c.name for c in self.columns if c.name not in matched and c.name in required]
        if absent_required:
            optional = [f for f in self.features if f not in required]
            can_skip = f" (the model can do without {_names(optional, 4)})" if optional else ""
            raise ScoringError(f"The file to score lacks {_names(absent_required, 4)}, which the model needs: it had a value in every "
                               f"training row{can_skip}; add the column and score again.")
        index = pd.RangeIndex(len(raw))
        given = [c.name for c in self.columns if c.name in matched]
        batch = raw[[matched[name] for name in given]].reset_index(drop=True)
        batch.columns = given
        if memo is not None and memo.covers(batch):
            read = memo.read
        else:
            batch, read = _normalised(batch), ColumnSchema.read
        out: dict[str, pd.Series] = {}
        for column in self.columns:
            if column.name not in matched:
                if column.name in used:
                    out[column.name] = read(column, pd.Series([None] * len(raw), index=index, dtype=object))[0]
                    report.missing_imputed.append(column.name)
                elif column.name != self.target:
                    report.missing_unused.append(column.name)
                continue
            values, unreadable = read(column, batch[column.name])
            out[column.name] = values
            if unreadable:
                report.unreadable[column.name] = unreadable
            if column.levels is not None and column.name in used:
                self._note_unseen(column, values, report)
        frame = pd.DataFrame(out, index=index)
        return frame, report

    def _match(self, raw: pd.DataFrame, report: ScoringReport) -> dict[str, str]:
        """Training column -> the batch's column: the same name, else the same name up to case and spacing."""
        matched = {c.name: c.name for c in self.columns if c.name in raw.columns}
        taken = set(matched.values())
        by_key: dict[str, list] = {}
        for col in raw.columns:
            if col not in taken:
                by_key.setdefault(_key(col), []).append(col)
        for column in self.columns:
            candidates = by_key.get(_key(column.name), [])
            if column.name not in matched and len(candidates) == 1:
                matched[column.name] = candidates[0]
                report.renamed[str(candidates[0])] = column.name
                taken.add(candidates[0])
        known = {c.name for c in self.columns} | set(self.dropped)
        report.extra_columns = [str(c) for c in raw.columns if c not in taken and c not in known]
        return matched

    @staticmethod
    def _note_unseen(column: ColumnSchema, values: pd.Series, report: ScoringReport) -> None:
        if len(values) <= FEW_ROWS:  # a few rows (an API request): a set lookup, not pandas' per-call cost
            levels = column.level_set
            unseen = [v for v in values.tolist() if isinstance(v, str) and v not in levels]
        else:
            present = values.dropna()
            unseen = present[~present.isin(column.levels)].tolist()
        if unseen:
            report.unseen_categories[column.name] = {"rows": len(unseen), "values": [str(v) for v in list(dict.fromkeys(unseen))[:SHOWN_VALUES]]}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingSchema:
        """Fields this version does not know (a schema saved by a newer one) are left out rather than refused."""
        column_fields, schema_fields = set(ColumnSchema.__dataclass_fields__), set(cls.__dataclass_fields__) - {"columns"}
        columns = [ColumnSchema(**{k: v for k, v in c.items() if k in column_fields}) for c in data.get("columns", [])]
        return cls(columns=columns, **{k: v for k, v in data.items() if k in schema_fields})


class ReplayMemo:
    """What each text cell read as, remembered by a warm model so the next request with that cell skips the reading.

    Reading a column is value by value (``read_numbers``, ``parse_dates_as`` and the text normalisation read each
    value on its own), so a cell reads the same in any batch; only a number column's dtype depends on the batch (an
    integer column with a gap becomes nullable) and is decided on the assembled values by ``_cast_number`` as before.
    A cell not seen yet is read by the ordinary path, as a batch of one. Pandas' per-call cost made a one-row
    request's replay of the penguins' seven columns about 20 ms; a remembered row takes well under one.
    ``max_rows``: larger batches take the ordinary path (it is vectorised). ``capacity``: cells kept per column
    (the memory is emptied when full: an API model sees few distinct values per column, or many that recur)."""

    def __init__(self, max_rows: int = FEW_ROWS, capacity: int = 10_000):
        self.max_rows, self.capacity = max_rows, capacity
        self._cells: dict[str, dict] = {}

    def covers(self, batch: pd.DataFrame) -> bool:
        """A few rows, every cell text or missing (as a delimited file or JSON rows give them)."""
        if len(batch) > self.max_rows:
            return False
        return all(cell is None or type(cell) is str for column in batch.columns for cell in batch[column].tolist())

    def read(self, column: ColumnSchema, series: pd.Series) -> tuple[pd.Series, int]:
        known = self._cells.setdefault(column.name, {})
        if len(known) > self.capacity:
            known.clear()
        values, unreadable, hit = [], 0, None
        for cell in series.tolist():
            hit = known.get(cell)
            if hit is None:
                read, missed = column.replay(pd.Series([cell], dtype=object))
                hit = known[cell] = (read.iloc[0], missed, read.dtype, read)
            values.append(hit[0])
            unreadable += hit[1]
        index = series.index
        if len(values) == 1 and index.equals(hit[3].index):
            return hit[3], unreadable  # the cell's own one-row reading (copy-on-write: the caller cannot change it)
        if column.family == "number":
            floats = pd.Series([np.nan if pd.isna(v) else float(v) for v in values], index=index, dtype="float64")
            return column._cast_number(floats), unreadable
        dtype = hit[2] if hit is not None else object  # every cell of a column reads to one dtype
        if column.family == "text" or dtype == object:
            return pd.Series(values, index=index, dtype=object), unreadable
        return pd.Series(values, index=index, dtype=dtype), unreadable
