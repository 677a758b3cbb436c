"""Loading tabular files exactly as they are: format, encoding and dialect detection.

The loader never changes values: delimited text is read as strings (typing is the
cleaning stage's job) so the raw dataset keeps the original cells.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from automodel.errors import InputFileError
from automodel.ingest.archive import COMPRESSED_SUFFIXES, InputLimits, check_columns, check_workbook, inflate
from automodel.ingest.encoding import detect_encoding, guess_encoding  # noqa: F401  (detect_encoding: the loader's API)

SUPPORTED_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".psv", ".dat", ".parquet", ".pq", ".xlsx", ".json", ".jsonl", ".ndjson",
) + COMPRESSED_SUFFIXES
_SNIFF_BYTES = 64 * 1024
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

    def to_dict(self) -> dict:
        return asdict(self)

    def dialect_markdown(self) -> str:
        """How the file was read, for the Dagster UI."""
        rows = {"format": self.format, "compression": self.compression or "none",
                "encoding": self.encoding if self.encoding_confidence in (None, 1.0) else f"{self.encoding} (confidence {self.encoding_confidence:.2f})",
                "delimiter": repr(self.delimiter), "quote": repr(self.quotechar), "escape": repr(self.escapechar),
                "header row": "yes" if self.has_header else "no (columns named column_1...)",
                "lines skipped before the table": self.skipped_preamble_rows}
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items() if v is not None)
        return table + ("\n\nProblems: " + "; ".join(self.problems) if self.problems else "")


def is_supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def _looks_binary(text: str) -> bool:
    sample = text[:_SNIFF_BYTES]
    if not sample:
        return False
    bad = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\r\n\t\f") or ch == "\ufffd")
    return bad / len(sample) > 0.01


_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_LINES = 200
_COMMENT_LINE = re.compile(r"^[ \t]*#[^\n]*(\n|$)", re.MULTILINE)


def _field_counts(lines: list[str], delimiter: str, quote: str) -> list[int]:
    """Quote-aware field count of each non-blank line (a quoted delimiter is not a split)."""
    reader = csv.reader(lines, delimiter=delimiter, quotechar=quote)
    counts = []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                counts.append(len(row))
    except csv.Error:
        pass
    return counts


def _choose_delimiter(lines: list[str], quote: str) -> tuple[str, int]:
    """The delimiter whose rows agree best on a field count above one; returns (delimiter, that count)."""
    best, best_score = (",", 1), (-1.0, 0)
    for delimiter in _DELIMITERS:
        counts = _field_counts(lines, delimiter, quote)
        if not counts:
            continue
        modal = max(set(counts), key=lambda c: (counts.count(c), c))
        if modal < 2:
            continue
        # Consistency first, then more fields: a delimiter that splits every row the same way wins.
        score = (counts.count(modal) / len(counts), modal)
        if score > best_score:
            best, best_score = (delimiter, modal), score
    return best


def _sniff_quote(lines: list[str]) -> tuple[str, str | None]:
    sample = "\n".join(lines[:50])
    quote, escape = '"', None
    if sample.count("'") > sample.count('"') * 2 + 4:
        try:
            found = csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).quotechar
            quote = found or '"'
        except csv.Error:
            pass
    if "\\" + quote in sample:
        escape = "\\"
    return quote, escape


def _preamble_rows(lines: list[str], delimiter: str, quote: str, expected: int) -> int:
    """Leading lines (titles, notes, blank lines) before the first row with the table's field count."""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        counts = _field_counts([line], delimiter, quote)
        # A header may be one field short of rows that end with a delimiter ("1,2,3,"): it still starts the table.
        if counts and (counts[0] == expected or (expected > 2 and counts[0] == expected - 1)):
            return i
    return 0


def _is_numberish(cell: str) -> bool:
    cell = cell.strip().replace(",", "")
    if not cell:
        return False
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _has_header(rows: list[list[str]]) -> bool:
    """A first row of only numbers above rows of numbers is data, not a header."""
    if len(rows) < 2:
        return True
    first, rest = rows[0], rows[1:6]
    if not any(_is_numberish(cell) for cell in first):
        return True
    numeric_in_first = [i for i, cell in enumerate(first) if _is_numberish(cell)]
    if len(numeric_in_first) < len(first):
        return True  # a mix of labels and numbers: a header with numeric-looking names is rarer than this rule's misses
    return not all(all(i < len(r) and _is_numberish(r[i]) for i in numeric_in_first) for r in rest)


def _unclosed_quote_line(text: str, quote: str) -> int | None:
    """1-based line where a quoted field opens and never closes, or None."""
    if text.count(quote) % 2 == 0:
        return None
    open_line, inside = None, False
    for number, line in enumerate(text.split("\n"), start=1):
        if line.count(quote) % 2:
            inside = not inside
            open_line = number if inside else None
    return open_line


def _rows(lines, delimiter: str, quote: str, escape: str | None, limit: int | None = None) -> list[list[str]]:
    """Parsed rows of the first lines; rows after a line the csv module rejects are left out (a sample only)."""
    out = []
    try:
        for row in csv.reader(lines, delimiter=delimiter, quotechar=quote, escapechar=escape):
            out.append(row)
            if limit and len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


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
    if not text.strip():
        raise InputFileError(f"{name} is empty; upload a file with a header row and at least one data row.")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _COMMENT_LINE.search(text):
        text, removed = _drop_comment_lines(text)
        if removed:
            info.problems.append(f"{_plural(removed, 'comment line')} starting with '#' skipped")
        if not text.strip():
            raise InputFileError(f"{name} holds only comment lines; upload a file with a header row and data.")
    head_lines = text[:_SNIFF_BYTES].split("\n")[:_SNIFF_LINES]
    quote, escape = _sniff_quote(head_lines)
    delimiter, expected = _choose_delimiter(head_lines, quote)
    if name.lower().endswith(".tsv"):
        delimiter, expected = "\t", max(_field_counts(head_lines, "\t", quote) or [1])
    skip = _preamble_rows(head_lines, delimiter, quote, expected) if expected > 1 else 0
    if skip:
        body = text.split("\n", skip)[-1]
        info.problems.append(f"{_plural(skip, 'line')} before the table (titles, notes) skipped")
    else:
        body = text
    bad_line = _unclosed_quote_line(body, quote) if escape is None else None
    if bad_line is not None:
        raise InputFileError(
            f"{name} has a quote ({quote}) opened on line {bad_line + skip} that is never closed; close or remove it and try again."
        )
    head_rows = _rows(body[:_SNIFF_BYTES].split("\n")[:20], delimiter, quote, escape)
    head_rows = [r for r in head_rows if r and any(c.strip() for c in r)]
    info.has_header = _has_header(head_rows)
    info.encoding, info.delimiter, info.quotechar, info.escapechar, info.skipped_preamble_rows = encoding, delimiter, quote, escape, skip
    frame = _read_body_fast(body, delimiter, quote, escape, info.has_header)
    if frame is None:
        frame = _read_body_tolerant(body, delimiter, quote, escape, info)
    return frame


def _read_body_fast(body: str, delimiter: str, quote: str, escape: str | None, has_header: bool) -> pd.DataFrame | None:
    """pyarrow's multithreaded reader with every column as text; None when rows are ragged (the tolerant reader keeps them)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    body = body.lstrip("\n")  # leading blank lines
    first = next(iter(_rows(io.StringIO(body[:_SNIFF_BYTES]), delimiter, quote, escape, limit=1)), [])
    width = len(first)
    if width == 0:
        return None
    placeholders = [f"f{i}" for i in range(width)]
    ragged = []

    def on_invalid(row):  # pyarrow hands over rows whose field count differs from the header's
        ragged.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(body.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=placeholders, skip_rows=1 if has_header else 0, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=quote, escape_char=escape or False,
                                             double_quote=escape is None, newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={p: pa.string() for p in placeholders}, strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError):
        return None
    if ragged:
        return None
    frame = table.to_pandas(types_mapper={pa.string(): TEXT_DTYPE, pa.large_string(): TEXT_DTYPE}.get)
    frame.columns = first if has_header else [f"column_{i + 1}" for i in range(width)]
    return frame


def _read_body_tolerant(body: str, delimiter: str, quote: str, escape: str | None, info: LoadInfo) -> pd.DataFrame:
    """Python's csv module row by row: short rows are padded, long rows get extra columns, rows written with
    another delimiter are split on it. Every row is kept."""
    try:
        rows = [r for r in csv.reader(io.StringIO(body), delimiter=delimiter, quotechar=quote, escapechar=escape)
                if r and any(cell.strip() for cell in r)]
    except csv.Error as exc:
        raise InputFileError(f"{info.source} could not be parsed as delimited text ({exc}); check its quoting and delimiters.") from exc
    if not rows:
        raise InputFileError(f"{info.source} has no rows to read; check that it has a header row.")
    header = rows[0] if info.has_header else [f"column_{i + 1}" for i in range(len(rows[0]))]
    data = rows[1:] if info.has_header else rows
    width = len(header)
    resplit = short = 0
    others = [d for d in _DELIMITERS if d != delimiter]
    for i, row in enumerate(data):
        if len(row) == 1 and width > 1:
            for other in others:
                alt = next(iter(_rows([row[0]], other, quote, None)), [])
                if len(alt) == width:
                    data[i], resplit = alt, resplit + 1
                    break
    longest = max((len(r) for r in data), default=width)
    if longest > width:
        header = header + [f"extra_{k + 1}" for k in range(longest - width)]
        long_rows = [r for r in data if len(r) > width]
        if all(not any(cell.strip() for cell in r[width:]) for r in long_rows):
            info.problems.append(f"{_plural(len(long_rows), 'row')} end with an extra delimiter; the empty fields are in columns "
                                 + ", ".join(header[width:]))
        else:
            info.problems.append(f"{_plural(len(long_rows), 'row')} had more fields than the header; the extra fields are in columns "
                                 + ", ".join(header[width:]))
    for i, row in enumerate(data):
        if len(row) < len(header):
            short += len(row) < width
            data[i] = row + [""] * (len(header) - len(row))
    if short:
        info.problems.append(f"{_plural(short, 'row')} had fewer fields than the header; the missing fields are empty")
    if resplit:
        info.problems.append(f"{_plural(resplit, 'row')} used a different delimiter and were split on it")
    return pd.DataFrame(data, columns=header, dtype=TEXT_DTYPE)


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
        info.problems.append(f"{_plural(skipped, 'row')} before the table (titles, notes) skipped")
    frame = sheet.iloc[skipped + 1:].reset_index(drop=True)
    frame.columns = [str(c) for c in sheet.iloc[skipped]]
    frame = frame.loc[(frame != "").any(axis=1)].reset_index(drop=True)  # blank spacer rows of a worksheet are not data
    return frame


def load_bytes(name: str, data: bytes, source: str | None = None, limits: InputLimits | None = None) -> tuple[pd.DataFrame, LoadInfo]:
    """Parse a file's bytes into a DataFrame without changing any value; compressed files inflate within ``limits``."""
    info = LoadInfo(source=source or name, format="", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if not data:
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
        frame = _read_delimited(inner_name, payload, info)
    frame = _fix_column_names(frame, info)
    if frame.shape[1] == 0:
        raise InputFileError(f"{name} has no columns; check that it has a header row.")
    check_columns(name, frame.shape[1], limits)
    if len(frame) == 0:
        raise InputFileError(f"{name} has a header but no data rows; add data and try again.")
    info.rows, info.columns = int(frame.shape[0]), int(frame.shape[1])
    return frame, info


def _fix_column_names(frame: pd.DataFrame, info: LoadInfo) -> pd.DataFrame:
    names, seen, changed = [], {}, False
    for i, col in enumerate(frame.columns):
        name = str(col).strip().lstrip("\ufeff")
        if not name or name.startswith("Unnamed:"):
            name, changed = f"column_{i + 1}", True
        base = name
        if name in seen:
            seen[base] += 1
            name, changed = f"{base}_{seen[base]}", True
        seen.setdefault(name, 0)
        names.append(name)
    if changed:
        info.problems.append("blank or duplicate column names were renamed")
    frame.columns = names
    return frame


def load_path(path: str | Path, limits: InputLimits | None = None) -> tuple[pd.DataFrame, LoadInfo]:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist; check the path and try again.")
    if not path.is_file():
        raise InputFileError(f"{path} is not a file; give the path of a CSV, Parquet, Excel or JSON file.")
    return load_bytes(path.name, path.read_bytes(), source=str(path), limits=limits)
