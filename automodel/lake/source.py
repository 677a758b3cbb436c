"""What a lake is: any folder or S3 prefix of table files; ``manifest.json`` is optional metadata.

Every csv, tsv, psv, parquet, json, jsonl or xlsx file (gzipped too) under the lake is a table.
A manifest, when present, adds what files cannot say (description, source, licence, vintage, tags,
declared column roles, a crosswalk) to the tables it names, and may list ``ignore`` patterns
(globs relative to the lake, e.g. ``"samples/*"``) for files that are not lake tables. Files and
folders whose names start with ``.`` or ``_`` are never tables (state, caches, drafts).

An S3 lake (``s3://bucket/prefix``) is mirrored into ``$AUTOMODEL_HOME/lake_mirror/<bucket>/<prefix>``:
only objects whose ETag changed are downloaded, objects removed from the prefix are removed from
the mirror, and everything downstream (the index, the sensor's fingerprint, the joins) reads the
mirror as a plain folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from automodel.errors import AutomodelError

TABLE_SUFFIXES = (".csv", ".tsv", ".psv", ".parquet", ".pq", ".json", ".jsonl", ".ndjson", ".xlsx")
MANIFEST = "manifest.json"
MIRROR_STATE = ".mirror_state.json"
MIRROR_TTL_S = 10.0  # a process re-lists an S3 lake at most this often


class LakeError(AutomodelError):
    """The lake folder or prefix cannot be used."""


def is_table_file(name: str) -> bool:
    lower = name.lower().removesuffix(".gz")
    return lower.endswith(TABLE_SUFFIXES) and Path(name).name != MANIFEST


def table_stem(name: str) -> str:
    """A file's name without its table suffixes: ``weather.csv.gz`` -> ``weather``."""
    base = Path(name).name
    lower = base.lower()
    if lower.endswith(".gz"):
        base, lower = base[:-3], lower[:-3]
    for suffix in TABLE_SUFFIXES:
        if lower.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _safe_name(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_") or "table"


def read_manifest(lake_dir: Path) -> dict:
    """The manifest's contents (``{"tables": [...], "ignore": [...]}``); empty when the lake has none."""
    path = Path(lake_dir) / MANIFEST
    if not path.exists():
        return {"tables": [], "ignore": []}
    try:
        manifest = json.loads(path.read_text())
        tables = manifest.get("tables", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) and t.get("name") and t.get("file") for t in tables):
            raise ValueError("every table needs a name and a file")
        ignore = manifest.get("ignore", [])
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise ValueError("'ignore' must be a list of glob patterns")
    except (ValueError, AttributeError, TypeError) as exc:
        raise LakeError(f"The lake manifest {path} cannot be read ({exc}); fix it so it lists tables with a name and a file, "
                        "or delete it (a lake needs no manifest).") from None
    return {"tables": tables, "ignore": ignore}


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    if any(part.startswith((".", "_")) for part in parts):
        return True
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(relative, p.rstrip("/") + "/*") for p in patterns)


def table_files(lake_dir: Path, ignore: list[str] | None = None) -> list[str]:
    """Every table file under the lake, as sorted paths relative to it (``/``-separated)."""
    lake_dir = Path(lake_dir)
    ignore = read_manifest(lake_dir)["ignore"] if ignore is None else ignore
    found = []
    for path in lake_dir.rglob("*"):
        if path.is_file() and is_table_file(path.name):
            relative = path.relative_to(lake_dir).as_posix()
            if not _ignored(relative, ignore):
                found.append(relative)
    return sorted(found)


def lake_entries(lake_dir: Path) -> list[dict]:
    """One entry per lake table: the manifest's entry where it names the file, else ``{"name", "file"}`` from the file.

    A table found only as a file is named after its stem (``weather.csv.gz`` -> ``weather``); when two
    files share a stem, their folders make the names unique (``2013_weather``).
    """
    lake_dir = Path(lake_dir)
    if not lake_dir.is_dir():
        raise LakeError(f"The lake {lake_dir} is not a folder; point AUTOMODEL_LAKE or --lake at a folder (or s3:// prefix) of table files.")
    manifest = read_manifest(lake_dir)
    entries = [dict(t) for t in manifest["tables"]]
    listed = {Path(t["file"]).as_posix() for t in entries}
    taken = {t["name"] for t in entries}
    unlisted = [f for f in table_files(lake_dir, manifest["ignore"]) if f not in listed]
    stems: dict[str, int] = {}
    for relative in unlisted:
        stem = _safe_name(table_stem(relative))
        stems[stem] = stems.get(stem, 0) + 1
    for relative in unlisted:
        stem = _safe_name(table_stem(relative))
        name = stem
        if stems[stem] > 1 or name in taken:
            name = _safe_name(table_stem(relative.replace("/", "_")))
        while name in taken:
            name = f"{name}_{hashlib.sha1(relative.encode()).hexdigest()[:6]}"
        taken.add(name)
        entries.append({"name": name, "file": relative})
    return entries


def lake_fingerprint(lake_dir: Path) -> str:
    """Names, sizes and modification times of the lake's tables and manifest: changes when the lake changes."""
    lake_dir = Path(lake_dir)
    parts = []
    if not lake_dir.is_dir():
        return hashlib.sha256(b"missing").hexdigest()[:16]
    try:
        files = table_files(lake_dir)
    except LakeError:
        files = []
    for relative in [MANIFEST, *files]:
        path = lake_dir / relative
        if path.is_file():
            stat = path.stat()
            parts.append(f"{relative}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


# ---- S3 lakes ----------------------------------------------------------------------------------

def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def mirror_path(home: str | Path, uri: str) -> Path:
    parsed = urlparse(uri)
    prefix = parsed.path.strip("/")
    return Path(home).expanduser().resolve() / "lake_mirror" / _safe_name(parsed.netloc) / (prefix or "_root").replace("..", "_")


_MIRRORED: dict[str, float] = {}
_MIRROR_LOCK = threading.Lock()


def mirror_s3_lake(uri: str, home: str | Path, client=None, force: bool = False) -> Path:
    """The S3 lake as a local folder, brought up to date with the prefix (at most every MIRROR_TTL_S per process)."""
    from automodel.atomic import file_lock

    local = mirror_path(home, uri)
    key = f"{uri}|{local}"
    with _MIRROR_LOCK:
        if not force and time.monotonic() - _MIRRORED.get(key, -1e9) < MIRROR_TTL_S and local.is_dir():
            return local
        local.mkdir(parents=True, exist_ok=True)
        with file_lock(str(local) + ".lock"):
            _sync_mirror(uri, local, client)
        _MIRRORED[key] = time.monotonic()
    return local


def _sync_mirror(uri: str, local: Path, client=None) -> None:
    from automodel.atomic import write_bytes_atomic, write_text_atomic

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if client is None:
        import boto3

        client = boto3.client("s3")
    state_path = local / MIRROR_STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    remote: dict[str, str] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix):]
                if relative and not relative.endswith("/") and ".." not in relative.split("/") and (
                        relative == MANIFEST or (is_table_file(relative) and not _ignored(relative, []))):
                    remote[relative] = obj["ETag"]
        for relative, etag in remote.items():
            target = local / relative
            if state.get(relative) == etag and target.exists():
                continue
            body = client.get_object(Bucket=bucket, Key=prefix + relative)["Body"].read()
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(target, body)
            state[relative] = etag
    except Exception as exc:  # botocore raises ClientError, EndpointConnectionError, NoCredentialsError and more
        if isinstance(exc, AutomodelError):
            raise
        raise LakeError(f"The S3 lake {uri} could not be read ({type(exc).__name__}: {str(exc)[:120]}); "
                        "check the bucket, prefix, credentials and AWS_ENDPOINT_URL.") from None
    for relative in [r for r in state if r not in remote]:
        (local / relative).unlink(missing_ok=True)
        state.pop(relative)
    write_text_atomic(state_path, json.dumps(state, sort_keys=True))


def resolve_lake(lake: str | Path, home: str | Path) -> Path:
    """A local folder for the lake setting: the folder itself, or the up-to-date mirror of an S3 prefix."""
    if is_s3(str(lake)):
        return mirror_s3_lake(str(lake), home)
    return Path(lake).expanduser().resolve()
