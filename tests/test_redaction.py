"""Personal data never leaves a run (issue 16, finding 7): SSNs with or without dashes, phones, e-mails and card numbers are
redacted in notifications (real webhook and SMTP servers on loopback), logs, stderr, compute logs, the action log, the
dashboard, Dagster's event log and the stored role samples."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from test_actions import SMTPServer, WebhookServer

from automodel.safety import redact_pii, redact_value


@pytest.mark.parametrize("text, expected", [
    ("SSN 123-45-6789 on file", "SSN [ssn] on file"),
    ("ssn 123 45 6789", "ssn [ssn]"),
    ("customer 123456789 called", "customer [ssn] called"),
    ("social security no. 000123456", "social security no. [ssn]"),  # after the word, any nine digits
    ("zip 981011234 (ZIP+4 without its dash)", "zip 981011234 (ZIP+4 without its dash)"),
    ("postal code: 100011234", "postal code: 100011234"),
    ("000123456 and 123006789 and 123450000", "000123456 and 123006789 and 123450000"),  # no SSN has these shapes
    ("r2=0.123456789, mape 12.123456789", "r2=0.123456789, mape 12.123456789"),
    ("ids run-123456789, A123456789, 1234567890, 20261127T195448-726ce58b", "ids run-123456789, A123456789, 1234567890, 20261127T195448-726ce58b"),
    ("call (555) 123-4567 or +44 20 7946 0958", "call [phone] or [phone]"),
    ("lift +0.012345678", "lift +0.012345678"),
    ("mail ana.lopez@example.org", "mail [email]"),
    ("card 4111 1111 1111 1111", "card [card]"),
])
def test_redaction_rules(text, expected):
    assert redact_pii(text) == expected


def test_a_column_named_for_ssns_is_masked_even_when_its_leading_zeros_were_lost():
    assert redact_value(12345678, column="SSN") == "[ssn]" and redact_value(1234567.0, column="customer_ssn") == "[ssn]"
    assert redact_value("012-34-5678", column="Social Security No") == "[ssn]" and redact_value(98765, column="tax_id") == "[ssn]"
    assert redact_value(12345678, column="classname") == 12345678 and redact_value(12345678, column="visits") == 12345678


def test_cells_shown_as_samples_are_redacted_whatever_their_type():
    assert redact_value(123456789) == "[ssn]" and redact_value(123456789.0) == "[ssn]"
    assert redact_value(5551234567) == "[phone]" and redact_value(5551234567, "numeric") == 5551234567
    assert redact_value("x@example.org", "email") == "[email]" and redact_value(42) == 42 and redact_value(3.5) == 3.5


def _ssn(rng: random.Random) -> int:
    """A number with the shape of an issued SSN: area 100-665 or 667-899, group 01-99, serial 0001-9999 (stored as a number, an
    area below 100 loses its leading zeros and is no longer nine digits: see the README's rule)."""
    area = rng.choice([a for a in range(100, 900) if a != 666])
    return area * 1_000_000 + rng.randrange(1, 100) * 10_000 + rng.randrange(1, 10_000)


def _people(rows: int = 240) -> pd.DataFrame:
    """Penguin measurements with the personal columns a CRM export would carry; the class label is an account manager's e-mail."""
    import palmerpenguins

    frame = palmerpenguins.load_penguins().dropna().head(rows).reset_index(drop=True)
    rng = random.Random(7)
    frame["ssn"] = [_ssn(rng) for _ in range(len(frame))]
    frame["phone"] = [f"(555) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}" for _ in range(len(frame))]
    frame["contact"] = [f"person{i}@example.org" for i in range(len(frame))]
    managers = {"Adelie": "ana.lopez@example.org", "Gentoo": "bo.chen@example.org", "Chinstrap": "cy.diaz@example.org"}
    frame["account_manager"] = frame.pop("species").map(managers)
    return frame


def test_anomaly_alerts_with_row_values_reach_webhook_email_and_action_log_redacted(tmp_path):
    """The anomaly alert carries a few of each flagged row's values: numeric SSNs and phones among them used to go out as is."""
    from sklearn.datasets import load_breast_cancer

    from analyzers import AnomalyAnalyzer
    from analyzers.base import AnalysisContext
    from automodel.ingest.roles import infer_column_meta
    from automodel.outputs.actions import ActionLog, EmailNotifier, WebhookNotifier, execute_actions
    from recipes import ActionContext

    frame = load_breast_cancer(as_frame=True).data.iloc[:, :4]
    rng = random.Random(3)
    frame.insert(0, "member_ssn", [_ssn(rng) for _ in range(len(frame))])
    frame.insert(1, "callback", [rng.randrange(200_000_0000, 999_999_9999) for _ in range(len(frame))])
    metas = infer_column_meta(frame)
    result = AnomalyAnalyzer().run(frame.iloc[:, 2:], AnalysisContext(metas=metas[2:], n_jobs=1))
    context = ActionContext(run_id="r-ssn", file_name="members.csv", user_id="u", analyzer=result.analyzer, task=result.task, target=None,
                            metrics=result.metrics, summary="", predictions=result.row_scores, column_metadata=metas, frame=frame)
    log_path = tmp_path / "action_logs.db"
    with WebhookServer() as webhook, SMTPServer() as smtp:
        outcome = execute_actions(context, ActionLog(log_path), enabled=["anomaly_alert"], recipe_options={"anomaly_alert": {"min_rate": 0.0}},
                                  notifiers=[WebhookNotifier(webhook.url), EmailNotifier("127.0.0.1", smtp.port, "a@example.org", ["b@example.org"])])[0]
        sent = json.dumps(webhook.received) + json.dumps(smtp.messages)
    assert outcome["triggered"] and set(outcome["notified"]) == {"webhook", "email"}
    flagged = [r["row"] for r in outcome["records"]]
    secrets = [str(frame.loc[i, c]) for i in flagged for c in ("member_ssn", "callback")]
    logged = _text_of(log_path)
    assert [s for s in secrets if s in sent or s in logged] == []
    assert "member_ssn" not in sent or "[ssn]" in sent


def _text_of(path: Path) -> str:
    if path.suffix in (".db", ".sqlite") or path.name.endswith(".db"):
        with sqlite3.connect(path) as con:
            tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return "\n".join(json.dumps(con.execute(f'SELECT * FROM "{t}"').fetchall(), default=str) for t in tables)
    return path.read_bytes().decode("utf-8", "replace")


def test_a_run_on_personal_data_leaks_none_of_it(home, cli, tmp_path, monkeypatch):
    frame = _people()
    source = tmp_path / "crm_export.csv"
    frame.to_csv(source, index=False)
    secrets = ([str(v) for v in frame["ssn"].head(60)] + [f"{str(v)[:3]}-{str(v)[3:5]}-{str(v)[5:]}" for v in frame["ssn"].head(60)]
               + list(frame["phone"].head(60)) + list(frame["contact"].head(60)) + ["ana.lopez", "bo.chen", "cy.diaz"])
    with WebhookServer() as webhook, SMTPServer() as smtp:
        for name, value in {"AUTOMODEL_WEBHOOK_URL": webhook.url, "AUTOMODEL_SMTP_HOST": "127.0.0.1", "AUTOMODEL_SMTP_PORT": str(smtp.port),
                            "AUTOMODEL_SMTP_TO": "ops@example.org", "ENABLE_SEMANTIC_MERGE": "0", "AUTOMODEL_SEARCH_BUDGET_S": "3",
                            # every column's role "needs review": a notification goes out, with column names and reasons
                            "AUTOMODEL_RECIPE_OPTIONS": json.dumps({"role_review": {"min_confidence": 1.01}})}.items():
            monkeypatch.setenv(name, value)
        result = cli("run", source, "--target", "account_manager", "--json")
        assert result.code == 0, result.err
        out = result.json
        assert out["status"] == "success"
        delivered = json.dumps(webhook.received) + json.dumps(smtp.messages)
    assert webhook.received and smtp.messages, "a notification went out through both channels"
    places = {"webhook and e-mail": delivered, "stdout and stderr": result.out + result.err}
    for path in home.rglob("*"):
        # The user's own data and results keep their values: the upload copy, the stored frames, the model (it predicts these
        # labels) and the predictions file (labels exactly as the input wrote them). Everything else is shown or sent elsewhere.
        kept = {"users", "models", "output_files"}.intersection(path.relative_to(home).parts[:1]) or (
            path.relative_to(home).parts[0] == "assets" and path.parent.name != "column_metadata")
        if path.is_file() and not kept and not path.name.endswith(("-wal", "-shm")):
            places[str(path.relative_to(home))] = _text_of(path)
    assert any("compute_logs" in p for p in places), "the compute logs are read too"
    assert any(p.startswith("dashboards/") for p in places) and "action_logs.db" in places and "sessions.db" in places
    leaks = {(place, s) for place, text in places.items() for s in secrets if s in text}
    assert leaks == set(), sorted(leaks)[:10]
    dashboard = (home / "dashboards" / f"{out['run_id']}.html").read_text()
    assert "[email]" in dashboard, "the class labels are shown redacted, not dropped"


class _QuotingError(Exception):
    """Builds its text from an attribute, as some library errors do: args cannot be redacted in place."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def __str__(self):
        return f"cannot parse cell {self.cell!r}"


# Built at run time: a traceback prints the source lines of its frames, and those must not hold the values themselves.
_SSN, _OTHER_SSN, _PHONE, _EMAIL = "-".join(["123", "45", "6789"]), "-".join(["987", "65", "4321"]), "(555) 123-" + "4567", "@".join(["ana.lopez", "example.org"])


@pytest.mark.parametrize("raised, kept_class", [
    (lambda: ValueError(f"could not read {_SSN!r} in column ssn"), "ValueError"),
    (lambda: _QuotingError(_EMAIL), "RedactedStepError"),
])
def test_a_failed_stage_and_its_log_lines_reach_dagsters_event_log_redacted(raised, kept_class):
    import dagster as dg

    from automodel_assets.redaction import redacted_errors

    @dg.asset
    @redacted_errors
    def stage(context):
        context.log.info(f"first row: {_OTHER_SSN}, call {_PHONE}")
        try:
            {}[_EMAIL]
        except KeyError:
            raise raised()  # chained to the KeyError, which quotes an e-mail address too
        return 1

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([stage], instance=instance, raise_on_error=False)
    assert not result.success
    records = instance.all_logs(result.run_id)
    recorded = "\n".join(dg.serialize_value(r) for r in records)
    for secret in (_SSN, _OTHER_SSN, _PHONE, _EMAIL):
        assert secret not in recorded
    failure = next(r.dagster_event for r in records if r.dagster_event and r.dagster_event.event_type_value == "STEP_FAILURE")
    error = failure.step_failure_data.error
    while error.cls_name in ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError") and error.cause:
        error = error.cause
    assert error.cls_name == kept_class and ("[ssn]" in error.message or "[email]" in error.message)
    assert "first row: [ssn], call [phone]" in recorded, "the log line is kept, redacted"
