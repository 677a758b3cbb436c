"""execute_actions: run the enabled recipes, notify through the configured channels, and log everything.

Channels: ``log`` (always; Python logging plus the action log), ``webhook`` (HTTP POST of JSON) and
``email`` (SMTP). A notification is delivered once per (run, recipe, message) and channel:
rematerializing a run does not repeat it unless ``force`` is set, while a channel that failed
before is tried again. Every string that leaves the machine goes through ``redact_pii``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from automodel.errors import AutomodelError
from automodel.safety import redact_pii, redact_value
from recipes import ActionContext, ActionOutcome, available_recipes

logger = logging.getLogger("automodel.actions")


class NotificationError(RuntimeError):
    """A channel could not deliver a notification."""


class ActionLog:
    """The action log (SQLite): what each recipe did, which channels delivered, and tasks for people."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.execute("""CREATE TABLE IF NOT EXISTS actions (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, recipe TEXT,
                triggered INTEGER, message TEXT, records TEXT, notified TEXT, dedupe_key TEXT, created_at REAL)""")
            con.execute("CREATE INDEX IF NOT EXISTS actions_dedupe ON actions (dedupe_key)")
            con.execute("""CREATE TABLE IF NOT EXISTS deliveries (dedupe_key TEXT, channel TEXT, run_id TEXT, recipe TEXT,
                delivered_at REAL, PRIMARY KEY (dedupe_key, channel))""")
            con.execute("""CREATE TABLE IF NOT EXISTS tasks (run_id TEXT, recipe TEXT, kind TEXT, task_key TEXT, payload TEXT,
                status TEXT, created_at REAL, updated_at REAL, PRIMARY KEY (run_id, recipe, kind, task_key))""")

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=30000")
        return con

    def already_notified(self, dedupe_key: str, channel: str | None = None) -> bool:
        with closing(self._connect()) as con:
            if channel is None:
                sql, args = "SELECT 1 FROM deliveries WHERE dedupe_key = ? LIMIT 1", [dedupe_key]
            else:
                sql, args = "SELECT 1 FROM deliveries WHERE dedupe_key = ? AND channel = ? LIMIT 1", [dedupe_key, channel]
            return con.execute(sql, args).fetchone() is not None

    def mark_delivered(self, dedupe_key: str, channel: str, run_id: str, recipe: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?)", [dedupe_key, channel, run_id, recipe, time.time()])

    def record(self, run_id: str, outcome: dict, notified: list[str], dedupe_key: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO actions (run_id, recipe, triggered, message, records, notified, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
                run_id, outcome["recipe"], int(outcome["triggered"]), outcome["message"], json.dumps(outcome["records"], default=str),
                json.dumps(notified), dedupe_key, time.time()])

    def upsert_tasks(self, run_id: str, recipe: str, kind: str, tasks: list[dict]) -> None:
        """Tasks keep their status across rematerializations; their payload is refreshed."""
        now = time.time()
        with closing(self._connect()) as con, con:
            for task in tasks:
                con.execute("""INSERT INTO tasks VALUES (?, ?, ?, ?, ?, 'open', ?, ?)
                    ON CONFLICT (run_id, recipe, kind, task_key) DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at""",
                            [run_id, recipe, kind, str(task["key"]), json.dumps(task, default=str), now, now])

    def tasks(self, run_id: str | None = None, kind: str | None = None, status: str | None = None) -> list[dict]:
        clauses, args = [], []
        for column, value in (("run_id", run_id), ("kind", kind), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with closing(self._connect()) as con:
            con.row_factory = sqlite3.Row
            rows = con.execute(f"SELECT * FROM tasks{where} ORDER BY created_at, task_key", args).fetchall()
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]

    def set_task_status(self, run_id: str, recipe: str, kind: str, task_key: str, status: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("UPDATE tasks SET status = ?, updated_at = ? WHERE run_id = ? AND recipe = ? AND kind = ? AND task_key = ?",
                        [status, time.time(), run_id, recipe, kind, task_key])

    def for_run(self, run_id: str) -> list[dict]:
        with closing(self._connect()) as con:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute("SELECT * FROM actions WHERE run_id = ? ORDER BY id", [run_id]).fetchall()]


# ---- notifiers ------------------------------------------------------------------------------------

class Notifier(Protocol):
    channel: str

    def send(self, subject: str, payload: dict) -> None:
        """Deliver or raise NotificationError."""


@dataclass
class LogNotifier:
    """Writes the notification to Python logging (the Dagster run log when run as an asset)."""

    channel: str = "log"
    level: int = logging.WARNING

    def send(self, subject: str, payload: dict) -> None:
        # One readable line; the details are in the run's JSON and metadata (and this log at debug level).
        logger.log(self.level, "%s", subject)
        logger.debug("%s | %s", subject, json.dumps(payload, default=str)[:2000])


def post_webhook(url: str, payload: dict, timeout: float = 5.0, retries: int = 2) -> None:
    """POST ``payload`` as JSON; retry on connection errors and 5xx/429 with backoff, never on other 4xx."""
    body = json.dumps(payload, default=str).encode()
    last = "no attempt made"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(0.2 * (2 ** (attempt - 1)))
        try:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", "User-Agent": "automodel"}, method="POST")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            last = f"{type(getattr(exc, 'reason', exc)).__name__}: {getattr(exc, 'reason', exc)}"
        except ValueError as exc:  # not an http(s) URL: retrying cannot help
            raise NotificationError(f"webhook URL {url!r} is not valid ({exc}); set AUTOMODEL_WEBHOOK_URL to an http(s) URL") from exc
    raise NotificationError(f"webhook {url} failed after {attempt + 1} attempt(s): {last}")


@dataclass
class WebhookNotifier:
    url: str
    timeout_s: float = 5.0
    retries: int = 2
    channel: str = "webhook"

    def send(self, subject: str, payload: dict) -> None:
        post_webhook(self.url, {"subject": subject, **payload}, timeout=self.timeout_s, retries=self.retries)


@dataclass
class EmailNotifier:
    """Plain-text email over SMTP. STARTTLS whenever the server offers it (``starttls=True`` requires it); a login
    is never sent over an unencrypted connection. ``ca_file`` adds a CA to trust (a relay with a private certificate)."""

    host: str
    port: int = 25
    sender: str = "automodel@localhost"
    recipients: list[str] = field(default_factory=list)
    timeout_s: float = 10.0
    username: str = ""
    password: str = ""
    starttls: bool = False
    retries: int = 1
    ca_file: str = ""
    channel: str = "email"

    def _secure(self, smtp: smtplib.SMTP) -> bool:
        """Upgrade to TLS when offered (or refuse when required and not offered); whether the connection is encrypted."""
        import ssl

        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file or None))
            smtp.ehlo()
            return True
        if self.starttls:
            raise NotificationError(f"the SMTP server {self.host}:{self.port} does not offer STARTTLS, which AUTOMODEL_SMTP_STARTTLS requires")
        return False

    def send(self, subject: str, payload: dict) -> None:
        if not self.recipients:
            raise NotificationError("no email recipients are configured (AUTOMODEL_SMTP_TO)")
        message = EmailMessage()
        message["Subject"] = subject[:200]
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(_email_body(payload))
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.2 * attempt)
            try:
                with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                    encrypted = self._secure(smtp)
                    if self.username:
                        if not encrypted:
                            raise NotificationError(f"the SMTP server {self.host}:{self.port} offers no STARTTLS, and the login "
                                                    f"(AUTOMODEL_SMTP_USERNAME) is never sent unencrypted; enable STARTTLS on the relay")
                        smtp.login(self.username, self.password)
                    smtp.send_message(message)
                return
            except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError: a certificate that does not verify
                last = f"{type(exc).__name__}: {exc}"
        raise NotificationError(f"email via {self.host}:{self.port} failed after {self.retries + 1} attempt(s): {last}")


def _email_body(payload: dict) -> str:
    lines = [payload.get("message", ""), "", f"run: {payload.get('run_id')}", f"file: {payload.get('file')}",
             f"recipe: {payload.get('recipe')} (severity {payload.get('severity')})"]
    if payload.get("records"):
        lines += ["", "details:"] + [f"  {json.dumps(r, default=str)}" for r in payload["records"][:20]]
    if payload.get("summary"):
        lines += ["", "summary:", payload["summary"]]
    return "\n".join(lines) + "\n"


def _redacted(value: Any, column: str | None = None) -> Any:
    if isinstance(value, str):
        return redact_value(value, column=column) if column else redact_pii(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # an SSN or phone column read as numbers
        return redact_value(value, column=column)
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


# ---- execute_actions ------------------------------------------------------------------------------

def execute_actions(context: ActionContext, log: ActionLog, enabled: list[str] | None = None, webhook_url: str | None = None,
                    recipe_options: dict | None = None, force: bool = False, notifiers: list | None = None) -> list[dict]:
    """Run each enabled recipe (all found when ``enabled`` is None), notify and log. Returns one dict per recipe:
    recipe, triggered, message, severity, records, notified (channels delivered now), skipped (already delivered),
    failed ({channel: why}) and tasks (how many work items were recorded)."""
    if notifiers is None:
        notifiers = [LogNotifier()] + ([WebhookNotifier(webhook_url)] if webhook_url else [])
    recipes = available_recipes()
    names = enabled if enabled is not None else list(recipes)
    results = []
    for name in names:
        if name not in recipes:
            results.append({"recipe": name, "triggered": False, "message": f"unknown recipe {name!r}", "severity": "info", "records": [],
                            "notified": [], "skipped": [], "failed": {}, "tasks": 0})
            continue
        options = dict((recipe_options or {}).get(name, {}))
        act_on_untrusted = bool(options.pop("act_on_untrusted", False))
        try:
            recipe = recipes[name](**options)
        except TypeError as exc:
            raise AutomodelError(f"Options {options} do not fit recipe {name!r} ({exc}); fix AUTOMODEL_RECIPE_OPTIONS.") from exc
        held_back = getattr(recipe, "needs_trusted_model", False) and not context.trusted and not act_on_untrusted
        outcome = asdict(_held_back(name, context) if held_back else recipe.execute(context))
        outcome["message"] = redact_pii(outcome["message"])
        outcome["records"] = _redacted(outcome["records"])
        notify, tasks, task_kind = outcome.pop("notify"), _redacted(outcome.pop("tasks")), outcome.pop("task_kind")
        if tasks:
            log.upsert_tasks(context.run_id, name, task_kind or name, tasks)
        dedupe_key = hashlib.sha256(f"{context.run_id}|{name}|{outcome['message']}".encode()).hexdigest()
        notified, skipped, failed = [], [], {}
        if notify and outcome["triggered"]:
            subject = f"[automodel] {name} ({outcome['severity']}): {outcome['message']}"
            payload = _redacted({"run_id": context.run_id, "file": context.file_name, "user": context.user_id, "analyzer": context.analyzer,
                                 "task": context.task, "target": context.target, **outcome, "summary": context.summary or ""})
            for notifier in notifiers:
                if not force and log.already_notified(dedupe_key, notifier.channel):
                    skipped.append(notifier.channel)
                    continue
                try:
                    notifier.send(subject, payload)
                except NotificationError as exc:
                    failed[notifier.channel] = redact_pii(str(exc))
                    continue
                log.mark_delivered(dedupe_key, notifier.channel, context.run_id, name)
                notified.append(notifier.channel)
            if skipped and not notified:
                outcome["message"] += " (notification already sent for this run)"
            for channel, why in failed.items():
                outcome["message"] += f" ({channel} failed: {why})"
        log.record(context.run_id, outcome, notified, dedupe_key)
        results.append({**outcome, "notified": notified, "skipped": skipped, "failed": failed, "tasks": len(tasks), "held_back": held_back})
    return results


def _held_back(name: str, context: ActionContext) -> ActionOutcome:
    """The outcome of a recipe not run because the model it would act on is not trusted."""
    metric = next((f"{k} {context.metrics[k]:.3f}" for k in ("r2", "f1", "silhouette") if isinstance(context.metrics.get(k), (int, float))), "")
    model = ", ".join(p for p in (context.model_name, metric) if p)
    return ActionOutcome(name, False, f"held back: the model{f' ({model})' if model else ''} is not trusted, so {name} did not act on its "
                                      f"predictions; set AUTOMODEL_RECIPE_OPTIONS={{\"{name}\": {{\"act_on_untrusted\": true}}}} to act anyway")
