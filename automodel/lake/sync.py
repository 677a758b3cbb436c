"""Lake syncs: mirror tables from an S3 prefix or fetch them from an HTTP API into the lake folder.

Each configured source owns ``<lake>/synced/<name>/`` and the manifest entries tagged
``"synced_from": <name>``; a sync rewrites only what changed, so an unchanged source leaves the
lake's fingerprint (and therefore the semantic index) alone. Every write is atomic and a failing
source leaves its previous files and manifest entries as they were.

Configuration is JSON (a file path or the JSON itself in ``AUTOMODEL_LAKE_SYNC``)::

    {"sources": [
        {"name": "census", "kind": "s3", "uri": "s3://bucket/lake/"},
        {"name": "crime", "kind": "api", "url": "https://example.org/api/crime", "format": "json",
         "records": "data.rows", "description": "...", "licence": "CC-BY-4.0"}
    ]}
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from automodel.atomic import write_bytes_atomic, write_text_atomic
from automodel.errors import AutomodelError
from automodel.lake.source import MANIFEST, is_table_file, table_stem

SYNCED_DIR = "synced"
STATE_FILE = ".sync_state.json"
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class LakeSyncError(AutomodelError):
    """A lake sync source is misconfigured or returned something that is not a table."""


@dataclass
class SourceReport:
    name: str
    kind: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class SyncReport:
    sources: list[SourceReport]

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.sources)

    @property
    def errors(self) -> list[str]:
        return [f"{s.name}: {s.error}" for s in self.sources if s.error]

    def to_dict(self) -> dict:
        return {"changed": self.changed, "errors": self.errors,
                "sources": [{"name": s.name, "kind": s.kind, "added": s.added, "updated": s.updated,
                             "unchanged": len(s.unchanged), "removed": s.removed, "error": s.error} for s in self.sources]}


def load_sync_config(value: str) -> list[dict]:
    """The configured sources, from a JSON file path or inline JSON; empty when nothing is configured."""
    if not value or not value.strip():
        return []
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value).expanduser()
        if not path.is_file():
            raise LakeSyncError(f"Lake sync configuration {value} does not exist; point AUTOMODEL_LAKE_SYNC at a JSON file or inline JSON.")
        text = path.read_text()
    try:
        sources = json.loads(text).get("sources", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise LakeSyncError(f"Lake sync configuration is not a JSON object with a 'sources' list ({exc}); fix AUTOMODEL_LAKE_SYNC.") from exc
    names = set()
    for source in sources:
        name, kind = source.get("name", ""), source.get("kind")
        if not SOURCE_NAME.match(str(name)):
            raise LakeSyncError(f"Lake sync source name {name!r} must be lower-case letters, digits, '-' or '_'; rename it.")
        if name in names:
            raise LakeSyncError(f"Lake sync source {name!r} is configured twice; give each source its own name.")
        names.add(name)
        if kind == "s3" and not str(source.get("uri", "")).startswith("s3://"):
            raise LakeSyncError(f"Lake sync source {name!r} needs a 'uri' like s3://bucket/prefix/.")
        if kind == "api" and urlparse(str(source.get("url", ""))).scheme not in ("http", "https"):
            raise LakeSyncError(f"Lake sync source {name!r} needs an http(s) 'url'.")
        if kind not in ("s3", "api"):
            raise LakeSyncError(f"Lake sync source {name!r} has kind {kind!r}; use 's3' or 'api'.")
    return sources


def _read_manifest(lake_dir: Path) -> dict:
    path = lake_dir / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {"tables": []}


def _write_manifest(lake_dir: Path, manifest: dict) -> None:
    write_text_atomic(lake_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def _read_state(lake_dir: Path) -> dict:
    path = lake_dir / SYNCED_DIR / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_state(lake_dir: Path, state: dict) -> None:
    write_text_atomic(lake_dir / SYNCED_DIR / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))


def _table_name(source: str, stem: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", f"{source}_{stem}".lower()).strip("_")


def _synced_stems(relatives: list[str]) -> dict[str, str]:
    """A table stem per file: the file's stem, or its path (and format) where two files would share one."""
    def stem(rel: str, depth: int) -> str:
        if depth == 0:
            return table_stem(rel)
        if depth == 1:
            return table_stem(rel.replace("/", "_"))
        return rel.replace("/", "_").replace(".", "_")

    stems, depth = {}, {rel: 0 for rel in relatives}
    for level in range(3):
        stems = {rel: stem(rel, depth[rel]) for rel in relatives}
        counts: dict[str, int] = {}
        for value in stems.values():
            counts[value] = counts.get(value, 0) + 1
        clashing = [rel for rel, value in stems.items() if counts[value] > 1]
        if not clashing or level == 2:
            break
        for rel in clashing:
            depth[rel] += 1
    return stems


def is_synced_table(relative: str) -> bool:
    """A table file the lake indexes (csv, tsv, psv, parquet, json, jsonl, xlsx, gzipped too), outside
    folders and files whose names start with ``.`` or ``_`` (job markers, temporary output)."""
    parts = relative.split("/")
    return (bool(relative) and not relative.endswith("/") and ".." not in parts and not any(p.startswith((".", "_")) for p in parts)
            and is_table_file(relative))


def _check_table(data: bytes, what: str, name: str) -> None:
    """A synced table must load, with the loader the index uses, into at least one row and two columns."""
    from automodel.ingest.loader import load_bytes

    try:
        frame, _ = load_bytes(name.rsplit("/", 1)[-1], data, source=what)
    except AutomodelError as exc:
        raise LakeSyncError(f"{what} is not a readable table ({exc.message.rstrip('.')}); fix the source or remove it from the sync configuration.") from exc
    except Exception as exc:  # parsers raise many types for damaged files
        raise LakeSyncError(f"{what} is not a readable table ({type(exc).__name__}); fix the source or remove it from the sync configuration.") from exc
    if frame.empty or frame.shape[1] < 2:
        raise LakeSyncError(f"{what} has no rows or fewer than two columns; a lake table needs a key column and data.")


def _replace_entries(manifest: dict, source: str, entries: list[dict]) -> dict:
    kept = [t for t in manifest.get("tables", []) if t.get("synced_from") != source]
    taken = {t["name"] for t in kept}
    clash = [e["name"] for e in entries if e["name"] in taken]
    if clash:
        raise LakeSyncError(f"Synced table {clash[0]!r} would replace a lake table of the same name; rename the file or the source.")
    return {**manifest, "tables": kept + sorted(entries, key=lambda e: e["name"])}


def _update_manifest(lake_dir: Path, source: str, entries: list[dict]) -> None:
    """Rewrite manifest.json only when this source's entries differ, so an unchanged sync changes nothing."""
    manifest = _read_manifest(lake_dir)
    current = sorted((t for t in manifest.get("tables", []) if t.get("synced_from") == source), key=lambda e: e["name"])
    if current != sorted(entries, key=lambda e: e["name"]):
        _write_manifest(lake_dir, _replace_entries(manifest, source, entries))


def sync_from_s3(source: dict, lake_dir: Path, client=None) -> SourceReport:
    """Mirror the tables under an S3 prefix into ``<lake>/synced/<name>/``; objects are re-read only when their ETag changes.

    Every format a lake folder holds is mirrored (csv, tsv, psv, parquet, json, jsonl, xlsx, gzipped
    ones), each checked with the loader the index uses. A ``manifest.json`` under the prefix supplies
    descriptions, licences and column roles; without one, each file becomes a table named
    ``<source>_<file stem>``.
    """
    import boto3

    name = source["name"]
    report = SourceReport(name, "s3")
    client = client or boto3.client("s3")
    parsed = urlparse(source["uri"])
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            objects[obj["Key"][len(prefix):]] = obj
    remote_manifest = None
    if MANIFEST in objects:
        body = client.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read()
        try:
            remote_manifest = {t["file"]: t for t in json.loads(body)["tables"]}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LakeSyncError(f"{source['uri']}manifest.json is not a lake manifest with a 'tables' list; fix or remove it.") from exc
    tables = {rel: obj for rel, obj in objects.items()
              if is_synced_table(rel) and (remote_manifest is None or rel in remote_manifest)}
    lake_dir = Path(lake_dir)
    state = _read_state(lake_dir)
    known = state.get(name, {})
    target_dir = lake_dir / SYNCED_DIR / name
    fresh_state, entries, downloads = {}, [], {}
    stems = _synced_stems(sorted(tables))
    for rel, obj in sorted(tables.items()):
        etag = obj["ETag"].strip('"')
        local = target_dir / rel
        if known.get(rel) == etag and local.exists():
            report.unchanged.append(rel)
        else:
            data = client.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read()
            _check_table(data, f"s3://{bucket}/{prefix}{rel}", rel)
            downloads[rel] = data
            (report.updated if rel in known else report.added).append(rel)
        fresh_state[rel] = etag
        declared = (remote_manifest or {}).get(rel, {})
        entries.append({**declared, "name": declared.get("name") or _table_name(name, stems[rel]),
                        "file": f"{SYNCED_DIR}/{name}/{rel}", "source": declared.get("source") or f"s3://{bucket}/{prefix}{rel}",
                        "licence": declared.get("licence") or source.get("licence", "see source"),
                        "description": declared.get("description") or source.get("description", f"Synced from s3://{bucket}/{prefix}{rel}"),
                        "synced_from": name})
    report.removed = sorted(rel for rel in known if rel not in tables)
    _replace_entries(_read_manifest(lake_dir), name, entries)  # a name clash fails before anything is written
    # Files first, then the manifest, so the index never sees an entry whose file is missing.
    for rel, data in downloads.items():
        write_bytes_atomic(target_dir / rel, data)
    _update_manifest(lake_dir, name, entries)
    for rel in report.removed:
        (target_dir / rel).unlink(missing_ok=True)
    state[name] = fresh_state
    _write_state(lake_dir, state)
    return report


def _records_at(payload, path: str | None):
    for part in (path.split(".") if path else []):
        if not isinstance(payload, dict) or part not in payload:
            raise LakeSyncError(f"The API response has no '{path}' field; set 'records' to the path of the list of rows.")
        payload = payload[part]
    return payload


def fetch_from_api(source: dict, lake_dir: Path, timeout_s: float = 30.0) -> SourceReport:
    """Fetch one table from an HTTP endpoint (CSV, or JSON records) into ``<lake>/synced/<name>/<name>.csv``."""
    name = source["name"]
    report = SourceReport(name, "api")
    url = source["url"]
    request = urllib.request.Request(url, headers={"Accept": "text/csv, application/json", "User-Agent": "automodel-lake-sync"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise LakeSyncError(f"{url} answered HTTP {exc.code}; check the URL and the API's credentials.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LakeSyncError(f"{url} could not be reached ({getattr(exc, 'reason', exc)}); check the URL and the network.") from exc
    kind = source.get("format") or ("json" if "json" in content_type else "csv")
    if kind == "json":
        try:
            records = _records_at(json.loads(body), source.get("records"))
        except json.JSONDecodeError as exc:
            raise LakeSyncError(f"{url} did not return JSON ({exc.msg}); set 'format' to 'csv' if it serves CSV.") from exc
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise LakeSyncError(f"{url} did not return a non-empty list of JSON objects; set 'records' to the path of the rows.")
        body = pd.DataFrame.from_records(records).to_csv(index=False).encode()
    _check_table(body, url, "table.csv")
    rel = f"{name}.csv"
    local = Path(lake_dir) / SYNCED_DIR / name / rel
    digest = hashlib.sha256(body).hexdigest()
    state = _read_state(Path(lake_dir))
    if state.get(name, {}).get(rel) == digest and local.exists():
        report.unchanged.append(rel)
    else:
        (report.updated if local.exists() else report.added).append(rel)
        write_bytes_atomic(local, body)
    entry = {"name": source.get("table") or name.replace("-", "_"),
             "file": f"{SYNCED_DIR}/{name}/{rel}", "source": url, "licence": source.get("licence", "see source"),
             "description": source.get("description", f"Fetched from {url}"), "synced_from": name}
    _update_manifest(Path(lake_dir), name, [entry])
    state[name] = {rel: digest}
    _write_state(Path(lake_dir), state)
    return report


def sync_lake(sources: list[dict], lake_dir: Path, s3_client=None) -> SyncReport:
    """Run every configured source; one failing source is reported and leaves the others' results in place."""
    reports = []
    for source in sources:
        try:
            if source["kind"] == "s3":
                reports.append(sync_from_s3(source, lake_dir, client=s3_client))
            else:
                reports.append(fetch_from_api(source, lake_dir))
        except LakeSyncError as exc:
            reports.append(SourceReport(source["name"], source["kind"], error=str(exc)))
        except Exception as exc:  # botocore connection and permission errors: one line per source
            reports.append(SourceReport(source["name"], source["kind"],
                                        error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")))
    return SyncReport(reports)
