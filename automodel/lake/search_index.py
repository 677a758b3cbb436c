"""The catalog's search index: everything ``search_datasets`` reads, as numpy files a searcher memory-maps.

Written by the index build beside the DuckDB catalog (``catalog.duckdb`` -> ``catalog.search/``), one
folder per version and a ``CURRENT`` file naming the one to read, replaced atomically, so a search never
waits for a build and never sees half of one. A version holds:

- ``manifest.json``: the tables (fingerprint, rows, description, tags, crosswalk) and, per key kind, its
  keys (table, columns, distinct values, recipe) in ascending order of size, with the LSH Ensemble's
  partition bounds and band parameters;
- ``tables.npy``: the unit-length table embeddings, one row per table in manifest order;
- per crosswalk table ``T`` (a lake table declared as a zip -> county lookup): ``crosswalk-T.npy``, its
  normalised pairs, so the first zip search of a process does not read and normalise the table;
- per key kind ``N``: ``N.values.npy`` (every distinct value hash of the kind, sorted), ``N.offsets.npy``
  and ``N.owners.npy`` (for each value, the keys that hold it: an inverted index, so counting a user's
  values in every key of a kind takes two binary searches per value), ``N.signatures.npy`` (one MinHash
  per key, the LSH Ensemble's input).

Loading a version opens the manifest and maps the arrays: nothing is rebuilt, and pages are read from
disk (or the page cache) as queries touch them. Each value hash is stored once per kind with 2-byte
owners where a kind has fewer than 65,536 keys, so a lake whose tables share their keys (regional
extracts of one table, the same cities under several composite keys) stores its values once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from automodel.atomic import write_text_atomic
from automodel.lake.sketches import NUM_PERM, ContainmentLSH, band_parameters, size_partitions

FORMAT = "1"


def index_dir(db_path: Path) -> Path:
    db_path = Path(db_path)
    return db_path.parent / f"{db_path.stem}.search"


def current_version(db_path: Path) -> str | None:
    try:
        return (index_dir(db_path) / "CURRENT").read_text().strip() or None
    except FileNotFoundError:
        return None


@dataclass
class KeyEntry:
    key_id: str
    table: str
    columns: list[str]
    kind: str
    distinct: int
    recipe: str


@dataclass
class KindIndex:
    """The keys of one kind: an inverted index from value hash to keys, and an LSH Ensemble over their signatures."""

    keys: list[KeyEntry]  # ascending size; owners and signature rows refer to positions here
    values: np.ndarray  # uint64, sorted, distinct
    offsets: np.ndarray  # int64, len(values) + 1: owners[offsets[i]:offsets[i + 1]] hold values[i]
    owners: np.ndarray  # uint16 or int32 positions in keys
    lsh: ContainmentLSH
    file: str = ""  # stem of its files in the version folder

    def found(self, user_hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys holding any of the user's hashes (positions, ascending) and how many each holds (each key holds a value once)."""
        empty = np.zeros(0, dtype=np.int64)
        if not len(self.values) or not len(user_hashes):
            return empty, empty
        # Each distinct hash is looked up once and counted as often as the user has it (a county cut to its
        # state repeats ~50 states over 3,000 rows, each held by a thousand keys).
        distinct, repeats = np.unique(user_hashes, return_counts=True)
        positions = np.minimum(np.searchsorted(self.values, distinct), len(self.values) - 1)
        held = self.values[positions] == distinct
        positions, repeats = positions[held], repeats[held]
        if not len(positions):
            return empty, empty
        starts, ends = self.offsets[positions], self.offsets[positions + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        gather = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(total)
        tally = np.bincount(np.asarray(self.owners[gather], dtype=np.int64), weights=np.repeat(repeats, lengths).astype(np.float64),
                            minlength=len(self.keys))
        keys = np.flatnonzero(tally)
        return keys, np.rint(tally[keys]).astype(np.int64)

    def counts(self, user_hashes: np.ndarray) -> dict[str, int]:
        """For each key holding any of the user's hashes, how many it holds, by key id."""
        positions, found = self.found(user_hashes)
        return {self.keys[i].key_id: int(n) for i, n in zip(positions.tolist(), found.tolist())}

    def nominated(self, query_signature: np.ndarray, query_size: int) -> set[str]:
        """Keys the LSH Ensemble says probably contain at least its threshold share of the query's values."""
        return {self.keys[i].key_id for i in np.flatnonzero(self.lsh.query(query_signature, query_size))}

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """(value hash, key position) for every value of every key: what a rebuild starts from."""
        return np.repeat(np.asarray(self.values), np.diff(np.asarray(self.offsets))), np.asarray(self.owners, dtype=np.int64)

    def key_hashes(self, key_id: str) -> np.ndarray:
        position = next(i for i, k in enumerate(self.keys) if k.key_id == key_id)
        hashes, owners = self.entries()
        return hashes[owners == position]


@dataclass
class SearchIndex:
    version: str
    tables: list[dict]  # name, fingerprint, rows, description, tags, crosswalk; sorted by name
    table_vectors: np.ndarray  # (tables, dim) float32, unit length
    kinds: dict[str, KindIndex]
    skipped: dict[str, list]  # table -> [fingerprint, reason]: unreadable files, as the build last saw them
    folder: Path
    crosswalk_files: dict[str, dict] = field(default_factory=dict)  # table -> {"file", "from", "to"}

    def crosswalk(self, table: str, source: str, target: str):
        """The stored lookup of a crosswalk table (a Series: normalised from-value -> to-value), or None."""
        spec = self.crosswalk_files.get(table)
        if not spec or (spec["from"], spec["to"]) != (source, target):
            return None
        import pandas as pd

        pairs = np.load(self.folder / spec["file"])
        return pd.Series(pairs[:, 1].astype(object), index=pd.Index(pairs[:, 0].astype(object)), dtype=object)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {t["name"]: t["fingerprint"] for t in self.tables}

    @property
    def keys(self) -> dict[str, KeyEntry]:
        return {k.key_id: k for kind in self.kinds.values() for k in kind.keys}


def load(db_path: Path) -> SearchIndex | None:
    """The current version, its arrays memory-mapped; None when there is none (or it was removed meanwhile)."""
    for _ in range(3):  # a build may replace the version between reading CURRENT and opening it
        version = current_version(db_path)
        if version is None:
            return None
        try:
            return _load_version(index_dir(db_path) / version, version)
        except FileNotFoundError:
            time.sleep(0.05)
    return None


def _load_version(folder: Path, version: str) -> SearchIndex:
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise FileNotFoundError(folder)  # written by another version of this code: treated as absent, rebuilt
    params = np.asarray(manifest["band_parameters"], dtype=np.int64)
    kinds = {}
    for kind, spec in manifest["kinds"].items():
        stem = folder / spec["file"]
        keys = [KeyEntry(*row) for row in spec["keys"]]
        signatures = _mapped(f"{stem}.signatures.npy")
        lsh = ContainmentLSH(signatures, np.asarray([k.distinct for k in keys], dtype=np.int64), np.asarray(spec["ends"], dtype=np.int64),
                             np.asarray(spec["uppers"], dtype=np.int64), params)
        kinds[kind] = KindIndex(keys, _mapped(f"{stem}.values.npy"), _mapped(f"{stem}.offsets.npy"), _mapped(f"{stem}.owners.npy"), lsh, spec["file"])
    vectors = _mapped(folder / "tables.npy")
    return SearchIndex(version, manifest["tables"], vectors, kinds, manifest.get("skipped", {}), folder, manifest.get("crosswalks", {}))


def _mapped(path) -> np.ndarray:
    """A memory-mapped array seen as a plain ndarray (no copy): indexing a ``np.memmap`` costs ~50 us a call in wrapping."""
    return np.asarray(np.load(path, mmap_mode="r"))


@dataclass
class NewKey:
    """A key profiled in this build: its description, distinct value hashes and signature."""

    entry: KeyEntry
    hashes: np.ndarray
    signature: np.ndarray


def write(db_path: Path, tables: list[dict], vectors: np.ndarray, keys: list[KeyEntry], new: dict[str, NewKey],
          previous: SearchIndex | None, skipped: dict[str, list], crosswalks: dict[str, tuple[str, str, np.ndarray]] | None = None) -> str:
    """Write a new version holding ``keys``: hashes from ``new`` where given, else from ``previous``;
    ``crosswalks`` maps a crosswalk table to (from column, to column, its normalised pairs as a (n, 2) text array).

    Kinds whose keys are exactly the previous version's are linked, not rewritten.
    """
    root = index_dir(db_path)
    root.mkdir(parents=True, exist_ok=True)
    version = f"v{time.time_ns()}"
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        by_kind: dict[str, list[KeyEntry]] = {}
        for key in keys:
            by_kind.setdefault(key.kind, []).append(key)
        spec, params = {}, band_parameters()
        for number, (kind, members) in enumerate(sorted(by_kind.items())):
            file = f"k{number}"
            old = previous.kinds.get(kind) if previous else None
            if old is not None and not any(k.key_id in new for k in members) and {k.key_id for k in members} == {k.key_id for k in old.keys}:
                for suffix in ("values", "offsets", "owners", "signatures"):
                    _link_or_copy(previous.folder / f"{old.file}.{suffix}.npy", staging / f"{file}.{suffix}.npy")
                spec[kind] = {"file": file, "keys": [_row(k) for k in old.keys], "ends": old.lsh.ends.tolist(), "uppers": old.lsh.uppers.tolist()}
                continue
            spec[kind] = _write_kind(staging / file, members, new, old)
            spec[kind]["file"] = file
        np.save(staging / "tables.npy", np.asarray(vectors, dtype=np.float32))
        crosswalk_files = {}
        for number, (table, (source, target, pairs)) in enumerate(sorted((crosswalks or {}).items())):
            crosswalk_files[table] = {"file": f"crosswalk-{number}.npy", "from": source, "to": target}
            np.save(staging / f"crosswalk-{number}.npy", np.asarray(pairs, dtype=str).reshape(-1, 2))
        manifest = {"format": FORMAT, "version": version, "tables": tables, "skipped": skipped, "kinds": spec,
                    "band_parameters": params.tolist(), "crosswalks": crosswalk_files}
        (staging / "manifest.json").write_text(json.dumps(manifest))
        for path in staging.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        os.rename(staging, root / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old_version = previous.version if previous else None
    write_text_atomic(root / "CURRENT", version)
    # The version before stays one build longer: a search that read CURRENT just before the switch can still open it.
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in (version, old_version):
            shutil.rmtree(folder, ignore_errors=True)
    return version


def remove(db_path: Path) -> None:
    shutil.rmtree(index_dir(db_path), ignore_errors=True)


def size_bytes(db_path: Path) -> int:
    version = current_version(db_path)
    if version is None:
        return 0
    return sum(p.stat().st_size for p in (index_dir(db_path) / version).iterdir() if p.is_file())


def _row(key: KeyEntry) -> list:
    return [key.key_id, key.table, key.columns, key.kind, key.distinct, key.recipe]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_kind(stem: Path, members: list[KeyEntry], new: dict[str, NewKey], old: KindIndex | None) -> dict:
    members = sorted(members, key=lambda k: (k.distinct, k.key_id))
    hash_parts, owner_parts, signatures = [], [], np.zeros((len(members), NUM_PERM), dtype=np.uint32)
    old_entries = old.entries() if old is not None and any(k.key_id not in new for k in members) else None
    old_position = {k.key_id: i for i, k in enumerate(old.keys)} if old is not None else {}
    if old_entries is not None:
        remap = np.full(len(old.keys), -1, dtype=np.int64)
        for position, key in enumerate(members):
            if key.key_id not in new:
                remap[old_position[key.key_id]] = position
        owners = remap[old_entries[1]]
        kept = owners >= 0
        hash_parts.append(old_entries[0][kept])
        owner_parts.append(owners[kept])
    for position, key in enumerate(members):
        if key.key_id in new:
            hashes = new[key.key_id].hashes
            hash_parts.append(hashes)
            owner_parts.append(np.full(len(hashes), position, dtype=np.int64))
            signatures[position] = new[key.key_id].signature
        else:
            signatures[position] = old.lsh.signatures[old_position[key.key_id]]
    hashes = np.concatenate(hash_parts) if hash_parts else np.zeros(0, dtype=np.uint64)
    owners = np.concatenate(owner_parts) if owner_parts else np.zeros(0, dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    hashes, owners = hashes[order], owners[order]
    starts = np.flatnonzero(np.concatenate(([True], hashes[1:] != hashes[:-1]))) if len(hashes) else np.zeros(0, dtype=np.int64)
    values = hashes[starts]
    offsets = np.concatenate((starts, [len(hashes)])).astype(np.int64)
    owner_type = np.uint16 if len(members) < 2**16 else np.int32
    sizes = np.asarray([k.distinct for k in members], dtype=np.int64)
    lsh = ContainmentLSH.build(signatures, sizes)
    np.save(f"{stem}.values.npy", values.astype(np.uint64))
    np.save(f"{stem}.offsets.npy", offsets)
    np.save(f"{stem}.owners.npy", owners.astype(owner_type))
    np.save(f"{stem}.signatures.npy", signatures)
    return {"keys": [_row(k) for k in members], "ends": lsh.ends.tolist(), "uppers": lsh.uppers.tolist()}


__all__ = [
    "KeyEntry",
    "KindIndex",
    "NewKey",
    "SearchIndex",
    "current_version",
    "index_dir",
    "load",
    "remove",
    "size_bytes",
    "size_partitions",
    "write",
]
