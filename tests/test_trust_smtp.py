"""SMTP notifications use STARTTLS when the server offers it and never send a login unencrypted (issue 16, finding 8).

A real SMTP server on 127.0.0.1 that can offer STARTTLS with a self-signed certificate made for this test run."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from test_actions import SMTPServer

from automodel.outputs.actions import EmailNotifier, NotificationError
from resources.notifier import NotifierResource
from resources.settings import AutomodelSettings


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (cryptography, already in the lock)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "automodel test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "relay.pem", folder / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


PAYLOAD = {"message": "3 anomalies in orders.csv", "run_id": "r1", "file": "orders.csv", "recipe": "anomaly_alert", "severity": "warning"}


def test_starttls_is_used_when_offered_and_the_login_travels_encrypted(certificate):
    cert, key = certificate
    with SMTPServer(cert, key) as relay:
        EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], username="mailer", password="s3cret",
                      ca_file=str(cert)).send("anomalies", PAYLOAD)
    assert relay.commands[:2] == ["EHLO", "STARTTLS"], "the upgrade happens before anything else is said"
    assert relay.logins == [{"user": "mailer", "password": "s3cret", "encrypted": True}]
    assert [m["encrypted"] for m in relay.messages] == [True] and "3 anomalies" in relay.messages[0]["body"]


def test_without_starttls_on_offer_a_login_is_refused_and_nothing_is_sent(certificate):
    with SMTPServer() as relay:  # a relay that offers no STARTTLS
        notifier = EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], username="mailer", password="s3cret")
        with pytest.raises(NotificationError, match="never sent unencrypted"):
            notifier.send("anomalies", PAYLOAD)
    assert relay.logins == [] and relay.messages == [] and "AUTH" not in relay.commands


def test_a_relay_without_starttls_gets_mail_without_login_unless_tls_is_required():
    with SMTPServer() as relay:
        EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"]).send("anomalies", PAYLOAD)
        with pytest.raises(NotificationError, match="does not offer STARTTLS"):
            EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], starttls=True).send("anomalies", PAYLOAD)
    assert [m["encrypted"] for m in relay.messages] == [False]


def test_a_certificate_that_does_not_verify_stops_the_send(certificate):
    cert, key = certificate
    # The client does not trust the relay's self-signed certificate.
    with SMTPServer(cert, key) as relay, pytest.raises(NotificationError, match="SSL|certificate"):
        EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], username="mailer", password="s3cret",
                      retries=0).send("anomalies", PAYLOAD)
    assert relay.logins == [] and relay.messages == []


def test_settings_from_the_environment_reach_the_email_channel(certificate, monkeypatch, home):
    cert, key = certificate
    with SMTPServer(cert, key) as relay:
        for name, value in {"AUTOMODEL_SMTP_HOST": "127.0.0.1", "AUTOMODEL_SMTP_PORT": str(relay.port), "AUTOMODEL_SMTP_TO": "ops@example.org",
                            "AUTOMODEL_SMTP_USERNAME": "mailer", "AUTOMODEL_SMTP_PASSWORD": "s3cret", "AUTOMODEL_SMTP_CA_FILE": str(cert)}.items():
            monkeypatch.setenv(name, value)
        email = next(n for n in NotifierResource.from_settings(AutomodelSettings.from_env()).notifiers() if n.channel == "email")
        email.send("anomalies", PAYLOAD)
    assert relay.logins[0]["encrypted"] and relay.messages[0]["encrypted"]
