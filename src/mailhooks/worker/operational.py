"""The operational relay, beside the dispatcher: operational events noted by the queue are fanned out to
the accounts' operational webhooks (then sent by the dispatcher like any delivery) and mailed to their
alert addresses, throttled (``core.operational``, ``db.operational_outbox``).

It runs as its own task with its own deadlines: a database error or an SMTP server that is down or hangs
delays alerts, never deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from mailhooks.config import Settings
from mailhooks.core.operational import alert_email
from mailhooks.db.database import Database
from mailhooks.db.operational_outbox import Alert, OperationalOutbox
from mailhooks.sending.mail import SmtpServer, send_mail

log = structlog.get_logger(__name__)

MAIL_RETRY_SECONDS = 60.0  # a claimed alert whose email failed is tried again after this (or the interval)
PURGE_EVERY = 3600.0


class OperationalRelay:
    def __init__(self, db: Database, settings: Settings, wake_dispatcher: Callable[[], None]) -> None:
        self.settings = settings
        self.smtp = SmtpServer.parse(settings.smtp_url) if settings.smtp_url else None
        self.outbox = OperationalOutbox(db, email_enabled=self.smtp is not None)
        self.wake_dispatcher = wake_dispatcher
        self.interval = max(0.1, min(1.0, settings.poll_interval * 2))  # how often new events are looked for
        self._task: asyncio.Task[None] | None = None
        self._mailing: asyncio.Task[None] | None = None
        self._next_purge = time.monotonic() + 60
        self.retry_after = min(MAIL_RETRY_SECONDS, settings.alert_interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailhooks-operational")

    async def stop(self) -> None:
        for task in (self._task, self._mailing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as exc:
                log.warning("operational_relay_failed", error=repr(exc)[:300])
            await asyncio.sleep(self.interval)

    async def _step(self) -> None:
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY
            await self.outbox.purge(time.time() - self.settings.retention_days * 86400)
        if not await self.outbox.has_work(time.time()):
            return
        if await self.outbox.fan_out():
            self.wake_dispatcher()
        if self.smtp is not None and (self._mailing is None or self._mailing.done()):
            # Apart, so that a slow SMTP server does not hold up the fan-out to webhooks.
            self._mailing = asyncio.create_task(self._mail(self.smtp), name="mailhooks-alerts")

    async def _mail(self, smtp: SmtpServer) -> None:
        try:
            alerts = await self.outbox.claim_alerts(self.settings.alert_interval, self.retry_after)
        except Exception as exc:
            log.warning("alert_claim_failed", error=repr(exc)[:300])
            return
        for alert in alerts:
            await self._send(smtp, alert)

    async def _send(self, smtp: SmtpServer, alert: Alert) -> None:
        subject, body = alert_email(alert.events, alert.username)
        try:
            await send_mail(smtp, self.settings.alert_from, alert.address, subject, body)
        except Exception as exc:  # retried after MAIL_RETRY_SECONDS (the claim says so)
            log.warning("alert_email_failed", events=len(alert.events), retry_in=self.retry_after,
                        error=repr(exc)[:300])
            return
        try:
            await self.outbox.mailed(alert.ids)
        except Exception as exc:  # sent, not marked: sent again after the retry delay (at least once)
            log.warning("alert_mark_failed", error=repr(exc)[:300])
