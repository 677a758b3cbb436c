"""The data lake catalog (the semantic index): profiles, embeddings and value sketches of every lake table.

Stored in one DuckDB file, written only by ``build_index`` (DuckDB allows one writing process).
For every table: description, tags and a sentence embedding; for every column: role, type,
statistics, sample values and an embedding; for every join key (single columns and composites
such as city + state or airport + hour): its columns, kind, distinct count and recipe. What a search
reads (table embeddings, the 64-bit hashes of every key's normalised distinct values as an inverted
index per key kind, MinHash signatures and the LSH Ensemble's partitions) is written beside it as
memory-mapped numpy files (``automodel.lake.search_index``), so a new process searches at once.
Rebuilding re-profiles only tables whose file changed.

``search_datasets`` ranks lake tables for a user's table by a blend of name/description
similarity (cosine of the catalog's embeddings) and value overlap (containment of the user's key
values: LSH Ensemble candidates re-ranked by exact containment against the hash sets).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from automodel.atomic import file_lock
from automodel.embedder import EMBEDDING_DIM, embed, embed_one
from automodel.errors import AutomodelError, InputFileError
from automodel.ingest.cleaning import clean
from automodel.ingest.loader import load_bytes
from automodel.ingest.roles import categorize_dataset, infer_column_meta
from automodel.lake import profile_worker, search_index
from automodel.lake.keys import KeyColumns, crosswalk_mapping, kind_is_time, lake_keys, user_keys, zones_differ
from automodel.lake.search_index import KeyEntry, NewKey
from automodel.lake.sketches import hash_strings, signature, value_hashes
from automodel.lake.source import lake_entries, lake_fingerprint
from automodel.lake.written import restore_for_keys, with_written_columns
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

# Score blend: value overlap decides joinability, names and descriptions break ties between tables
# that share the same keys (a state-keyed crime table versus a state-keyed list of capitals).
VALUE_WEIGHT = 0.6
NAME_WEIGHT = 0.4
PROFILE_ROWS = 2000  # roles and statistics from a sample; counts and keys from every row
EMBED_BATCH_TABLES = 50
PARALLEL_FROM_TABLES = 24  # tables to profile before worker processes pay for their start
# A key derived from the user's (a county cut to its state, a zip mapped to its county) joins at a
# coarser grain than the user's rows: preferred only when no table matches the user's own keys.
DERIVED_KEY_FACTOR = 0.9
# Times that name their zone on one side only: the other side's clock is read as UTC, which a local
# clock is not, so a table whose times are written the same way (both zoned, or both local) goes first.
ZONE_UNKNOWN_FACTOR = 0.9
# Below this many distinct user values MinHash cannot see a small set inside a large one
# (Jaccard becomes tiny), so the exact lookup is used directly.
EXACT_QUERY_LIMIT = 500


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


def read_manifest(lake_dir: Path) -> list[dict]:
    """Every table of the lake: manifest entries where the manifest names a file, the rest found as files."""
    return lake_entries(Path(lake_dir))


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
                   else ((i, *_profile_file(lake_dir, entry)) for i, entry in enumerate(files)))
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
            _attach_embeddings([profile for _, _, profile in batch])
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


def table_text(entry: dict, columns: list[str]) -> str:
    """What a table is about, for its embedding: name, description and column names."""
    return f"{entry['name'].replace('_', ' ')}: {entry.get('description', '')} Columns: {', '.join(c.replace('_', ' ') for c in columns)}."


def column_text(name: str, role: str, samples: list) -> str:
    return f"{name.replace('_', ' ')} ({role}): {', '.join(str(s) for s in samples[:3])}"


def _column_stats(series: pd.Series) -> dict:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and series.notna().any():
        values = series.astype(float)
        return {"min": float(values.min()), "max": float(values.max()), "mean": round(float(values.mean()), 6), "std": round(float(values.std() or 0.0), 6)}
    counts = series.astype(str).value_counts().head(3)
    return {"top": {str(k): int(v) for k, v in counts.items()}}


def profile_table(text: pd.DataFrame, entry: dict, embed_now: bool = True) -> dict:
    """Everything the catalog keeps about one table (written by ``_write_profile``).

    Roles, types and statistics come from a typed sample of at most PROFILE_ROWS rows; counts and
    join keys from every row, read from the text so codes keep their leading zeros.
    """
    sample = text.sample(PROFILE_ROWS, random_state=0).sort_index() if len(text) > PROFILE_ROWS else text
    typed = clean(sample).frame
    metas = infer_column_meta(typed, sample, user_labels=declared_roles(entry))
    columns = []
    for meta in metas:
        present = text[meta.name][text[meta.name] != ""]
        meta.unique_count, meta.missing_count = int(present.nunique()), int(len(text) - len(present))
        columns.append([entry["name"], meta.name, meta.role, meta.dtype, meta.unique_count, meta.missing_count,
                        json.dumps(_column_stats(typed[meta.name])), json.dumps(meta.sample_values, default=str), None])
    keys, new_keys = [], []
    _, key_metas, _ = with_written_columns(typed, metas, sample)  # constant columns still form keys (a year beside month and day)
    for key in lake_keys(text, key_metas):
        distinct = key.values.dropna().unique()
        if not len(distinct):
            continue
        key_id = f"{entry['name']}::{'+'.join(key.columns)}::{key.kind}"
        hashes = value_hashes(distinct)
        keys.append((key_id, entry["name"], json.dumps(key.columns), key.kind, len(hashes), json.dumps([str(v) for v in distinct[:5]]), key.recipe))
        new_keys.append(NewKey(KeyEntry(key_id, entry["name"], list(key.columns), key.kind, len(hashes), key.recipe), hashes, signature(hashes)))
    tags = sorted(set(entry.get("tags", [])) | set(categorize_dataset(typed, metas)))
    texts = [table_text(entry, list(text.columns)), *(column_text(m.name, m.role, m.sample_values) for m in metas)]
    profile = {"rows": len(text), "columns": columns, "keys": keys, "new_keys": new_keys, "tags": tags, "texts": texts, "embedding": None}
    if embed_now:
        _attach_embeddings([profile])
    return profile


def index_workers(pending: int) -> int:
    """Worker processes for profiling ``pending`` tables: none for a few tables (starting one costs seconds of
    imports), else ``AUTOMODEL_INDEX_WORKERS`` or one per CPU core (at most 4)."""
    workers = current_settings().index_workers or min(os.cpu_count() or 1, 4)
    return workers if workers > 1 and pending >= PARALLEL_FROM_TABLES else 0


def _profile_file(lake_dir: Path, entry: dict) -> tuple[dict | None, str | None]:
    """A table's profile, or None and why it could not be read (in a worker process or this one)."""
    try:
        text = read_lake_text(lake_dir, entry)
        if text.empty or not len(text.columns):
            raise ValueError("it has no rows")
        return profile_table(text, entry, embed_now=False), None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, InputFileError, OSError) as exc:
        # One bad table must not keep the rest of the lake out of the index.
        why = exc.message if isinstance(exc, AutomodelError) else str(exc)
        return None, (why.splitlines() or [""])[0][:160]


def _attach_embeddings(profiles: list[dict]) -> None:
    texts = [t for profile in profiles for t in profile["texts"]]
    # Regional extracts of one table repeat column texts: each distinct text is embedded once.
    distinct = list(dict.fromkeys(texts))
    by_text = dict(zip(distinct, embed(distinct, batch_size=128)))
    vectors = iter(by_text[t] for t in texts)
    for profile in profiles:
        profile["embedding"] = next(vectors).tolist()
        for column in profile["columns"]:
            column[-1] = next(vectors).tolist()


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


def table_entry(lake_dir: Path, name: str) -> dict:
    for entry in read_manifest(lake_dir):
        if entry["name"] == name:
            return entry
    raise KeyError(name)


# ---- search -------------------------------------------------------------------------------------

@dataclass
class KeyMatch:
    user_columns: list[str]
    lake_columns: list[str]
    kind: str
    strategy: str
    containment: float  # share of the user's distinct key values found in the lake key
    user_distinct: int
    lake_unique: float = 1.0  # distinct key values per lake row: 1 when the table's grain is the key, lower when it must be aggregated
    bridge: dict | None = None
    user_recipe: str | None = None
    lake_recipe: str | None = None
    weight: float = 1.0  # how much a match on this key says (see key_weight)


@dataclass
class SearchHit:
    table: str
    score: float
    name_similarity: float
    containment: float
    description: str = ""
    tags: list[str] = field(default_factory=list)
    key: KeyMatch | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["key"] = asdict(self.key) if self.key else None
        return out


@dataclass
class _Snapshot:
    """What a process keeps between queries: the search index of one catalog version (arrays memory-mapped)
    and lookups over its tables and keys."""

    version: str
    index: search_index.SearchIndex
    keys: dict[str, KeyEntry]
    rows: dict[str, int]
    table_names: list[str]
    table_vectors: np.ndarray  # unit-length table embeddings, one row per name in table_names
    descriptions: dict[str, str]
    tags: dict[str, list[str]]
    crosswalks: dict[str, dict]
    key_tables: dict[str, np.ndarray]  # per kind: each key's position in table_names
    table_rows: np.ndarray  # rows per table, aligned with table_names

    @property
    def by_kind(self) -> dict[str, search_index.KindIndex]:
        return self.index.kinds


_SNAPSHOTS: dict[str, _Snapshot] = {}
_SNAPSHOT_LOCK = threading.Lock()


class IndexOutOfDate(AutomodelError):
    """The catalog was written by another version of the index."""


def _snapshot(db_path: Path) -> _Snapshot:
    """The catalog's search structures, opened once per catalog version: a query then reads only mapped pages.

    The search index is a folder of numpy files per version beside the catalog (``search_index``):
    opening one maps its arrays and reads its manifest, so the first query of a process costs
    milliseconds, and a build in another process never blocks a search (it switches versions atomically).
    """
    version = search_index.current_version(db_path)
    with _SNAPSHOT_LOCK:
        cached = _SNAPSHOTS.get(str(db_path))
        if cached and cached.version == version:
            return cached
        index = search_index.load(db_path)
        if index is None:
            raise IndexOutOfDate("The lake index was built by another version of automodel (or its build did not finish); rebuild it "
                                 "with `automodel index --rebuild` or materialize semantic_index.")
        tables = index.tables
        position = {t["name"]: i for i, t in enumerate(tables)}
        snapshot = _Snapshot(version=index.version, index=index, keys=index.keys, rows={t["name"]: t["rows"] for t in tables},
                             table_names=[t["name"] for t in tables], table_vectors=index.table_vectors,
                             descriptions={t["name"]: t["description"] for t in tables}, tags={t["name"]: t["tags"] for t in tables},
                             crosswalks={t["name"]: t["crosswalk"] for t in tables if t["crosswalk"]},
                             key_tables={kind: np.asarray([position[k.table] for k in kind_index.keys], dtype=np.int64)
                                         for kind, kind_index in index.kinds.items()},
                             table_rows=np.asarray([t["rows"] for t in tables], dtype=np.float64))
        _SNAPSHOTS[str(db_path)] = snapshot
        return snapshot


def query_text(query_meta) -> str:
    """The user's table described in words, for comparing with lake table descriptions."""
    parts = [f"{m.name.replace('_', ' ')}" for m in query_meta]
    return "Table with columns: " + ", ".join(parts)


PARALLEL_EMBEDDING = (os.cpu_count() or 1) > 1
_EMBEDDING_THREAD: list = []


def _embedding_thread():
    if not _EMBEDDING_THREAD:
        from concurrent.futures import ThreadPoolExecutor

        with _SNAPSHOT_LOCK:
            if not _EMBEDDING_THREAD:
                _EMBEDDING_THREAD.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-search-embedding"))
    return _EMBEDDING_THREAD[0]


def _similarities(snapshot: _Snapshot, query_meta) -> np.ndarray:
    """Cosine similarity of the query's embedding with every table's (vectors are unit length: a dot product)."""
    if not snapshot.table_names:
        return np.zeros(0)
    return np.asarray(snapshot.table_vectors @ embed_one(query_text(query_meta)), dtype=np.float64)


def search_datasets(query_meta, top_k: int = 5, *, frame: pd.DataFrame | None = None, db_path: Path, lake_dir: Path | None = None,
                    category: str | None = None, exclude: tuple[str, ...] = ()) -> list[SearchHit]:
    """Rank lake tables for a user's table: names and descriptions by embedding, keys by value containment.

    ``query_meta`` is the user's column metadata; with ``frame`` the user's key values are looked up
    in the lake: typed keys (state, county FIPS, zip, city + state, zips through a crosswalk), any
    code or name column (normalised), moments at every grain, and pairs of them (see ``automodel.lake.keys``).
    """
    db_path = Path(db_path)
    if not db_path.exists():
        return []
    snapshot = _snapshot(db_path)
    allowed = np.fromiter(((not category or category in snapshot.tags[n] or category == n) and n not in exclude for n in snapshot.table_names),
                          dtype=bool, count=len(snapshot.table_names))
    # The query text's embedding (MiniLM, the largest single cost) runs in a thread beside the key lookups:
    # torch leaves Python's lock while it computes, so on a second core the two overlap.
    pending_similarities = _embedding_thread().submit(_similarities, snapshot, query_meta) if PARALLEL_EMBEDDING else None
    similarities = None if pending_similarities else _similarities(snapshot, query_meta)
    candidates = user_keys(frame, query_meta, crosswalk=_crosswalk_loader(snapshot, lake_dir)) if frame is not None else []
    codes = {}  # per column: factorized raw values, so distinct raw combinations are counted without sorting frames
    lookups = []  # per user key: what it found, key positions and hits per kind
    # Every table's best key score, before rounding: a bound that picks the few tables that can reach the top
    # hits, so only their keys are compared one by one (a state column is found in a thousand tables).
    bound = np.zeros(len(snapshot.table_names))
    for candidate in candidates:
        # Containment is over the user's distinct raw values, so codes that cannot be read
        # (a misspelt state, a zip the crosswalk lacks) count as misses.
        index = snapshot.by_kind.get(candidate.kind)
        if index is None:
            continue
        firsts = _raw_firsts(frame, candidate.columns, codes)
        raw_distinct = len(firsts)
        # One value per distinct raw combination: two spellings of one key count twice, as two values found.
        readable = candidate.values.iloc[firsts].dropna()
        if not raw_distinct or not len(readable):
            continue
        distinct = pd.unique(readable.to_numpy(dtype=object))
        user_hashes = hash_strings(readable.to_numpy(dtype=object))  # the text of each value (hash_strings converts what is not text)
        positions, found = index.found(user_hashes)
        if len(distinct) > EXACT_QUERY_LIMIT and len(positions):
            # Large key sets: the LSH Ensemble nominates lake keys likely to contain enough of them and
            # the exact counts re-rank its nominees (it also returns near-threshold false positives).
            distinct_hashes = value_hashes(distinct)
            keep = index.lsh.query(signature(distinct_hashes), len(distinct_hashes))[positions]
            positions, found = positions[keep], found[keep]
        tables = snapshot.key_tables[candidate.kind][positions]
        keep = allowed[tables]
        positions, found, tables = positions[keep], found[keep], tables[keep]
        if not len(positions):
            continue
        weight = key_weight(candidate.kind, len(distinct))
        unique = index.lsh.sizes[positions] / np.maximum(snapshot.table_rows[tables], 1)
        scores = np.minimum(found / raw_distinct, 1.0) * (0.8 + 0.2 * unique) * weight * (DERIVED_KEY_FACTOR if candidate.strategy != "direct" else 1.0)
        np.maximum.at(bound, tables, scores)
        lookups.append((candidate, index, raw_distinct, weight, positions, found, tables))
    if pending_similarities is not None:
        similarities = pending_similarities.result()
    approximate = np.where(allowed, VALUE_WEIGHT * bound + NAME_WEIGHT * np.maximum(similarities, 0.0), -np.inf)
    # Rounding (containment and uniqueness to 4 places, key comparison to 3) moves a score by well under 0.002.
    shortlist = allowed & (approximate >= np.sort(approximate)[-min(top_k, len(approximate))] - 0.002) if len(approximate) and top_k > 0 else allowed & False
    best_keys: dict[str, KeyMatch] = {}
    for candidate, index, raw_distinct, weight, positions, found, tables in lookups:
        for position, hits, table_index in zip(positions.tolist(), found.tolist(), tables.tolist()):
            if not shortlist[table_index]:
                continue
            lake_key = index.keys[position]
            table = lake_key.table
            unique = round(lake_key.distinct / max(snapshot.rows.get(table, 1), 1), 4)
            # Unreadable raw values (no key) count as misses: the denominator is every distinct raw value.
            containment = round(min(hits / raw_distinct, 1.0), 4)
            match = KeyMatch(candidate.columns, lake_key.columns, lake_key.kind, candidate.strategy, containment, raw_distinct, unique, candidate.bridge,
                             user_recipe=candidate.recipe, lake_recipe=lake_key.recipe, weight=weight)
            if _better(match, best_keys.get(table)):
                best_keys[table] = match
    hits = []
    for table_index in np.flatnonzero(shortlist).tolist():
        table, sim = snapshot.table_names[table_index], float(similarities[table_index])
        key = best_keys.get(table)
        score = VALUE_WEIGHT * _key_score(key) + NAME_WEIGHT * max(sim, 0.0)
        hits.append(SearchHit(table, round(score, 4), round(sim, 4), key.containment if key else 0.0, snapshot.descriptions[table],
                              snapshot.tags[table], key))
    hits.sort(key=lambda h: (-h.score, h.table))
    return hits[:top_k]


def _raw_firsts(frame: pd.DataFrame, columns: list[str], codes: dict) -> np.ndarray:
    """Row positions of the first occurrence of each distinct combination of the columns' raw values (none missing)."""
    combined = None
    for column in columns:
        if column not in codes:
            codes[column] = pd.factorize(frame[column], use_na_sentinel=True)
        values, uniques = codes[column]
        if combined is None:
            combined, valid = values.astype(np.int64), values >= 0
        else:
            combined, valid = combined * (len(uniques) + 1) + values, valid & (values >= 0)
    if combined is None:
        return np.zeros(0, dtype=np.int64)
    positions = np.flatnonzero(valid)
    _, first = np.unique(combined[valid], return_index=True)
    return positions[np.sort(first)]


def key_weight(kind: str, user_distinct: int) -> float:
    """How much a match on a key says about joinability, before containment.

    A handful of distinct values (three airports, two years) is contained by chance in many tables,
    so weight grows with the number of distinct values (0.6 at 1, 0.8 at 10, 1 from 100); a moment
    alone (a date, a year) matches any table of the same period, so it counts less than an entity
    or an entity at a moment.
    """
    weight = 0.6 + 0.4 * min(1.0, np.log10(max(user_distinct, 1)) / 2)
    if kind_is_time(kind):
        weight *= 0.85
    return round(float(weight), 4)


def _key_score(key: KeyMatch | None) -> float:
    if key is None:
        return 0.0
    # A key that is unique in the lake table joins row to row; one that repeats must be aggregated first.
    grain = (0.8 + 0.2 * key.lake_unique) * (DERIVED_KEY_FACTOR if key.strategy != "direct" else 1.0)
    zone = ZONE_UNKNOWN_FACTOR if zones_differ(key.user_recipe, key.lake_recipe) else 1.0
    return key.containment * grain * key.weight * zone


def _better(match: KeyMatch, current: KeyMatch | None) -> bool:
    """Higher weighted containment wins; on a tie a direct key beats a derived one, a composite key beats a
    single column, and a finer time grain beats a coarser one."""
    if current is None:
        return True
    from automodel.lake.keys import GRAINS

    def rank(m: KeyMatch):
        kinds = m.kind.replace("city_state", "city+state").split("+")
        fineness = -min((GRAINS.index(k) for k in kinds if k in GRAINS), default=len(GRAINS))
        # Typed keys (a state, a city + state) before generic ones of the same strength: their normalisers know more.
        return (round(_key_score(m), 3), m.strategy == "direct", len(kinds), -kinds.count("generic"), fineness, len(m.user_columns))

    return rank(match) > rank(current)


def _crosswalk_loader(snapshot: _Snapshot, lake_dir: Path | None):
    """A function giving (crosswalk table, from column, to column, frame) for a pair of key kinds, or None."""
    if lake_dir is None or not snapshot.crosswalks:
        return None
    return lambda: load_crosswalks(Path(lake_dir), snapshot.crosswalks, snapshot.index)


_CROSSWALK_CACHE: dict[tuple, list | None] = {}
_CROSSWALK_ENTRIES: dict[tuple[str, str], dict] = {}


def load_crosswalks(lake_dir: Path, crosswalks: dict[str, dict], index: search_index.SearchIndex | None = None) -> list[tuple[str, str, str, pd.DataFrame]]:
    """Lake tables declared as crosswalks (e.g. zip -> county FIPS) as lookups, read once per file version
    (or once per index version from the search index, which stores them normalised)."""
    out = []
    for name, spec in sorted(crosswalks.items()):
        if index is not None:
            cache_key = (str(index.folder), name, spec["from"], spec["to"])
            if cache_key not in _CROSSWALK_CACHE:
                for stale in [k for k in _CROSSWALK_CACHE if k[1:] == cache_key[1:]]:  # the same lookup of older index versions
                    del _CROSSWALK_CACHE[stale]
                stored = index.crosswalk(name, spec["from"], spec["to"])
                _CROSSWALK_CACHE[cache_key] = [name, spec["from"], spec["to"], stored] if stored is not None else None
            if _CROSSWALK_CACHE[cache_key] is not None:
                out.append(tuple(_CROSSWALK_CACHE[cache_key]))
                continue
        # The table's entry is looked up once per lake folder while its file stays where it was: listing
        # a large lake (its manifest, its files) costs more than the query it serves.
        entry = _CROSSWALK_ENTRIES.get((str(lake_dir), name))
        if entry is None or not (lake_dir / entry["file"]).exists():
            try:
                entry = _CROSSWALK_ENTRIES[(str(lake_dir), name)] = table_entry(lake_dir, name)
            except KeyError:
                continue
        path = lake_dir / entry["file"]
        cache_key = (str(path), path.stat().st_mtime_ns, spec["from"], spec["to"])
        if cache_key not in _CROSSWALK_CACHE:
            _CROSSWALK_CACHE[cache_key] = [name, spec["from"], spec["to"], read_crosswalk(lake_dir, entry, spec["from"], spec["to"])]
        out.append(tuple(_CROSSWALK_CACHE[cache_key]))
    return out


def read_crosswalk(lake_dir: Path, entry: dict, source: str, target: str) -> pd.Series:
    """A crosswalk table as a normalised lookup (e.g. zip -> county FIPS)."""
    frame = read_lake_text(lake_dir, entry)
    return crosswalk_mapping(frame[[source, target]])


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


__all__ = ["IndexReport", "KeyColumns", "KeyMatch", "SearchHit", "build_index", "catalog_summary", "connect", "lake_fingerprint",
           "load_lake_table", "read_manifest", "search_datasets", "table_entry"]
