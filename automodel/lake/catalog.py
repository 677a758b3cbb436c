"""The data lake catalog (the semantic index): building it from the lake's tables, and what it holds.

Stored in one DuckDB file, written only by ``build_index`` (DuckDB allows one writing process).
For every table: description, tags and a sentence embedding; for every column: role, type,
statistics, sample values and an embedding; for every join key (single columns and composites
such as city + state or airport + hour): its columns, kind, distinct count and recipe (each table
profiled by ``automodel.lake.profiling``). What a search reads (table embeddings, the 64-bit hashes of
every key's normalised distinct values as an inverted index per key kind, MinHash signatures and the
LSH Ensemble's partitions) is written beside it as memory-mapped numpy files (``automodel.lake.search_index``),
so a new process searches at once. Rebuilding re-profiles only tables whose file changed.

Searching the catalog is ``automodel.lake.search``; reading the lake's tables is ``automodel.lake.tables``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from automodel.atomic import file_lock
from automodel.embedder import EMBEDDING_DIM
from automodel.errors import AutomodelError
from automodel.lake import profile_worker, search_index
from automodel.lake.profiling import attach_embeddings, profile_file
from automodel.lake.search_index import KeyEntry, NewKey
from automodel.lake.source import lake_fingerprint
from automodel.lake.tables import read_crosswalk, read_manifest, table_entry
from resources.settings import current as current_settings

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS lake_tables (name VARCHAR PRIMARY KEY, file VARCHAR, description VARCHAR, source VARCHAR,
    licence VARCHAR, vintage VARCHAR, tags VARCHAR, crosswalk VARCHAR, fingerprint VARCHAR, rows BIGINT, n_columns INTEGER,
    profiled_at DOUBLE, embedding FLOAT[{EMBEDDING_DIM}]);
CREATE TABLE IF NOT EXISTS lake_columns (table_name VARCHAR, column_name VARCHAR, role VARCHAR, dtype VARCHAR,
    unique_count BIGINT, missing_count BIGINT, stats VARCHAR, sample_values VARCHAR, embedding FLOAT[{EMBEDDING_DIM}]);
CREATE TABLE IF NOT EXISTS lake_keys (key_id VARCHAR PRIMARY KEY, table_name VARCHAR, columns VARCHAR, key_kind VARCHAR,
    distinct_count BIGINT, sample_values VARCHAR, recipe VARCHAR);
CREATE TABLE IF NOT EXISTS lake_meta (k VARCHAR PRIMARY KEY, v VARCHAR);
"""
_TABLES = ("lake_tables", "lake_columns", "lake_keys")
SCHEMA_VERSION = "8"  # 8: list-valued columns are not keys (automodel.lake.grain)
EMBED_BATCH_TABLES = 50
PARALLEL_FROM_TABLES = 24  # tables to profile before worker processes pay for their start


@dataclass
class IndexReport:
    tables: int
    profiled: list[str]
    unchanged: list[str]
    removed: list[str]
    seconds: float
    columns: int = 0
    keys: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # table -> why it could not be indexed


def _file_hash(path: Path, entry: dict) -> str:
    digest = hashlib.sha256(path.read_bytes())
    # Manifest text counts too: a new description or declared role must re-profile the table.
    digest.update(json.dumps({k: v for k, v in entry.items() if k != "rows"}, sort_keys=True).encode())
    digest.update(SCHEMA_VERSION.encode())
    return digest.hexdigest()[:16]


def connect(db_path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    db_path = Path(db_path)
    if read_only and not db_path.exists():
        raise FileNotFoundError(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db_path), read_only=read_only)
    if not read_only:
        _migrate(con)
        con.execute(_SCHEMA)
    return con


def _migrate(con) -> None:
    """A catalog written by an older schema is dropped and rebuilt (it is derived data)."""
    tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    version = None
    if "lake_meta" in tables:
        row = con.execute("SELECT v FROM lake_meta WHERE k = 'schema'").fetchone()
        version = row[0] if row else None
    if tables and version != SCHEMA_VERSION:
        for name in (*_TABLES, "lake_key_values", "lake_meta"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    con.execute(_SCHEMA)
    con.execute("INSERT OR REPLACE INTO lake_meta VALUES ('schema', ?)", [SCHEMA_VERSION])


def index_is_current(lake_dir: Path, db_path: Path) -> bool:
    """Whether the catalog holds exactly the lake's tables, each profiled from its current file and manifest entry."""
    db_path = Path(db_path)
    if not db_path.exists():
        return False
    # The search index is written last by a build and records what it holds: no DuckDB connection needed.
    index = search_index.load(db_path)
    if index is None:
        return False
    try:
        entries = read_manifest(lake_dir)
        current = {e["name"]: _file_hash(Path(lake_dir) / e["file"], e) for e in entries}
    except (OSError, AutomodelError):
        return False
    # Tables skipped as unreadable are not in the catalog: the index is current when it holds the readable rest.
    skipped = index.skipped
    return {n: f for n, f in current.items() if (skipped.get(n) or [None])[0] != f} == index.fingerprints


def build_index(lake_dir: Path, db_path: Path, rebuild: bool = False) -> IndexReport:
    """Profile every table of the lake manifest into the catalog; skip tables whose file and entry are unchanged."""
    with file_lock(f"{db_path}.write.lock"):  # DuckDB refuses a second writing process
        return _build_index(Path(lake_dir), Path(db_path), rebuild)


def _build_index(lake_dir: Path, db_path: Path, rebuild: bool) -> IndexReport:
    start = time.perf_counter()
    entries = read_manifest(lake_dir)
    previous = None if rebuild else search_index.load(db_path)
    con = connect(db_path)
    try:
        in_catalog = dict(con.execute("SELECT name, fingerprint FROM lake_tables").fetchall())
        # A table counts as indexed when the search index holds the same version of it as the catalog
        # (a build stopped between the two re-profiles the tables it had written to the catalog only).
        known = {n: f for n, f in in_catalog.items() if previous is not None and previous.fingerprints.get(n) == f}
        new_keys: dict[str, NewKey] = {}
        # Tables that could not be read, with the file version that failed: not read again until it changes.
        skipped_before = json.loads((con.execute("SELECT v FROM lake_meta WHERE k = 'skipped'").fetchone() or ["{}"])[0])
        profiled, unchanged, pending, skipped, skipped_at = [], [], [], {}, {}
        for entry in entries:
            try:
                fingerprint = _file_hash(lake_dir / entry["file"], entry)
            except OSError:
                skipped[entry["name"]] = f"its file {entry['file']} is missing or unreadable"
                continue
            if not rebuild and known.get(entry["name"]) == fingerprint:
                unchanged.append(entry["name"])
                continue
            failed = skipped_before.get(entry["name"])
            if not rebuild and failed and failed[0] == fingerprint:
                skipped[entry["name"]], skipped_at[entry["name"]] = failed[1], failed
                continue
            pending.append((entry, fingerprint))
        # Tables are profiled in batches so their texts share embedding batches (one text at a
        # time costs several times more), and each batch is committed before the next starts.
        # With many tables, worker processes read and profile the next tables while this one embeds and writes.
        workers = index_workers(len(pending))
        files = [entry for entry, _ in pending]
        results = (profile_worker.profiles(lake_dir, files, workers) if workers
                   else ((i, *profile_file(lake_dir, entry)) for i, entry in enumerate(files)))
        batch = []
        for number, (position, profile, why) in enumerate(results, start=1):
            entry, fingerprint = pending[position]
            if profile is None:
                skipped[entry["name"]] = f"{entry['file']} could not be read as a table ({why})"
                skipped_at[entry["name"]] = [fingerprint, skipped[entry["name"]]]
            else:
                batch.append((entry, fingerprint, profile))
            if len(batch) < EMBED_BATCH_TABLES and number < len(pending):
                continue
            attach_embeddings([profile for _, _, profile in batch])
            for entry, fingerprint, profile in batch:
                _write_profile(con, entry, fingerprint, profile)
                new_keys.update((key.entry.key_id, key) for key in profile["new_keys"])
                profiled.append(entry["name"])
            batch = []
        names = {e["name"] for e in entries} - set(skipped)
        removed = [n for n in in_catalog if n not in names]
        if removed or profiled or skipped_before != skipped_at:
            con.execute("BEGIN TRANSACTION")
            for name in removed:
                _delete_table(con, name)
            con.execute("INSERT OR REPLACE INTO lake_meta VALUES ('version', ?)", [f"{time.time_ns()}"])
            con.execute("INSERT OR REPLACE INTO lake_meta VALUES ('skipped', ?)", [json.dumps(skipped_at, sort_keys=True)])
            con.execute("COMMIT")
        changed = previous is None or profiled or removed or previous.skipped != skipped_at
        if changed and not _write_search_index(con, db_path, lake_dir, new_keys, previous, skipped_at, set(profiled)):
            con.close()
            return _build_index(lake_dir, db_path, rebuild=True)  # the search index lost keys it should hold: start over
        columns = con.execute("SELECT count(*) FROM lake_columns").fetchone()[0]
        keys = con.execute("SELECT count(*) FROM lake_keys").fetchone()[0]
    finally:
        con.close()
    return IndexReport(len(entries), profiled, unchanged, removed, time.perf_counter() - start, columns, keys, skipped)


def _write_search_index(con, db_path: Path, lake_dir: Path, new_keys: dict[str, NewKey], previous, skipped: dict, profiled: set[str]) -> bool:
    """Write the search index for the catalog as it now stands; False when a key's values are in neither
    this build nor the previous index (the catalog and the search index disagree)."""
    tables = [{"name": name, "fingerprint": fingerprint, "rows": rows, "description": description, "tags": json.loads(tags or "[]"),
               "crosswalk": json.loads(crosswalk) if crosswalk else None}
              for name, fingerprint, rows, description, tags, crosswalk in con.execute(
                  "SELECT name, fingerprint, rows, description, tags, crosswalk FROM lake_tables ORDER BY name").fetchall()]
    embeddings = con.execute("SELECT embedding FROM lake_tables ORDER BY name").fetchnumpy()["embedding"]
    vectors = np.stack(list(embeddings)).astype(np.float32) if len(tables) else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    keys = [KeyEntry(key_id, table, json.loads(columns), kind, int(count), recipe) for key_id, table, columns, kind, count, recipe in con.execute(
        "SELECT key_id, table_name, columns, key_kind, distinct_count, recipe FROM lake_keys ORDER BY key_id").fetchall()]
    held = previous.keys if previous is not None else {}
    if any(k.key_id not in new_keys and k.key_id not in held for k in keys):
        return False
    crosswalks = {}
    for table in tables:
        spec = table["crosswalk"]
        if not spec or not {"from", "to"} <= set(spec):
            continue
        mapping = previous.crosswalk(table["name"], spec["from"], spec["to"]) if previous is not None and table["name"] not in profiled else None
        if mapping is None:
            try:
                mapping = read_crosswalk(lake_dir, table_entry(lake_dir, table["name"]), spec["from"], spec["to"])
            except (KeyError, OSError, AutomodelError):
                continue  # searched the slow way, reading the table, if it can be read then
        crosswalks[table["name"]] = (spec["from"], spec["to"], np.column_stack([mapping.index.astype(str), mapping.astype(str)]))
    search_index.write(db_path, tables, vectors, keys, new_keys, previous, skipped, crosswalks)
    return True


def _delete_table(con, name: str) -> None:
    con.execute("DELETE FROM lake_tables WHERE name = ?", [name])
    for table in _TABLES[1:]:
        con.execute(f"DELETE FROM {table} WHERE table_name = ?", [name])


def index_workers(pending: int) -> int:
    """Worker processes for profiling ``pending`` tables: none for a few tables (starting one costs seconds of
    imports), else ``AUTOMODEL_INDEX_WORKERS`` or one per CPU core (at most 4)."""
    workers = current_settings().index_workers or min(os.cpu_count() or 1, 4)
    return workers if workers > 1 and pending >= PARALLEL_FROM_TABLES else 0


def _write_profile(con, entry: dict, fingerprint: str, profile: dict) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        _delete_table(con, entry["name"])
        con.execute("INSERT INTO lake_tables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            entry["name"], entry["file"], entry.get("description", ""), entry.get("source", ""), entry.get("licence", ""),
            str(entry.get("vintage", "")), json.dumps(profile["tags"]), json.dumps(entry.get("crosswalk")), fingerprint,
            profile["rows"], len(profile["columns"]), time.time(), profile["embedding"]])
        if profile["columns"]:
            con.executemany("INSERT INTO lake_columns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", profile["columns"])
        if profile["keys"]:
            con.executemany("INSERT INTO lake_keys VALUES (?, ?, ?, ?, ?, ?, ?)", profile["keys"])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def catalog_summary(db_path: Path) -> dict:
    """Counts for the UI and the CLI: tables, columns, keys by kind."""
    con = connect(db_path, read_only=True)
    try:
        kinds = dict(con.execute("SELECT key_kind, count(*) FROM lake_keys GROUP BY key_kind ORDER BY 1").fetchall())
        tables = con.execute("SELECT count(*), coalesce(sum(rows), 0) FROM lake_tables").fetchone()
        columns = con.execute("SELECT count(*) FROM lake_columns").fetchone()[0]
        values = con.execute("SELECT coalesce(sum(distinct_count), 0) FROM lake_keys").fetchone()[0]
    finally:
        con.close()
    return {"tables": tables[0], "rows": int(tables[1]), "columns": columns, "keys_by_kind": kinds, "key_values": int(values),
            "catalog_bytes": Path(db_path).stat().st_size, "search_index_bytes": search_index.size_bytes(db_path)}


__all__ = ["IndexReport", "build_index", "catalog_summary", "connect", "index_is_current", "index_workers", "lake_fingerprint"]
