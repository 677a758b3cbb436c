"""Quotas by tier (checked before any work) and sanitisation: unsafe user ids and file names, PII redaction."""

from __future__ import annotations

import json

import pytest

from automodel.errors import AutomodelError, QuotaExceededError, UnsafePathError
from automodel.quotas import Tier, check_quota, parse_tiers
from automodel.safety import redact_pii, safe_file_name, safe_user_id

FREE = Tier("free", 20, 1.0)


def test_tiers_from_json_and_their_mistakes():
    plan = parse_tiers(json.dumps({"tiers": {"pro": {"max_requests": 500, "max_gb": 50}}, "users": {"alice": "pro"}}), FREE)
    assert plan.tier_for("alice") == Tier("pro", 500, 50.0) and plan.tier_for("bob") == FREE and plan.tier_for(None) == FREE
    assert parse_tiers("", FREE).tier_for("alice") == FREE
    assert parse_tiers({"tiers": {"team": {"max_requests": 5, "max_gb": 2}}, "default": "team"}, FREE).tier_for("x").name == "team"
    for bad, fragment in [("{not json", "not valid JSON"), ('{"tiers": {"pro": {"max_gb": 1}}}', "needs numeric max_requests"),
                          ('{"users": {"alice": "gold"}}', "names tier 'gold'"), ("[1, 2]", "must be a JSON object")]:
        with pytest.raises(AutomodelError, match=fragment):
            parse_tiers(bad, FREE)


def test_quota_messages_name_the_limit_and_what_to_do():
    with pytest.raises(QuotaExceededError) as runs:
        check_quota(Tier("free", 3, 1.0), 3, 0, 10)
    assert "free tier allows 3 runs" in str(runs.value) and "larger tier" in str(runs.value)
    with pytest.raises(QuotaExceededError) as size:
        check_quota(Tier("free", 20, 0.001), 0, 600_000, 600_000)
    message = str(size.value)
    assert "0.001 GB storage limit" in message and "0.6 MB" in message and "remove old uploads" in message
    check_quota(Tier("pro", 500, 50), 499, 10**9, 10**9)  # within limits: no error


def test_file_over_quota_is_refused_before_any_work(cli, home, tmp_path, monkeypatch, penguins):
    source = tmp_path / "penguins.csv"
    penguins.to_csv(source, index=False)
    monkeypatch.setenv("MAX_GB_FREE", "0.00001")  # about 10 KB: the 13 KB penguins file does not fit
    refused = cli("run", source, "--user", "carol", "--json")
    assert refused.code == 2 and "storage limit" in refused.err and refused.err.count("\n") == 1
    assert not (home / "users" / "carol").exists() and not (home / "assets").exists()  # nothing staged, nothing run
    from automodel_assets.runs import create_run, get_instance
    from resources.settings import AutomodelSettings

    monkeypatch.setenv("AUTOMODEL_QUOTA_TIERS", json.dumps({"tiers": {"pro": {"max_requests": 2, "max_gb": 1}}, "users": {"carol": "pro"}}))
    settings = AutomodelSettings.from_env()
    instance = get_instance(settings.layout)
    create_run(settings, instance, str(source), user_id="carol", add_partition=False)
    create_run(settings, instance, str(source), user_id="carol", add_partition=False)
    with pytest.raises(QuotaExceededError, match="pro tier allows 2 runs"):
        create_run(settings, instance, str(source), user_id="carol", add_partition=False)
    with pytest.raises(QuotaExceededError, match="free tier"):
        create_run(settings, instance, str(source), user_id="dave", add_partition=False)  # dave is still on the tiny free tier


@pytest.mark.parametrize("user_id", ["../etc", "a/b", ".hidden", "", "x" * 65, "bob\x00", "..", "c:\\temp"])
def test_unsafe_user_ids_are_rejected(user_id):
    with pytest.raises(UnsafePathError):
        safe_user_id(user_id)


@pytest.mark.parametrize("name", ["../secret.csv", "/etc/passwd", "a/b.csv", "..\\win.csv", ".env", "x\x00.csv", "", "..", "."])
def test_unsafe_file_names_are_rejected(name):
    with pytest.raises(UnsafePathError):
        safe_file_name(name)


def test_safe_names_pass_unchanged():
    assert safe_user_id("alice@example.com") == "alice@example.com" and safe_user_id("team_7.b-2") == "team_7.b-2"
    assert safe_file_name("penguins (1).csv") == "penguins (1).csv"


def test_cli_rejects_escaping_users_and_keys(cli, home, tmp_path, penguins):
    source = tmp_path / "p.csv"
    penguins.head(30).to_csv(source, index=False)
    for user in ("../../etc", "a/b"):
        result = cli("run", source, "--user", user)
        assert result.code == 2 and "is not allowed" in result.err
    staged = list((home / "users").rglob("*.csv")) if (home / "users").exists() else []
    assert staged == []


def test_redaction_of_emails_phones_ssns_and_cards():
    text = ("Contact jane.doe@example.org or +1 (919) 555-0143, SSN 123-45-6789, card 4111 1111 1111 1111; "
            "order 1234567890123 and zip 27705 stay.")
    redacted = redact_pii(text)
    assert redacted == "Contact [email] or [phone], SSN [ssn], card [card]; order 1234567890123 and zip 27705 stay."
    assert redact_pii("") == "" and redact_pii("no personal data, 42 rows") == "no personal data, 42 rows"


def test_logs_and_cli_errors_are_redacted(cli, home, tmp_path):
    import io
    import logging

    from automodel.safety import install_log_redaction

    buffer = io.StringIO()
    logger = logging.getLogger("automodel.test_redaction")
    logger.addHandler(logging.StreamHandler(buffer))
    logger.setLevel(logging.INFO)
    install_log_redaction("automodel.test_redaction")
    logger.info("loaded %s rows for %s (call %s)", 344, "jane.doe@example.org", "919-555-0143")
    assert buffer.getvalue().strip() == "loaded 344 rows for [email] (call [phone])"
    result = cli("run", tmp_path / "jane.doe@example.org.csv")
    assert result.code == 2 and "jane.doe@example.org" not in result.err and "[email]" in result.err
