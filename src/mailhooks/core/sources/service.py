"""Sources as their owners manage them, and the intake of one provider request.

``receive`` is the whole path of a provider's POST: find the source, let its provider's adapter verify
and parse the request, then hand the items to ``core.events.Intake`` on the source's account and
domain, so fan-out, deliveries and limits are exactly those of ``POST /v1/events``. All items of one
request are stored in one transaction (a SendGrid batch is all or nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mailhooks.core.accounts import find_domain
from mailhooks.core.errors import NotFound, ValidationFailed
from mailhooks.core.events import Intake
from mailhooks.core.models import Account
from mailhooks.core.ports import DomainLookup
from mailhooks.core.sources import adapter_for
from mailhooks.core.sources.base import Outside, Provider, Rejection, RequestParts, SourceRejected


@dataclass(frozen=True, slots=True)
class Source:
    id: int
    guid: str
    account_id: int
    account_guid: str  # the key of the account's rate budgets
    domain_id: int
    domain: str
    provider: Provider
    config: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class Received:
    ids: list[str]
    new: int
    ignored: int


GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SourceNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Source not found", what="source")


class SourceStorage(DomainLookup, Protocol):
    async def add_source(self, account_id: int, domain_id: int, provider: Provider,
                         config: Mapping[str, Any]) -> Source: ...

    async def list_sources(self, account_id: int) -> list[Source]: ...

    async def get_source(self, guid: str) -> Source | None:
        """Whoever owns it: the intake URL is the only thing a provider knows."""
        ...

    async def delete_source(self, account_id: int, guid: str) -> bool: ...

    async def get_account(self, account_id: int) -> Account | None: ...


def parse_provider(value: object) -> Provider:
    try:
        return Provider(str(value)) if isinstance(value, str) else Provider("")
    except ValueError:
        raise ValidationFailed.field("provider", "The provider must be one of: "
                                     + ", ".join(p.value for p in Provider) + ".") from None


def describe(source: Source) -> dict[str, Any]:
    """A source as read back: never a secret."""
    return {"guid": source.guid, "provider": source.provider.value, "domain": source.domain,
            "created_at": source.created_at, "config": adapter_for(source.provider).public(source.config),
            "intake_path": intake_path(source.guid)}


def intake_path(guid: str) -> str:
    return f"/v1/sources/{guid}/events"


async def _nothing_outside(url: str) -> bytes:
    raise SourceRejected(Rejection.SIGNATURE, "This process cannot fetch provider certificates.")


class Sources:
    def __init__(self, storage: SourceStorage, intake: Intake, outside: Outside | None = None) -> None:
        self.storage = storage
        self.intake = intake
        self.outside = outside or Outside(_nothing_outside)

    async def create(self, account: Account, given: Mapping[str, Any], base_url: str) -> dict[str, Any]:
        """Make a source; the answer has what the operator enters at the provider (shown this once)."""
        provider = parse_provider(given.get("provider"))
        domain_name = given.get("domain")
        if not isinstance(domain_name, str) or not domain_name.strip():
            raise ValidationFailed.field("domain", "The domain field is required.")
        domain = await find_domain(self.storage, account, domain_name.strip().rstrip(".").lower())
        adapter = adapter_for(provider)
        configured = adapter.configure(given)
        source = await self.storage.add_source(account.id, domain.id, provider, configured.stored)
        url = base_url.rstrip("/") + intake_path(source.guid)
        return {**describe(source), "intake_url": url, "setup": adapter.setup(url, configured.shown_once)}

    async def list(self, account: Account) -> list[dict[str, Any]]:
        return [describe(source) for source in await self.storage.list_sources(account.id)]

    async def delete(self, account: Account, guid: str) -> None:
        # A guid we never hand out (NUL, which PostgreSQL refuses in text, included) names no source.
        if not GUID.fullmatch(guid) or not await self.storage.delete_source(account.id, guid):
            raise SourceNotFound()

    async def find(self, guid: str) -> Source:
        source = await self.storage.get_source(guid) if GUID.fullmatch(guid) else None
        if source is None:
            raise SourceNotFound()
        return source

    async def verify(self, source: Source, parts: RequestParts, now: float | None = None) -> None:
        """``SourceRejected`` unless the provider sent it (by its own scheme, with the source's settings)."""
        await adapter_for(source.provider).verify(parts, source.config, self.outside, now)

    async def receive(self, source: Source, body: bytes) -> Received:
        """Parse and ingest the body of a verified request (``SourceRejected`` when refused)."""
        parsed = adapter_for(source.provider).parse(body)
        if parsed.confirm_url is not None:
            await self.outside.fetch(parsed.confirm_url)
        if not parsed.items:
            return Received([], 0, parsed.ignored)
        account = await self.storage.get_account(source.account_id)
        if account is None:  # deleted with its sources (cascade): as if the source were gone
            raise SourceNotFound()
        items = [{**item, "domain": source.domain} for item in parsed.items]
        try:
            ids, _many, new = await self.intake.ingest(account, items)
        except ValidationFailed as exc:
            raise SourceRejected(Rejection.INVALID, exc.message) from exc
        return Received(ids, new, parsed.ignored)
