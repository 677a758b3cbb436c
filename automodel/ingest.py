"""Loading tabular files exactly as they are: format, encoding and dialect detection.

The loader never changes values: delimited text is read as strings (typing is the
cleaning stage's job) so the raw dataset keeps the original cells.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from automodel.errors import InputFileError

SUPPORTED_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".psv", ".dat", ".parquet", ".pq", ".xlsx", ".json", ".jsonl", ".ndjson",
    ".gz", ".zip",
)
_SNIFF_BYTES = 64 * 1024


@dataclass
class LoadInfo:
    """What the loader found out about a file."""

    source: str
    format: str
    size_bytes: int
    sha256: str
    encoding: str | None = None
    delimiter: str | None = None
    quotechar: str | None = None
    has_header: bool = True
    skipped_preamble_rows: int = 0
    compression: str | None = None
    rows: int = 0
    columns: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def is_supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def _decompress(name: str, data: bytes) -> tuple[str, bytes, str | None]:
    lower = name.lower()
    if lower.endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            return (name[:-3] if lower.endswith(".gz") else name), gzip.decompress(data), "gzip"
        except (OSError, EOFError) as exc:
            raise InputFileError(f"{name} is not a readable gzip file ({exc}); re-compress it or upload it uncompressed.") from exc
    if lower.endswith(".zip") or data[:4] == b"PK\x03\x04" and not lower.endswith(".xlsx"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/") and is_supported(m) and not m.startswith("__MACOSX")]
                if len(members) != 1:
                    raise InputFileError(
                        f"{name} holds {len(members)} tabular files; put exactly one CSV, Parquet, Excel or JSON file in the zip."
                    )
                return members[0], archive.read(members[0]), "zip"
        except zipfile.BadZipFile as exc:
            raise InputFileError(f"{name} is not a readable zip file; re-create the archive or upload the file itself.") from exc
    return name, data, None


def detect_encoding(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    head = data[:_SNIFF_BYTES]
    # UTF-16 without a BOM shows as every other byte being NUL.
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return "utf-16-be"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def _looks_binary(text: str) -> bool:
    sample = text[:_SNIFF_BYTES]
    if not sample:
        return False
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t\f") + sample.count("\ufffd")
    return bad / len(sample) > 0.01


def _sniff_dialect(lines: list[str]) -> tuple[str, str]:
    sample = "\n".join(lines[:50])
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter, quote = dialect.delimiter, dialect.quotechar or '"'
    except csv.Error:
        counts = {d: sum(line.count(d) for line in lines[:50]) for d in ",;\t|"}
        delimiter = max(counts, key=counts.get)
        quote = '"'
        if counts[delimiter] == 0:
            delimiter = ","
    return delimiter, quote


def _preamble_rows(lines: list[str], delimiter: str) -> int:
    """Count leading lines (titles, notes) before the row shape settles."""
    counts = [line.count(delimiter) for line in lines[:200] if line.strip()]
    if not counts:
        return 0
    typical = max(set(counts), key=counts.count)
    skipped = 0
    for line in lines:
        if not line.strip() or line.count(delimiter) != typical:
            skipped += 1
            continue
        break
    return skipped if typical > 0 else 0


def _read_delimited(name: str, data: bytes, info: LoadInfo) -> pd.DataFrame:
    encoding = detect_encoding(data)
    text = data.decode(encoding, errors="replace")
    if _looks_binary(text):
        raise InputFileError(f"{name} does not look like text: it may be a binary file with a .csv name; export it as CSV and try again.")
    if not text.strip():
        raise InputFileError(f"{name} is empty; upload a file with a header row and at least one data row.")
    lines = text.splitlines()
    comment_free = [line for line in lines if not line.lstrip().startswith("#")]
    delimiter, quote = _sniff_dialect(comment_free)
    if name.lower().endswith(".tsv"):
        delimiter = "\t"
    skip = _preamble_rows(comment_free, delimiter)
    has_comments = len(comment_free) != len(lines)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            quotechar=quote,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skiprows=skip,
            comment="#" if has_comments else None,
            skip_blank_lines=True,
            on_bad_lines="warn",
            engine="python" if has_comments else "c",
        )
    except pd.errors.EmptyDataError as exc:
        raise InputFileError(f"{name} has no columns to read; check that it has a header row.") from exc
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise InputFileError(f"{name} could not be parsed as delimited text ({str(exc).splitlines()[0]}); check its quoting and delimiters.") from exc
    info.encoding, info.delimiter, info.quotechar, info.skipped_preamble_rows = encoding, delimiter, quote, skip
    return frame


def _read_json(name: str, data: bytes) -> pd.DataFrame:
    text = data.decode(detect_encoding(data), errors="replace").strip()
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


def load_bytes(name: str, data: bytes, source: str | None = None) -> tuple[pd.DataFrame, LoadInfo]:
    """Parse a file's bytes into a DataFrame without changing any value."""
    info = LoadInfo(source=source or name, format="", size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if not data:
        raise InputFileError(f"{name} is empty (0 bytes); upload a file with a header row and data.")
    inner_name, payload, compression = _decompress(name, data)
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
        try:
            frame = pd.read_excel(io.BytesIO(payload), dtype=str, keep_default_na=False)
        except Exception as exc:  # openpyxl raises many types for damaged workbooks
            raise InputFileError(f"{name} is not a readable Excel workbook ({type(exc).__name__}); save it again as .xlsx or CSV.") from exc
    elif lower.endswith((".json", ".jsonl", ".ndjson")):
        info.format = "json"
        frame = _read_json(inner_name, payload)
    else:
        info.format = "delimited"
        frame = _read_delimited(inner_name, payload, info)
    frame = _fix_column_names(frame, info)
    if frame.shape[1] == 0:
        raise InputFileError(f"{name} has no columns; check that it has a header row.")
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


def load_path(path: str | Path) -> tuple[pd.DataFrame, LoadInfo]:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist; check the path and try again.")
    if not path.is_file():
        raise InputFileError(f"{path} is not a file; give the path of a CSV, Parquet, Excel or JSON file.")
    return load_bytes(path.name, path.read_bytes(), source=str(path))
