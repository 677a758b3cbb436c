"""Loading tabular files exactly as they are: format, encoding and dialect detection.

The loader never changes values: delimited text is read as strings (typing is the
cleaning stage's job) so the raw dataset keeps the original cells.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from automodel.errors import InputFileError, plural
from automodel.ingest.archive import (InputLimits, check_cell_sizes, check_columns, check_header_width, check_line_lengths,
                                      check_workbook, inflate)
from automodel.ingest.archive import SUPPORTED_SUFFIXES, is_supported  # noqa: F401  (the loader's API: intake, sensors)
from automodel.ingest.delimited import Decisions, read_text
from automodel.ingest.encoding import detect_encoding, guess_encoding  # noqa: F401  (detect_encoding: the loader's API)

_SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 200
# Delimited cells are kept as Arrow-backed text: a tenth of the memory of Python strings and fast string kernels.
TEXT_DTYPE = pd.StringDtype("pyarrow")


@dataclass
class LoadInfo:
    """What the loader found out about a file."""

    source: str
    format: str
    size_bytes: int
    sha256: str
    encoding: str | None = None
    encoding_confidence: float | None = None
    delimiter: str | None = None
    quotechar: str | None = None
    escapechar: str | None = None
    has_header: bool = True
    skipped_preamble_rows: int = 0
    compression: str | None = None
    rows: int = 0
    columns: int = 0
    problems: list[str] = field(default_factory=list)
    # What the delimited-text reader decided (automodel.ingest.delimited): reported by inspect and raw_dataset.
    dialect: str | None = None
    header_rows: int = 1
    header_cells: list[str] = field(default_factory=list)
    tables_found: int = 1
    other_tables: list[dict] = field(default_factory=list)
    repaired_rows: list[dict] = field(default_factory=list)
    literal_quote_lines: list[int] = field(default_factory=list)
    reader: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def dialect_markdown(self) -> str:
        """How the file was read, for the Dagster UI."""
        rows = {"format": self.format, "compression": self.compression or "none",
                "encoding": self.encoding if self.encoding_confidence in (None, 1.0) else f"{self.encoding} (confidence {self.encoding_confidence:.2f})",
                "delimiter": repr(self.delimiter), "quote": repr(self.quotechar), "escape": repr(self.escapechar),
                "header row": ("yes" if self.header_rows <= 1 else f"{self.header_rows} rows merged") if self.has_header
                else "no (columns named column_1...)",
                "lines skipped before the table": self.skipped_preamble_rows,
                "tables in the file": self.tables_found if self.format == "delimited" else None,
                "rows repaired": (f"{len(self.repaired_rows)} (lines {', '.join(str(r['line']) for r in self.repaired_rows[:20])}"
                                  f"{'...' if len(self.repaired_rows) > 20 else ''})") if self.repaired_rows else None}
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items() if v is not None)
        return table + ("\n\nProblems: " + "; ".join(self.problems) if self.problems else "")


def _looks_binary(text: str) -> bool:
    sample = text[:_SNIFF_BYTES]
    if not sample:
        return False
    bad = len(_CONTROL.findall(sample))
    return bad / len(sample) > 0.01


_COMMENT_LINE = re.compile(r"^[ \t]*#[^\n]*(\n|$)", re.MULTILINE)
_NOT_BLANK = re.compile(r"\S")
# Control characters other than \t \n \f \r, and U+FFFD. SUB (0x1a) is left out: text exported from DOS-era systems
# uses it for characters it could not encode (a real public table has 657 of them in 38 KB of plain English).
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x19\x1b-\x1f\ufffd]")


def _drop_comment_lines(text: str, quote: str = '"') -> tuple[str, int]:
    """Remove whole lines starting with '#', but only where a record starts: a quoted value running over
    several lines may have a line that starts with '#' ("#hashtag") and that is data."""
    kept, removed, inside = [], 0, False
    for line in text.split("\n"):
        if not inside and line.lstrip().startswith("#"):
            removed += 1
            continue
        kept.append(line)
        if line.count(quote) % 2:
            inside = not inside
    return "\n".join(kept), removed


def _read_delimited(name: str, data: bytes, info: LoadInfo) -> pd.DataFrame:
    encoding = _note_encoding(data, info)
    text = data.decode(encoding, errors="replace")
    if _looks_binary(text) or "\x00" in text[:_SNIFF_BYTES]:
        raise InputFileError(f"{name} does not look like text: it may be a binary file with a .csv name; export it as CSV and try again.")
    if not _NOT_BLANK.search(text):
        return pd.DataFrame()
    if "\r" in text and text.count("\r") > 2 * text.count("\n"):
        # Lines ended by CR alone (old Mac files); a CRLF inside a quoted value stays one (the reader keeps a value's
        # own line ends when it joins the lines of a value spanning lines).
        text = text.replace("\r\n", "\x01").replace("\r", "\n").replace("\x01", "\r\n")
    if "#" in text and _COMMENT_LINE.search(text):  # the plain scan first: the regex is slow on large files
        text, removed = _drop_comment_lines(text)
        if removed:
            info.problems.append(f"{plural(removed, 'comment line')} starting with '#' skipped")
        if not _NOT_BLANK.search(text):
            return pd.DataFrame()
    frame, decisions = read_text(text, name)
    _record_decisions(info, decisions)
    return frame


def _record_decisions(info: LoadInfo, decisions: Decisions) -> None:
    dialect = decisions.dialect
    info.delimiter, info.quotechar, info.escapechar = dialect.delimiter, dialect.quotechar or None, dialect.escapechar
    info.dialect = dialect.describe()
    info.has_header, info.header_rows = decisions.has_header, decisions.header_rows
    info.header_cells = list(decisions.header_cells)
    info.skipped_preamble_rows = decisions.lines_before_table
    info.tables_found = 1 + len(decisions.other_tables)
    info.other_tables = list(decisions.other_tables)
    info.repaired_rows = list(decisions.repaired_rows)
    info.literal_quote_lines = list(decisions.literal_quotes)
    info.reader = decisions.reader
    info.problems.extend(decisions.problems())


def _note_encoding(data: bytes, info: LoadInfo) -> str:
    guess = guess_encoding(data)
    info.encoding, info.encoding_confidence = guess.encoding, guess.confidence
    if guess.note:
        info.problems.append(guess.note)
    return guess.encoding


def _read_json(name: str, data: bytes, info: LoadInfo) -> pd.DataFrame:
    text = data.decode(_note_encoding(data, info), errors="replace").strip()
    if not text:
        raise InputFileError(f"{name} is empty; upload a file with at least one record.")
    try:
        if text.startswith("["):
            records = json.loads(text)
        elif name.lower().endswith((".jsonl", ".ndjson")) or "\n" in text:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            obj = json.loads(text)
            if isinstance(obj, dict):
                records = next((v for v in obj.values() if isinstance(v, list)), [obj])
            else:
                records = obj
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{name} is not valid JSON or JSON Lines (line {exc.lineno}: {exc.msg}); fix the file and try again.") from exc
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputFileError(f"{name} must hold a list of objects (one per row); nested or scalar JSON is not a table.")
    return pd.json_normalize(records)


def _excel_table(name: str, sheets: dict[str, pd.DataFrame], info: LoadInfo) -> pd.DataFrame:
    """The first sheet with data; title rows above the header are skipped as in delimited text."""
    filled = {title: sheet for title, sheet in sheets.items() if (sheet != "").to_numpy().any()}
    if not filled:
        raise InputFileError(f"{name} has no filled cells in any sheet; put the table in the first sheet and try again.")
    title, sheet = next(iter(filled.items()))
    if len(sheets) > 1:
        info.problems.append(f"the workbook has {len(sheets)} sheets; read {title!r}")
    sheet = sheet.loc[:, (sheet != "").any(axis=0)]
    widths = (sheet.head(_SNIFF_LINES) != "").sum(axis=1)
    widths = widths[widths > 0]
    expected = int(widths.mode().max())
    # A header may leave its first cell blank (an index column written by pandas): one cell short still counts.
    header_at = int(widths[widths >= (expected - 1 if expected > 2 else expected)].index[0])
    skipped = int(sheet.index.get_loc(header_at))
    if skipped:
        info.skipped_preamble_rows = skipped
        info.problems.append(f"{plural(skipped, 'row')} before the table (titles, notes) skipped")
    frame = sheet.iloc[skipped + 1:].reset_index(drop=True)
    frame.columns = [str(c) for c in sheet.iloc[skipped]]
    frame = frame.loc[(frame != "").any(axis=1)].reset_index(drop=True)  # blank spacer rows of a worksheet are not data
    return frame


def load_bytes(name: str, data: bytes, source: str | None = None, limits: InputLimits | None = None,
               allow_empty: bool = False) -> tuple[pd.DataFrame, LoadInfo]:
    """Parse a file's bytes into a DataFrame without changing any value; compressed files inflate within ``limits``.

    An empty file or one with a header and no rows is refused in one sentence unless ``allow_empty`` (``inspect``
    describes such files: 0 rows and the columns found)."""
    info = LoadInfo(source=source or name, format="", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if not data:
        if allow_empty:
            info.format, info.header_rows, info.tables_found = "empty", 0, 0
            info.problems.append("the file is empty (0 bytes)")
            return pd.DataFrame(), info
        raise InputFileError(f"{name} is empty (0 bytes); upload a file with a header row and data.")
    limits = limits or InputLimits.from_env()
    inner_name, payload, compression = inflate(name, data, limits)
    info.compression = compression
    lower = inner_name.lower()
    if lower.endswith((".parquet", ".pq")) or payload[:4] == b"PAR1":
        info.format = "parquet"
        try:
            frame = pd.read_parquet(io.BytesIO(payload))
        except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
            raise InputFileError(f"{name} is not a readable Parquet file ({type(exc).__name__}); re-export it.") from exc
    elif lower.endswith(".xlsx") or payload[:4] == b"PK\x03\x04":
        info.format = "excel"
        check_workbook(name, payload, limits)
        try:
            sheets = pd.read_excel(io.BytesIO(payload), sheet_name=None, header=None, dtype=str, keep_default_na=False)
        except Exception as exc:  # openpyxl raises many types for damaged workbooks
            raise InputFileError(f"{name} is not a readable Excel workbook ({type(exc).__name__}); save it again as .xlsx or CSV.") from exc
        frame = _excel_table(name, sheets, info)
    elif lower.endswith((".json", ".jsonl", ".ndjson")):
        info.format = "json"
        frame = _read_json(inner_name, payload, info)
    else:
        info.format = "delimited"
        check_line_lengths(name, payload, limits)
        check_header_width(name, payload, limits)
        frame = _read_delimited(inner_name, payload, info)
        check_cell_sizes(name, frame, limits)
    frame = _fix_column_names(frame, info)
    info.rows, info.columns = int(frame.shape[0]), int(frame.shape[1])
    if frame.shape[1] == 0:
        if allow_empty:
            info.header_rows, info.tables_found = 0, 0
            info.problems.append("the file holds no table (only blank or comment lines)")
            return frame, info
        raise InputFileError(f"{name} is empty (no table in it); upload a file with a header row and at least one data row.")
    check_columns(name, frame.shape[1], limits)
    if len(frame) == 0:
        if allow_empty:
            info.problems.append("the file has a header but no data rows")
            return frame, info
        raise InputFileError(f"{name} has a header but no data rows; add data and try again.")
    return frame, info


def _fix_column_names(frame: pd.DataFrame, info: LoadInfo) -> pd.DataFrame:
    """Blank and repeated names get a usable one (a column needs a unique name to be picked as a target or feature);
    the header as written stays in ``info.header_cells``."""
    names, seen, blank, repeated = [], {}, [], []
    for i, col in enumerate(frame.columns):
        name = str(col).strip().lstrip("\ufeff")
        if not name or name.startswith("Unnamed:"):
            name = f"column_{i + 1}"
            blank.append(i + 1)
        base = name
        if name in seen:
            seen[base] += 1
            name = f"{base}_{seen[base]}"
            repeated.append(f"{base!r} -> {name!r}")
        seen.setdefault(name, 0)
        names.append(name)
    if blank:
        info.problems.append(f"header cell{'s' if len(blank) > 1 else ''} {', '.join(map(str, blank))} blank: renamed "
                             + ", ".join(f"column_{i}" for i in blank) + " so every column can be named as a target or feature")
    if repeated:
        info.problems.append("repeated column names renamed: " + ", ".join(repeated))
    frame.columns = names
    return frame


def load_path(path: str | Path, limits: InputLimits | None = None) -> tuple[pd.DataFrame, LoadInfo]:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist; check the path and try again.")
    if not path.is_file():
        raise InputFileError(f"{path} is not a file; give the path of a CSV, Parquet, Excel or JSON file.")
    return load_bytes(path.name, path.read_bytes(), source=str(path), limits=limits)
