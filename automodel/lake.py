"""The data lake catalog: profiles of every lake table and the key values that make joins findable.

Stored in one DuckDB file. Rebuilding re-profiles only tables whose file changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from automodel.cleaning import clean
from automodel.keys import KEY_KINDS, normalize_key
from automodel.roles import infer_column_meta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lake_tables (name VARCHAR PRIMARY KEY, file VARCHAR, description VARCHAR, source VARCHAR,
    licence VARCHAR, fingerprint VARCHAR, rows BIGINT, profiled_at DOUBLE);
CREATE TABLE IF NOT EXISTS lake_columns (table_name VARCHAR, column_name VARCHAR, role VARCHAR, dtype VARCHAR,
    unique_count BIGINT, missing_count BIGINT, sample_values VARCHAR);
CREATE TABLE IF NOT EXISTS lake_key_values (table_name VARCHAR, column_name VARCHAR, key_kind VARCHAR, value VARCHAR);
"""


@dataclass
class IndexReport:
    tables: int
    profiled: list[str]
    unchanged: list[str]
    removed: list[str]
    seconds: float


def read_manifest(lake_dir: Path) -> list[dict]:
    path = Path(lake_dir) / "manifest.json"
    if not path.exists():
        return []
    return json.loads(path.read_text())["tables"]


def lake_fingerprint(lake_dir: Path) -> str:
    """Names, sizes and modification times of the lake's files: changes when the lake changes."""
    lake_dir = Path(lake_dir)
    parts = []
    for path in sorted(lake_dir.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and "samples" not in path.relative_to(lake_dir).parts:
            stat = path.stat()
            parts.append(f"{path.relative_to(lake_dir)}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def connect(db_path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    db_path = Path(db_path)
    if read_only and not db_path.exists():
        raise FileNotFoundError(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db_path), read_only=read_only)
    if not read_only:
        con.execute(_SCHEMA)
    return con


def load_lake_table(lake_dir: Path, entry: dict) -> pd.DataFrame:
    frame = pd.read_csv(Path(lake_dir) / entry["file"], dtype=str, keep_default_na=False)
    return clean(frame).frame


def build_index(lake_dir: Path, db_path: Path, rebuild: bool = False) -> IndexReport:
    """Profile every table in the lake manifest into the catalog; skip tables whose file is unchanged."""
    start = time.perf_counter()
    lake_dir = Path(lake_dir)
    entries = read_manifest(lake_dir)
    con = connect(db_path)
    try:
        known = dict(con.execute("SELECT name, fingerprint FROM lake_tables").fetchall())
        profiled, unchanged = [], []
        for entry in entries:
            fingerprint = _file_hash(lake_dir / entry["file"])
            if not rebuild and known.get(entry["name"]) == fingerprint:
                unchanged.append(entry["name"])
                continue
            profile = _profile_table(lake_dir, entry)
            con.execute("BEGIN TRANSACTION")
            for table in ("lake_tables",):
                con.execute(f"DELETE FROM {table} WHERE name = ?", [entry["name"]])
            for table in ("lake_columns", "lake_key_values"):
                con.execute(f"DELETE FROM {table} WHERE table_name = ?", [entry["name"]])
            con.execute("INSERT INTO lake_tables VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                entry["name"], entry["file"], entry.get("description", ""), entry.get("source", ""), entry.get("licence", ""),
                fingerprint, profile["rows"], time.time()])
            con.executemany("INSERT INTO lake_columns VALUES (?, ?, ?, ?, ?, ?, ?)", profile["columns"])
            if len(profile["keys"]):
                con.register("new_keys", profile["keys"])
                con.execute("INSERT INTO lake_key_values SELECT * FROM new_keys")
                con.unregister("new_keys")
            con.execute("COMMIT")
            profiled.append(entry["name"])
        names = {e["name"] for e in entries}
        removed = [n for n in known if n not in names]
        for name in removed:
            con.execute("DELETE FROM lake_tables WHERE name = ?", [name])
            con.execute("DELETE FROM lake_columns WHERE table_name = ?", [name])
            con.execute("DELETE FROM lake_key_values WHERE table_name = ?", [name])
    finally:
        con.close()
    return IndexReport(len(entries), profiled, unchanged, removed, time.perf_counter() - start)


def _profile_table(lake_dir: Path, entry: dict) -> dict:
    frame = load_lake_table(lake_dir, entry)
    declared = {c["name"]: c.get("role") for c in entry.get("columns", []) if c.get("role")}
    metas = infer_column_meta(frame, user_labels=declared)
    columns, keys = [], []
    for meta in metas:
        columns.append((entry["name"], meta.name, meta.role, meta.dtype, meta.unique_count, meta.missing_count, json.dumps(meta.sample_values, default=str)))
        if meta.role in KEY_KINDS:
            values = normalize_key(frame[meta.name], meta.role).dropna().unique()
            keys.append(pd.DataFrame({"table_name": entry["name"], "column_name": meta.name, "key_kind": meta.role, "value": values}))
    key_frame = pd.concat(keys, ignore_index=True) if keys else pd.DataFrame(columns=["table_name", "column_name", "key_kind", "value"])
    return {"rows": len(frame), "columns": columns, "keys": key_frame}


def table_entry(lake_dir: Path, name: str) -> dict:
    for entry in read_manifest(lake_dir):
        if entry["name"] == name:
            return entry
    raise KeyError(name)
