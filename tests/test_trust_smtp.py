"""SMTP notifications use STARTTLS when the server offers it and never send a login unencrypted (issue 16, finding 8).

A real SMTP server on 127.0.0.1 that can offer STARTTLS with a self-signed certificate made for this test run."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socketserver
import ssl
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from conftest import LoopbackServer

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


class TLSRelay(LoopbackServer):
    """EHLO, STARTTLS (when given a certificate), AUTH PLAIN, MAIL, RCPT, DATA, QUIT; records what arrived and whether it was encrypted."""

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
                encrypted = False
                self.reply("220 127.0.0.1 test relay ready")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    command = line.decode().strip()
                    verb = command.split(" ", 1)[0].upper()
                    server.commands.append(verb)
                    if verb == "EHLO":
                        extensions = ["AUTH PLAIN"] + (["STARTTLS"] if tls is not None and not encrypted else [])
                        lines = ["127.0.0.1", *extensions]
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
                    elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while (data := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(data)
                        mail = message_from_bytes(b"".join(lines), policy=default_policy)
                        server.messages.append({"subject": str(mail["Subject"]), "body": mail.get_content(), "encrypted": encrypted})
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        super().__init__(Handler, Server)


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


PAYLOAD = {"message": "3 anomalies in orders.csv", "run_id": "r1", "file": "orders.csv", "recipe": "anomaly_alert", "severity": "warning"}


def test_starttls_is_used_when_offered_and_the_login_travels_encrypted(certificate):
    cert, key = certificate
    with TLSRelay(cert, key) as relay:
        EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], username="mailer", password="s3cret",
                      ca_file=str(cert)).send("anomalies", PAYLOAD)
    assert relay.commands[:2] == ["EHLO", "STARTTLS"], "the upgrade happens before anything else is said"
    assert relay.logins == [{"user": "mailer", "password": "s3cret", "encrypted": True}]
    assert [m["encrypted"] for m in relay.messages] == [True] and "3 anomalies" in relay.messages[0]["body"]


def test_without_starttls_on_offer_a_login_is_refused_and_nothing_is_sent(certificate):
    with TLSRelay() as relay:  # a relay that offers no STARTTLS
        notifier = EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], username="mailer", password="s3cret")
        with pytest.raises(NotificationError, match="never sent unencrypted"):
            notifier.send("anomalies", PAYLOAD)
    assert relay.logins == [] and relay.messages == [] and "AUTH" not in relay.commands


def test_a_relay_without_starttls_gets_mail_without_login_unless_tls_is_required():
    with TLSRelay() as relay:
        EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"]).send("anomalies", PAYLOAD)
        with pytest.raises(NotificationError, match="does not offer STARTTLS"):
            EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], starttls=True).send("anomalies", PAYLOAD)
    assert [m["encrypted"] for m in relay.messages] == [False]


def test_a_certificate_that_does_not_verify_stops_the_send(certificate):
    cert, key = certificate
    # The client does not trust the relay's self-signed certificate.
    with TLSRelay(cert, key) as relay, pytest.raises(NotificationError, match="SSL|certificate"):
        EmailNotifier("127.0.0.1", relay.port, "a@example.org", ["ops@example.org"], username="mailer", password="s3cret",
                      retries=0).send("anomalies", PAYLOAD)
    assert relay.logins == [] and relay.messages == []


def test_settings_from_the_environment_reach_the_email_channel(certificate, monkeypatch, home):
    cert, key = certificate
    with TLSRelay(cert, key) as relay:
        for name, value in {"AUTOMODEL_SMTP_HOST": "127.0.0.1", "AUTOMODEL_SMTP_PORT": str(relay.port), "AUTOMODEL_SMTP_TO": "ops@example.org",
                            "AUTOMODEL_SMTP_USERNAME": "mailer", "AUTOMODEL_SMTP_PASSWORD": "s3cret", "AUTOMODEL_SMTP_CA_FILE": str(cert)}.items():
            monkeypatch.setenv(name, value)
        email = next(n for n in NotifierResource.from_settings(AutomodelSettings.from_env()).notifiers() if n.channel == "email")
        email.send("anomalies", PAYLOAD)
    assert relay.logins[0]["encrypted"] and relay.messages[0]["encrypted"]
