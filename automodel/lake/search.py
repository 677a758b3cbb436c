"""Searching the lake catalog: ``search_datasets`` ranks lake tables for a user's table.

The rank is a blend of name/description similarity (cosine of the catalog's embeddings) and value overlap
(containment of the user's key values: LSH Ensemble candidates re-ranked by exact containment against the
hash sets). A search reads only the search index the catalog's build writes (``automodel.lake.search_index``),
opened once per index version per process; crosswalks (zip -> county) come from it too, or from the lake table.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.embedder import embed_one
from automodel.errors import AutomodelError
from automodel.lake import search_index
from automodel.lake.keys import kind_is_time, user_keys, zones_differ
from automodel.lake.matches import KeyMatch, SearchHit
from automodel.lake.search_index import KeyEntry
from automodel.lake.sketches import hash_strings, signature, value_hashes
from automodel.lake.tables import read_crosswalk, table_entry

# Score blend: value overlap decides joinability, names and descriptions break ties between tables
# that share the same keys (a state-keyed crime table versus a state-keyed list of capitals).
VALUE_WEIGHT = 0.6
NAME_WEIGHT = 0.4
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
    # numpy's matrix products and elementwise steps leave Python's lock, so on a second core the two overlap.
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
