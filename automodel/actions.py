"""execute_actions: run the enabled recipes, notify, and log everything to the action log.

A notification is sent once per (run, recipe, message): rematerializing a run does not
repeat it unless ``force`` is set.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import urllib.request
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

from automodel.safety import redact_pii
from recipes import ActionContext, available_recipes


class ActionLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.execute("""CREATE TABLE IF NOT EXISTS actions (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, recipe TEXT,
                triggered INTEGER, message TEXT, records TEXT, notified TEXT, dedupe_key TEXT, created_at REAL)""")
            con.execute("CREATE INDEX IF NOT EXISTS actions_dedupe ON actions (dedupe_key)")

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def already_notified(self, dedupe_key: str) -> bool:
        with closing(self._connect()) as con:
            return con.execute("SELECT 1 FROM actions WHERE dedupe_key = ? AND notified != '[]' LIMIT 1", [dedupe_key]).fetchone() is not None

    def record(self, run_id: str, outcome: dict, notified: list[str], dedupe_key: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO actions (run_id, recipe, triggered, message, records, notified, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                run_id, outcome["recipe"], int(outcome["triggered"]), outcome["message"], json.dumps(outcome["records"], default=str),
                json.dumps(notified), dedupe_key, time.time()])

    def for_run(self, run_id: str) -> list[dict]:
        with closing(self._connect()) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM actions WHERE run_id = ? ORDER BY id", [run_id]).fetchall()]


def post_webhook(url: str, payload: dict, timeout: float = 5.0, retries: int = 2) -> None:
    body = json.dumps(payload, default=str).encode()
    last = None
    for attempt in range(retries + 1):
        try:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if 200 <= response.status < 300:
                    return
                last = RuntimeError(f"HTTP {response.status}")
        except OSError as exc:
            last = exc
        time.sleep(0.2 * (2 ** attempt))
    raise RuntimeError(f"webhook {url} failed after {retries + 1} attempts: {last}")


def execute_actions(context: ActionContext, log: ActionLog, enabled: list[str] | None = None, webhook_url: str | None = None,
                    recipe_options: dict | None = None, force: bool = False) -> list[dict]:
    recipes = available_recipes()
    names = enabled if enabled is not None else list(recipes)
    results = []
    for name in names:
        if name not in recipes:
            results.append({"recipe": name, "triggered": False, "message": f"unknown recipe {name!r}", "records": [], "notified": []})
            continue
        recipe = recipes[name](**(recipe_options or {}).get(name, {}))
        outcome = asdict(recipe.execute(context))
        outcome["message"] = redact_pii(outcome["message"])
        notify = outcome.pop("notify")
        dedupe_key = hashlib.sha256(f"{context.run_id}|{name}|{outcome['message']}".encode()).hexdigest()
        notified = []
        if notify and outcome["triggered"]:
            if not force and log.already_notified(dedupe_key):
                outcome["message"] += " (notification already sent for this run)"
            else:
                notified.append("log")
                if webhook_url:
                    try:
                        post_webhook(webhook_url, {"run_id": context.run_id, "file": context.file_name, **outcome})
                        notified.append("webhook")
                    except RuntimeError as exc:
                        outcome["message"] += f" (webhook failed: {exc})"
        log.record(context.run_id, outcome, notified, dedupe_key)
        results.append({**outcome, "notified": notified})
    return results
