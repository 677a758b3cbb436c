"""Reading the lake's tables: the lake's entries, one table as written (every cell text), typed and cleaned
like a user's file, or read as a crosswalk.

The catalog's build profiles tables read here, the search reads crosswalks here when its index does not
hold them, and enrichment joins the typed tables.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automodel.ingest.cleaning import clean
from automodel.ingest.loader import load_bytes
from automodel.lake.keys import crosswalk_mapping
from automodel.lake.source import lake_entries
from automodel.lake.written import restore_for_keys


def read_manifest(lake_dir: Path) -> list[dict]:
    """Every table of the lake: manifest entries where the manifest names a file, the rest found as files."""
    return lake_entries(Path(lake_dir))


def table_entry(lake_dir: Path, name: str) -> dict:
    for entry in read_manifest(lake_dir):
        if entry["name"] == name:
            return entry
    raise KeyError(name)


def read_lake_text(lake_dir: Path, entry: dict) -> pd.DataFrame:
    """A lake table exactly as written, read by the same loader as a user's file (csv, tsv, parquet, json,
    xlsx, gzipped): every cell text, so codes keep their leading zeros."""
    path = Path(lake_dir) / entry["file"]
    frame, _ = load_bytes(path.name, path.read_bytes(), source=str(path))
    return _as_text(frame)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_string_dtype(series) and not pd.api.types.is_object_dtype(series):
            out[column] = series.fillna("")
            continue
        if pd.api.types.is_float_dtype(series) and series.notna().any() and (series.dropna() % 1 == 0).all():
            series = series.astype("Int64")  # whole numbers read from parquet or json: 1001, not 1001.0
        text = series.astype(str)
        out[column] = text.where(series.notna(), "")
    return pd.DataFrame(out, index=frame.index)


_TABLE_CACHE: dict[tuple, pd.DataFrame] = {}
_TABLE_CACHE_LIMIT = 8


def load_lake_table(lake_dir: Path, entry: dict) -> pd.DataFrame:
    """A lake table typed and cleaned like a user's file; read once per file version per process."""
    path = Path(lake_dir) / entry["file"]
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _TABLE_CACHE:
        if len(_TABLE_CACHE) >= _TABLE_CACHE_LIMIT:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        text = read_lake_text(lake_dir, entry)
        # Columns cleaning drops as constant still form keys (a year beside month and day): kept, marked key-only.
        _TABLE_CACHE[key] = restore_for_keys(clean(text).frame, text)
    return _TABLE_CACHE[key].copy()


def declared_roles(entry: dict) -> dict[str, str]:
    return {c["name"]: c["role"] for c in entry.get("columns", []) if c.get("role")}


def read_crosswalk(lake_dir: Path, entry: dict, source: str, target: str) -> pd.Series:
    """A crosswalk table as a normalised lookup (e.g. zip -> county FIPS)."""
    frame = read_lake_text(lake_dir, entry)
    return crosswalk_mapping(frame[[source, target]])
