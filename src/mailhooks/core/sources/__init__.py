"""Intake sources: the mail platforms' own event feeds, one small module per provider behind
``base.SourceAdapter``. ``adapter_for`` hands out the one adapter of each provider (per process: the
Mailgun adapter remembers recent signature tokens)."""

from __future__ import annotations

from mailhooks.core.sources.base import Provider, SourceAdapter
from mailhooks.core.sources.kumomta import KumoMtaSource
from mailhooks.core.sources.mailgun import MailgunSource
from mailhooks.core.sources.postal import PostalSource
from mailhooks.core.sources.postmark import PostmarkSource
from mailhooks.core.sources.sendgrid import SendGridSource
from mailhooks.core.sources.ses import SesSource

ADAPTERS: dict[Provider, SourceAdapter] = {
    Provider.MAILGUN: MailgunSource(),
    Provider.SENDGRID: SendGridSource(),
    Provider.POSTMARK: PostmarkSource(),
    Provider.KUMOMTA: KumoMtaSource(),
    Provider.POSTAL: PostalSource(),
    Provider.SES: SesSource(),
}


def adapter_for(provider: Provider) -> SourceAdapter:
    return ADAPTERS[provider]
