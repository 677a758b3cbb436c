"""NotifierResource: where action notifications go (log always; webhook and email when configured)."""

from __future__ import annotations

import dagster as dg

from automodel.outputs.actions import EmailNotifier, LogNotifier, WebhookNotifier
from resources.settings import reveal


class NotifierResource(dg.ConfigurableResource):
    webhook_url: str = ""
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 2
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "automodel@localhost"
    smtp_to: str = ""  # comma-separated addresses
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False  # STARTTLS is used whenever offered; True refuses a server that does not offer it
    smtp_ca_file: str = ""  # a CA bundle to trust besides the system's (a relay with a private certificate)
    smtp_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings) -> "NotifierResource":
        return cls(webhook_url=settings.webhook_url, smtp_host=settings.smtp_host, smtp_port=settings.smtp_port, smtp_from=settings.smtp_from,
                   smtp_to=settings.smtp_to, smtp_username=settings.smtp_username, smtp_password=settings.smtp_password,
                   smtp_starttls=settings.smtp_starttls, smtp_ca_file=getattr(settings, "smtp_ca_file", ""))

    def notifiers(self) -> list:
        out: list = [LogNotifier()]
        if self.webhook_url:
            out.append(WebhookNotifier(self.webhook_url, timeout_s=self.webhook_timeout_s, retries=self.webhook_retries))
        if self.smtp_host:
            recipients = [a.strip() for a in self.smtp_to.split(",") if a.strip()]
            out.append(EmailNotifier(self.smtp_host, self.smtp_port, self.smtp_from, recipients, timeout_s=self.smtp_timeout_s,
                                     username=self.smtp_username, password=reveal(self.smtp_password), starttls=self.smtp_starttls,
                                     ca_file=self.smtp_ca_file))
        return out

    @property
    def channels(self) -> list[str]:
        return [n.channel for n in self.notifiers()]
