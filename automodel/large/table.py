"""What the assets hand each other for a table too large for memory, and the DuckDB connection that reads it.

Above the row threshold an asset returns a ``TableRef`` (a folder of Parquet parts, its schema and row count: a few
hundred bytes through the IO manager) instead of a pandas frame. Every part carries ``__row``, the row's position in
the user's file, so chunks can be processed in any order and still be written back in the order the user gave.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROW = "__row"  # the row's position in the input file, kept in every part
HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: the same held-out rows in numpy and in DuckDB SQL
HASH_BUCKETS = 10_000


@dataclass
class TableRef:
    """A table stored as Parquet parts under ``path``: ``columns`` name -> pandas dtype (``__row`` not included)."""

    path: str
    columns: dict[str, str]
    rows: int
    kind: str = "cleaned"  # raw, cleaned, enriched, predictions
    source: dict = field(default_factory=dict)  # how the file was read (format, dialect, compression), for the UI
    profile: dict = field(default_factory=dict)  # exact column aggregates (automodel.large.profile), when computed
    # The target as the user wrote its labels (automodel.labels): applied on every read, as enrich_frame does in memory.
    target: str | None = None
    target_labels: dict | None = None
    # What travels with the table between assets, as DataFrame.attrs does for a frame (automodel_assets.assets.with_notes).
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.rows

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, len(self.columns)

    @property
    def parts(self) -> list[Path]:
        return sorted(Path(self.path).glob("part-*.parquet"))

    @property
    def glob(self) -> str:
        return str(Path(self.path) / "part-*.parquet")

    def read(self, columns: list[str] | None = None, where: str | None = None, settings=None) -> pd.DataFrame:
        """Rows of the table in file order as pandas (a bounded selection: ``where`` is a DuckDB condition)."""
        wanted = ", ".join(quote(c) for c in ([ROW] + [c for c in (columns or list(self.columns)) if c != ROW]))
        with connect(settings) as con:
            frame = con.execute(f"SELECT {wanted} FROM read_parquet('{self.glob}') {f'WHERE {where}' if where else ''} "
                                f"ORDER BY {ROW}").df()
        return self._as_user_sees(restore_dtypes(frame, self.columns))

    def batches(self, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The table part by part, in file order (each part is one chunk written in order)."""
        import pyarrow.parquet as pq

        wanted = None if columns is None else [ROW] + [c for c in columns if c != ROW]
        for part in self.parts:
            yield self._as_user_sees(restore_dtypes(pq.read_table(part, columns=wanted).to_pandas(), self.columns))

    def _as_user_sees(self, frame: pd.DataFrame) -> pd.DataFrame:
        from automodel.labels import restore_labels

        return restore_labels(frame, self.target, self.target_labels)


def quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def restore_dtypes(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """Parquet gives nullable integers back as floats or Int64 depending on the part; the frame gets the table's dtypes."""
    for name, dtype in dtypes.items():
        if name not in frame.columns or str(frame[name].dtype) == dtype:
            continue
        try:
            if dtype.lower().startswith("int") and not _whole(frame[name]):
                continue  # stored as float: a part held fractions the sample never showed
            if dtype in ("int64", "int32") and frame[name].isna().any():
                frame[name] = frame[name].astype("Int64")
            elif dtype == "object":
                frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
            else:
                frame[name] = frame[name].astype(dtype)
        except (TypeError, ValueError):
            pass
    return frame


def _whole(values: pd.Series) -> bool:
    present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    return bool(np.all(np.mod(present, 1) == 0))


def held_out_mask(rows: np.ndarray, share: float) -> np.ndarray:
    """Rows never trained on by either the sampled or the all-rows model, chosen by a hash of the row's position."""
    threshold = int(round(share * HASH_BUCKETS))
    return ((np.asarray(rows, dtype=np.int64) * HASH_MULTIPLIER) % 2**32) % HASH_BUCKETS < threshold


def held_out_sql(share: float) -> str:
    """``held_out_mask`` as a DuckDB condition on ``__row``."""
    return f"((({ROW}::BIGINT * {HASH_MULTIPLIER}) % 4294967296) % {HASH_BUCKETS}) < {int(round(share * HASH_BUCKETS))}"


def held_out_share(rows: int, wanted_rows: int = 200_000) -> float:
    """A share giving about ``wanted_rows`` held-out rows, between 1 % and 10 % of the table."""
    return float(min(0.10, max(0.01, wanted_rows / max(rows, 1))))


# ---- DuckDB ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DuckConfig:
    memory_limit: str = "2GB"
    threads: int = 2
    temp_dir: str = ""


def duck_config(settings=None) -> DuckConfig:
    if settings is None:
        return DuckConfig(temp_dir=str(Path(tempfile.gettempdir()) / "automodel-duckdb"))
    return DuckConfig(memory_limit=settings.duckdb_memory_limit, threads=int(settings.duckdb_threads),
                      temp_dir=str(Path(settings.home) / "large" / "duckdb_tmp"))


@contextmanager
def connect(settings=None):
    """An in-memory DuckDB bounded by the memory limit, spilling to a folder under AUTOMODEL_HOME."""
    import duckdb

    config = duck_config(settings)
    spill = Path(config.temp_dir) / uuid.uuid4().hex[:12]
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": config.memory_limit, "threads": max(1, config.threads),
                                 "temp_directory": str(spill), "preserve_insertion_order": True})
    try:
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


# ---- writing a partitioned table atomically ----------------------------------------------------------------------

class PartWriter:
    """Writes numbered Parquet parts into a hidden folder beside ``path``; ``commit`` moves the folder into place, so a
    killed run never leaves a half-written table where a later run would read it."""

    def __init__(self, path: str | Path, dtypes: dict[str, str] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.path.name}-", dir=self.path.parent))
        self.count = 0
        self.rows = 0
        self.dtypes: dict[str, str] = dict(dtypes or {})
        self.schema = None

    def write(self, frame: pd.DataFrame) -> None:
        """One part; every part gets the first one's Parquet schema (a chunk whose column is all missing stays typed)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.schema is None:  # the columns the parts hold (a scoring batch may lack the target), in the given dtypes
            self.dtypes = {str(c): self.dtypes.get(str(c), str(t)) for c, t in frame.dtypes.items() if c != ROW}
            self.schema = arrow_schema(frame, self.dtypes)
        frame = frame.reset_index(drop=True)
        for column in frame.columns:
            if self.schema.field(str(column)).type == pa.string() and frame[column].dtype == object:
                values = frame[column]
                frame[column] = values.where(values.isna(), values.astype(str))
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        pq.write_table(table, self.tmp / f"part-{self.count:05d}.parquet")
        self.count += 1
        self.rows += len(frame)

    def commit(self) -> Path:
        if self.path.exists():
            stale = self.path.with_name(f".stale-{self.path.name}-{uuid.uuid4().hex[:8]}")
            os.replace(self.path, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def arrow_schema(frame: pd.DataFrame, dtypes: dict[str, str]):
    """Parquet types from pandas dtypes: nullable integers stay integers, booleans booleans, text strings."""
    import pyarrow as pa

    fields = []
    for column in frame.columns:
        dtype = dtypes.get(str(column), str(frame[column].dtype)).lower()
        if column == ROW:
            kind = pa.int64()
        elif dtype.startswith(("int", "uint", "float")):  # integers too: a later chunk may hold a fraction
            kind = pa.float64()
            kind = pa.float64()
        elif dtype in ("bool", "boolean"):
            kind = pa.bool_()
        elif dtype.startswith("datetime64"):
            kind = pa.timestamp("ns", tz=dtype.split(",", 1)[1].strip(" ]") if "," in dtype else None)
        elif dtype == "category":
            kind = pa.string()
        else:
            kind = pa.string()
        fields.append(pa.field(str(column), kind))
    return pa.schema(fields)


def large_dir(home: str | Path, run_id: str) -> Path:
    """Where a run's out-of-core tables live (removed with the run's other outputs)."""
    return Path(home) / "large" / run_id
