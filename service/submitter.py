"""Runs accepted over HTTP, put on the Dagster run queue by one background thread.

``POST /runs`` answers as soon as the run is recorded; the submission (adding the partition, bringing the lake
index up to date as the command line does, creating the Dagster run and queueing it) happens here, off the
request. Each accepted run is written down first (``pending`` in the service's database), so a service that
stops between the answer and the submission submits it when it starts again; nothing accepted is lost.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from automodel.errors import AutomodelError
from service import launch
from service.tokens import SERVICE_DB

logger = logging.getLogger("automodel.service")


class PendingStore:
    def __init__(self, home: Path):
        self.path = Path(home) / SERVICE_DB
        with closing(self._connect()) as con, con:
            con.execute("CREATE TABLE IF NOT EXISTS pending (run_id TEXT PRIMARY KEY, from_asset TEXT, accepted_at REAL NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def add(self, run_id: str, from_asset: str | None) -> None:
        with closing(self._connect()) as con, con:
            con.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", [run_id, from_asset, time.time()])

    def remove(self, run_id: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM pending WHERE run_id = ?", [run_id])

    def all(self) -> list[tuple[str, str | None]]:
        with closing(self._connect()) as con:
            return [(r[0], r[1]) for r in con.execute("SELECT run_id, from_asset FROM pending ORDER BY accepted_at")]

    def ids(self) -> set[str]:
        return {run_id for run_id, _ in self.all()}


class Submitter:
    def __init__(self, settings, instance_getter):
        self.settings = settings
        self.instance_getter = instance_getter
        self.pending = PendingStore(settings.layout.home)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._waiting: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None:
            return
        for run_id, from_asset in self.pending.all():  # accepted before the service last stopped
            self._enqueue(run_id, from_asset)
        self._thread = threading.Thread(target=self._loop, name="run-submitter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, run_id: str, from_asset: str | None = None) -> None:
        self.pending.add(run_id, from_asset)
        self._enqueue(run_id, from_asset)

    def _enqueue(self, run_id: str, from_asset: str | None) -> None:
        with self._lock:
            self._waiting.add(run_id)
        self._queue.put((run_id, from_asset))

    def is_waiting(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._waiting

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            run_id, from_asset = item
            try:
                launch.submit_run(self.settings, self.instance_getter(), run_id, from_asset)
            except AutomodelError as exc:
                launch.mark_failed(self.settings, run_id, str(exc))
            except Exception as exc:  # one sentence in the session; the traceback in the service's log
                logger.exception("submitting run %s failed", run_id)
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                launch.mark_failed(self.settings, run_id, f"The run could not be queued ({type(exc).__name__}: {first}); try again.")
            finally:
                self.pending.remove(run_id)
                with self._lock:
                    self._waiting.discard(run_id)
