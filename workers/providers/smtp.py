"""Email over SMTP with aiosmtplib (STARTTLS and login when configured)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from orchestrator.settings import Settings
from workers.channels.base import OutboundMessage
from workers.providers.base import Provider, ProviderError

__all__ = ["SmtpProvider"]


class SmtpProvider(Provider):
    name = "smtp"

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout

    def build(self, message: OutboundMessage) -> EmailMessage:
        email = EmailMessage()
        sender = message.sender if "@" in message.sender else self._settings.smtp_from
        email["From"] = (
            formataddr((message.extra.get("from_name", ""), sender))
            if message.extra.get("from_name")
            else sender
        )
        email["To"] = message.to
        email["Subject"] = message.subject or message.text.splitlines()[0]
        # a stable Message-ID lets a receiving server drop a retried duplicate
        email["Message-ID"] = make_msgid(
            idstring=message.id.replace(":", "."), domain="verify-orchestrator"
        )
        email.set_content(message.text)
        # after set_content: it drops every Content-* header already on the message
        email["Content-Language"] = message.locale
        return email

    async def send(self, message: OutboundMessage) -> None:
        s = self._settings
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        try:
            await aiosmtplib.send(
                self.build(message),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=password,
                start_tls=s.smtp_starttls,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ProviderError(f"SMTP delivery failed: {type(exc).__name__}") from exc
