"""Sending one alert email through the SMTP server of ``MAILHOOKS_SMTP_URL`` (aiosmtplib).

``smtp://[user:password@]host[:port]`` (port 25; STARTTLS when the server offers it) or
``smtps://…`` (TLS from the start, port 465). Every send has a deadline (``SEND_TIMEOUT``): a server
that is down or hangs costs the alert a later try (the caller's), never a delivery.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

SEND_TIMEOUT = 15.0  # seconds for one whole SMTP conversation


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("MAILHOOKS_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
        tls = parts.scheme == "smtps"
        return cls(parts.hostname, parts.port or (465 if tls else 25), tls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


async def send_mail(server: SmtpServer, sender: str, to: str, subject: str, body: str) -> None:
    """Send one plain-text email; raises on any failure (including the deadline)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    async with asyncio.timeout(SEND_TIMEOUT):
        await aiosmtplib.send(
            message, hostname=server.host, port=server.port, username=server.username, password=server.password,
            use_tls=server.tls, start_tls=None if not server.tls else False, timeout=SEND_TIMEOUT)
