"""Reading and cleaning a table larger than memory, on DuckDB.

The path is chosen by size before anything is read whole: a Parquet file's row count is in its footer; a delimited
file's (gzipped or not) is estimated from a sample of its first bytes. Above ``AUTOMODEL_LARGE_ROWS`` the run goes out
of core; below, it takes the in-memory path unchanged.

Out of core, the existing loader still decides the dialect (delimiter, quoting, header, preamble, encoding) on a
sample of the file's first bytes; DuckDB then reads the whole file with that dialect (every delimited cell as text,
as the loader keeps it), Parquet and gzip natively, under a memory limit, spilling to a folder under AUTOMODEL_HOME.
Cleaning decides on a reservoir sample drawn by DuckDB over the whole table (the same ``clean`` as in memory) and its
decisions, saved as the training schema, are replayed value by value on every chunk DuckDB streams in file order;
the cleaned table is written as Parquet parts. Scoring runs replay the model's saved schema the same way.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.errors import InputFileError
from automodel.large.table import ROW, PartWriter, TableRef, connect

SNIFF_BYTES = 4 * 1024 * 1024  # the loader decides the dialect on this much of the file (inflated)
DECISION_SAMPLE_ROWS = 100_000  # cleaning decides on a reservoir sample of this many rows of the whole table
S3_MIRROR_MIN_BYTES = 64 * 1024 * 1024  # smaller S3 objects are read into memory as before; larger ones are mirrored
DUCKDB_ENCODINGS = {"ascii": "utf-8", "utf-8": "utf-8", "utf_8": "utf-8", "utf-8-sig": "utf-8", "utf_8_sig": "utf-8",
                    "latin-1": "latin-1", "latin_1": "latin-1", "iso-8859-1": "latin-1", "iso8859-1": "latin-1",
                    "windows-1252": "latin-1", "cp1252": "latin-1", "utf-16": "utf-16"}


@dataclass
class LargeSource:
    """A file judged too large for memory, and how DuckDB is to read it."""

    path: str
    name: str
    format: str  # parquet or delimited
    rows: int  # exact for Parquet, estimated for delimited text
    rows_exact: bool
    compression: str | None = None
    columns: list[str] = field(default_factory=list)
    delimiter: str | None = None
    quotechar: str | None = '"'
    escapechar: str | None = None
    skip_lines: int = 0  # preamble lines plus header lines
    encoding: str = "utf-8"
    dialect: str | None = None
    problems: list[str] = field(default_factory=list)

    def relation(self) -> str:
        """The DuckDB table function that reads the whole file."""
        path = self.path.replace("'", "''")
        if self.format == "parquet":
            return f"read_parquet('{path}')"
        columns = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in self.columns)
        quote_char = (self.quotechar or "").replace("'", "''")
        escape = (self.escapechar or self.quotechar or "").replace("'", "''")
        delimiter = (self.delimiter or ",").replace("'", "''")
        return (f"read_csv('{path}', delim='{delimiter}', quote='{quote_char}', escape='{escape}', header=false, "
                f"skip={int(self.skip_lines)}, columns={{{columns}}}, auto_detect=false, null_padding=true, "
                f"compression='{'gzip' if self.compression == 'gzip' else 'none'}', encoding='{self.encoding}')")

    def describe(self) -> dict:
        return {"format": self.format, "compression": self.compression or "none", "rows": self.rows,
                "rows_exact": self.rows_exact, "delimiter": self.delimiter, "dialect": self.dialect, "encoding": self.encoding,
                "problems": self.problems}


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _is_parquet(path: Path, name: str) -> bool:
    if name.lower().endswith((".parquet", ".pq")):
        return True
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def _delimited_name(name: str) -> bool:
    lower = name.lower().removesuffix(".gz")
    return lower.endswith((".csv", ".tsv", ".txt", ".tab", ".psv", ".dat")) or "." not in lower


def inspect_large(path: str | Path, name: str, threshold_rows: int) -> LargeSource | None:
    """The file as a LargeSource when it holds more than ``threshold_rows`` rows, else None (the in-memory path).

    Formats DuckDB does not stream (Excel, JSON, zip and other archives) always take the in-memory path."""
    path = Path(path)
    if not path.is_file():
        return None
    if _is_parquet(path, name) and not _is_gzip(path):
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except Exception:  # not readable as Parquet: the loader says so in one sentence on the usual path
            return None
        if meta.num_rows <= threshold_rows:
            return None
        return LargeSource(path=str(path), name=name, format="parquet", rows=int(meta.num_rows), rows_exact=True,
                           columns=[meta.schema.column(i).name for i in range(meta.num_columns)])
    gz = _is_gzip(path)
    if not _delimited_name(name) or (not gz and name.lower().endswith(".gz")):
        return None
    sample, consumed, whole = _head(path, gz)
    newlines = sample.count(b"\n")
    if newlines == 0:
        return None
    # Lines, not rows (a header, a quoted value over several lines): an estimate, enough to choose the path.
    estimate = newlines if whole else int(newlines * path.stat().st_size / max(consumed, 1))
    if estimate <= threshold_rows:
        return None
    return _dialect_from_sample(path, name, sample, gz, estimate)


def _head(path: Path, gz: bool) -> tuple[bytes, int, bool]:
    """The file's first SNIFF_BYTES (inflated), cut at a line end; the bytes of the file they took; whether that was all."""
    with open(path, "rb") as raw:
        if gz:
            with gzip.GzipFile(fileobj=raw) as inflated:
                data = inflated.read(SNIFF_BYTES + 1)
                consumed = raw.tell()
        else:
            data = raw.read(SNIFF_BYTES + 1)
            consumed = len(data)
    whole = len(data) <= SNIFF_BYTES
    if not whole:
        data = data[: data.rfind(b"\n") + 1]
    return data, consumed, whole


def _dialect_from_sample(path: Path, name: str, sample: bytes, gz: bool, estimate: int) -> LargeSource:
    from automodel.ingest.loader import load_bytes

    inner = name[:-3] if name.lower().endswith(".gz") else name
    frame, info = load_bytes(inner, sample, source=str(path), allow_empty=False)
    encoding = DUCKDB_ENCODINGS.get(str(info.encoding or "utf-8").lower().replace(" ", ""))
    if encoding is None:
        raise InputFileError(f"{name} is written in the {info.encoding} encoding, which the large-table reader cannot stream; "
                             "save it as UTF-8 and try again.")
    if info.tables_found > 1:
        raise InputFileError(f"{name} holds {info.tables_found} tables one after another; a file this large must hold one table: "
                             "split it and try again.")
    header_lines = info.header_rows if info.has_header else 0
    return LargeSource(path=str(path), name=name, format="delimited", rows=estimate, rows_exact=False,
                       compression="gzip" if gz else None, columns=[str(c) for c in frame.columns], delimiter=info.delimiter,
                       quotechar=info.quotechar, escapechar=info.escapechar,
                       skip_lines=info.skipped_preamble_rows + header_lines, encoding=encoding, dialect=info.dialect,
                       problems=[p for p in info.problems if "comment" not in p])


def mirror_s3(uri: str, size: int, folder: Path) -> Path | None:
    """A large S3 object streamed to a local file (boto3's multipart download, never held in memory); None when small."""
    if size < S3_MIRROR_MIN_BYTES:
        return None
    import boto3

    from automodel.atomic import atomic_path
    from resources.storage import S3Backend

    bucket, key = S3Backend.split(uri)
    target = folder / "source" / Path(key).name
    if target.exists() and target.stat().st_size == size:
        return target
    with atomic_path(target) as tmp:
        boto3.client("s3").download_file(bucket, key, str(tmp))
    return target


# ---- cleaning ----------------------------------------------------------------------------------------------------

def count_rows(source: LargeSource, settings=None) -> int:
    """The table's exact row count (DuckDB parses the whole file with the loader's dialect)."""
    import duckdb

    with connect(settings) as con:
        try:
            return int(con.execute(f"SELECT count(*) FROM {source.relation()}").fetchone()[0])
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(f"{source.name} could not be read to its end with the dialect found at its start ({first[:160]}); "
                                 "check that every line has the same layout, or export the file again.") from exc


def decision_sample(source: LargeSource, settings=None, rows: int = DECISION_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """A uniform sample of the whole table (DuckDB's reservoir sampling, one pass), as the loader would give it."""
    with connect(settings) as con:
        frame = con.execute(f"SELECT * FROM {source.relation()} USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({seed})").df()
    return _as_loaded(frame, source)


_ARROW_TEXT = {}


def _arrow_text_types() -> None:
    import pyarrow as pa

    from automodel.ingest.cleaning import TEXT_DTYPE

    _ARROW_TEXT.update({pa.string(): TEXT_DTYPE, pa.large_string(): TEXT_DTYPE, pa.string_view(): TEXT_DTYPE})


def _as_loaded(frame: pd.DataFrame, source: LargeSource) -> pd.DataFrame:
    """DuckDB's text cells as the loader gives them: every cell a string, an empty one ''."""
    if source.format == "delimited":
        for column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "")
    return frame


def decide_cleaning(source: LargeSource, target: str | None, settings=None):
    """Cleaning decided on a sample of the whole table: (training schema, cleaning report, the sample as loaded)."""
    from automodel.ingest.cleaning import clean
    from automodel.ingest.schema import TrainingSchema

    raw = decision_sample(source, settings)
    result = clean(raw, protect=(target,) if target else ())
    return TrainingSchema.capture(raw, result.frame, result.report, target), result.report, raw


@dataclass
class StreamReport:
    """What replaying the cleaning on every chunk found, summed over the table."""

    rows: int = 0
    parts: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)
    unseen_categories: dict[str, dict] = field(default_factory=dict)
    first_chunk: dict = field(default_factory=dict)  # the first chunk's column report (missing, extra, renamed columns)

    def add(self, report) -> None:
        self.rows += report.rows
        self.parts += 1
        if not self.first_chunk:
            self.first_chunk = report.to_dict()
        for column, count in report.unreadable.items():
            self.unreadable[column] = self.unreadable.get(column, 0) + int(count)
        for column, seen in report.unseen_categories.items():
            entry = self.unseen_categories.setdefault(column, {"rows": 0, "values": []})
            entry["rows"] += int(seen["rows"])
            entry["values"] = (entry["values"] + [v for v in seen["values"] if v not in entry["values"]])[:5]

    def scoring_report(self):
        """One ScoringReport for the whole table (scoring runs record it like the in-memory path does)."""
        from automodel.ingest.schema import ScoringReport

        first = self.first_chunk or {}
        known = set(ScoringReport.__dataclass_fields__)
        report = ScoringReport(**{k: v for k, v in first.items() if k in known})
        report.rows, report.unreadable, report.unseen_categories = self.rows, dict(self.unreadable), dict(self.unseen_categories)
        return report


def stream_clean(source: LargeSource, schema, out_dir: Path, chunk_rows: int, settings=None, sample_share: float = 0.0,
                 kind: str = "cleaned") -> tuple[TableRef, StreamReport, pd.DataFrame]:
    """Every row read by DuckDB in file order, in chunks, cleaned as ``schema`` says, written as Parquet parts.
    Also returns the rows as loaded whose position falls in the profile sample (``sample_share`` of them)."""
    from automodel.large.table import held_out_mask

    _arrow_text_types()
    writer = PartWriter(out_dir, dtypes={c.name: c.dtype for c in schema.columns})
    report = StreamReport()
    raw_sample: list[pd.DataFrame] = []
    start = 0
    try:
        with connect(settings) as con:
            reader = con.sql(f"SELECT * FROM {source.relation()}").to_arrow_reader(chunk_rows)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                if batch.num_rows == 0:
                    continue
                # Text as Arrow strings: cleaning's string kernels take them without a per-value conversion.
                raw = batch.to_pandas(types_mapper=_ARROW_TEXT.get)
                rows = np.arange(start, start + len(raw), dtype=np.int64)
                cleaned, chunk_report = schema.apply(raw)
                cleaned.insert(0, ROW, rows)
                writer.write(cleaned)
                report.add(chunk_report)
                if sample_share > 0:
                    picked = held_out_mask(rows, sample_share)
                    if picked.any():
                        raw_sample.append(_as_loaded(raw.loc[picked].astype(object), source).assign(**{ROW: rows[picked]}))
                start += len(raw)
        if start == 0:
            raise InputFileError(f"{source.name} has a header but no data rows; add data and try again.")
        writer.commit()
    except Exception:
        writer.abort()
        raise
    sample = pd.concat(raw_sample, ignore_index=True) if raw_sample else pd.DataFrame(columns=[ROW, *source.columns])
    ref = TableRef(path=str(out_dir), columns=dict(writer.dtypes), rows=start, kind=kind,
                   source=source.describe() | {"rows": start, "rows_exact": True})
    return ref, report, sample


def read_source_frame(source: LargeSource, settings=None) -> pd.DataFrame:
    """The whole file as the loader gives it (tests compare the out-of-core path with the in-memory one on it)."""
    with connect(settings) as con:
        return _as_loaded(con.execute(f"SELECT * FROM {source.relation()}").df(), source)

