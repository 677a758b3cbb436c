"""The session store: one row per run with its manifest (inputs) and its results, in SQLite.

The manifest is written when the run's partition is created, so any later materialization
of that partition (from the CLI, a sensor or the UI) knows its inputs without run config.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

_COLUMNS = {
    "run_id": "TEXT PRIMARY KEY", "created_at": "REAL", "updated_at": "REAL", "source_uri": "TEXT", "user_id": "TEXT",
    "file_name": "TEXT", "target": "TEXT", "labels": "TEXT", "category": "TEXT", "model_run_id": "TEXT", "status": "TEXT",
    "error": "TEXT", "analyzer": "TEXT", "task": "TEXT", "metrics": "TEXT", "model_type": "TEXT", "model_path": "TEXT",
    "predictions_path": "TEXT", "dashboard_path": "TEXT", "summary": "TEXT", "enrichment": "TEXT", "actions": "TEXT",
    "needs_role_review": "INTEGER", "scoring": "TEXT", "options": "TEXT",
    # host|pid|start time of the process that runs it from the command line (automodel.liveness), so a dead one is noticed
    "worker": "TEXT",
    # which path the table took (in-memory or out-of-core) and the rows that trained the search and the final model
    "training": "TEXT",
}
_JSON_FIELDS = {"labels", "metrics", "enrichment", "actions", "scoring", "options", "training"}


@dataclass
class RunManifest:
    """A run's inputs, fixed when its partition is created."""

    run_id: str
    source_uri: str
    user_id: str = "default"
    file_name: str = ""
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    model_run_id: str | None = None  # for scoring: the run whose model is reused
    # Per-run options beside the target and labels (a drop folder's sidecar file, e.g. {"budget_s": 30}).
    options: dict = field(default_factory=dict)


class SessionStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.execute(f"CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{k} {v}' for k, v in _COLUMNS.items())})")
            con.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at)")
            present = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
            for name, kind in _COLUMNS.items():  # a store made by an older version gains the new fields
                if name not in present:
                    try:
                        con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as exc:  # another process added it first
                        if "duplicate column" not in str(exc):
                            raise

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=30000")
        con.row_factory = sqlite3.Row
        return con

    def create(self, manifest: RunManifest, worker: str | None = None) -> None:
        now = time.time()
        row = {**asdict(manifest), "created_at": now, "updated_at": now, "status": "created", "worker": worker}
        self._write("INSERT INTO runs ({cols}) VALUES ({marks})", row)

    def update(self, run_id: str, **fields) -> None:
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise KeyError(f"unknown session fields: {sorted(unknown)}")
        fields["updated_at"] = time.time()
        encoded = {k: self._encode(k, v) for k, v in fields.items()}
        with closing(self._connect()) as con, con:
            con.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in encoded)} WHERE run_id = ?", [*encoded.values(), run_id])

    def _write(self, sql: str, row: dict) -> None:
        encoded = {k: self._encode(k, v) for k, v in row.items()}
        with closing(self._connect()) as con, con:
            con.execute(sql.format(cols=", ".join(encoded), marks=", ".join("?" * len(encoded))), list(encoded.values()))

    @staticmethod
    def _encode(key, value):
        if key in _JSON_FIELDS and value is not None:
            return json.dumps(value, default=str)
        if key == "needs_role_review" and value is not None:
            return int(bool(value))
        return value

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict:
        out = dict(row)
        for key in _JSON_FIELDS:
            if out.get(key):
                out[key] = json.loads(out[key])
        if out.get("needs_role_review") is not None:
            out["needs_role_review"] = bool(out["needs_role_review"])
        return out

    def get(self, run_id: str) -> dict | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return self._decode(row) if row else None

    def manifest(self, run_id: str) -> RunManifest | None:
        row = self.get(run_id)
        if row is None:
            return None
        return RunManifest(**{k: row.get(k) for k in RunManifest.__dataclass_fields__ if k not in ("labels", "options")},
                           labels=row.get("labels") or {}, options=row.get("options") or {})

    def list(self, limit: int = 20, user_id: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM runs", []
        if user_id:
            sql, args = sql + " WHERE user_id = ?", [user_id]
        with closing(self._connect()) as con:
            rows = con.execute(sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?", [*args, int(limit)]).fetchall()
        return [self._decode(r) for r in rows]

    def count_for_user(self, user_id: str, since: float | None = None) -> int:
        """Runs a user created, all time or since a UNIX time (quotas count a rolling window)."""
        with closing(self._connect()) as con:
            return int(con.execute("SELECT count(*) FROM runs WHERE user_id = ? AND created_at >= ?", [user_id, since or 0]).fetchone()[0])

    def has_status(self, statuses: tuple[str, ...]) -> bool:
        with closing(self._connect()) as con:
            marks = ", ".join("?" * len(statuses))
            return con.execute(f"SELECT 1 FROM runs WHERE status IN ({marks}) LIMIT 1", list(statuses)).fetchone() is not None

    def unfinished_with_worker(self, statuses: tuple[str, ...]) -> list[dict]:
        """Runs in one of ``statuses`` that a command-line process is recorded as running."""
        with closing(self._connect()) as con:
            marks = ", ".join("?" * len(statuses))
            rows = con.execute(f"SELECT * FROM runs WHERE status IN ({marks}) AND worker IS NOT NULL", list(statuses)).fetchall()
        return [self._decode(r) for r in rows]

    def delete(self, run_id: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
