"""Subscriptions: who gets which event at which URL.

One row is one URL x one event type. The dialects are views over the same rows: Mailgun v3 groups
a domain's rows by type, v4 by URL, v1 by ``group_id`` (its ``webhook_id``); Kirim.Email addresses
single rows by guid. Every rule (3 URLs per type, duplicates, URL checks, ownership) lives here once,
raising coded errors (``core.errors``) that each dialect words its own way.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from mailhooks.core.accounts import find_domain
from mailhooks.core.errors import TooManyUrls, TypeExists, UrlExists, ValidationFailed, WebhookNotFound
from mailhooks.core.event_types import MAILGUN_TYPES
from mailhooks.core.models import Account, Domain, NewWebhook, Webhook
from mailhooks.core.payloads import PayloadFormat
from mailhooks.core.ports import WebhookStorage
from mailhooks.core.targets import TargetPolicy, check_target

MAX_URLS_PER_TYPE = 3
MAX_DESCRIPTION = 1024

# What a plan hands the store: rows to add, ids to remove (and, for a reorder, ``{id: new position}``).
Change = tuple[list[NewWebhook], list[int]] | tuple[list[NewWebhook], list[int], dict[int, int]]


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _plausible_id(value: str) -> bool:
    """Ids we hand out are short and printable; anything else (NUL, which PostgreSQL refuses) names nothing."""
    return 0 < len(value) <= 64 and value.isprintable()


def _description(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValidationFailed.field("description", "The description may not contain NUL characters.")
    return value


def check_url_limit(event_type: str, urls: Iterable[str]) -> None:
    """The one URL limit of every dialect: at most ``MAX_URLS_PER_TYPE`` distinct URLs receive a type."""
    if len(set(urls)) > MAX_URLS_PER_TYPE:
        raise TooManyUrls(event_type, MAX_URLS_PER_TYPE)


def check_not_subscribed(rows: Iterable[Webhook], event_type: str, url: str) -> None:
    """A URL receives an event type once: another row of the same type and URL is a conflict."""
    if any(row.event_type == event_type and row.url == url for row in rows):
        raise UrlExists(event_type, url)


def urls_of(rows: Iterable[Webhook], event_type: str) -> set[str]:
    return {row.url for row in rows if row.event_type == event_type}


def in_list_order(rows: Iterable[Webhook]) -> list[Webhook]:
    """Each type's URLs in the order the client gave them (a PUT may reorder), then by creation."""
    return sorted(rows, key=lambda row: (row.position, row.id))


def next_position(rows: Iterable[Webhook], event_type: str) -> int:
    """Where a URL added to a type's list goes: after the others."""
    return max((row.position + 1 for row in rows if row.event_type == event_type), default=0)


def group_by_type(rows: Iterable[Webhook], types: Sequence[str] = MAILGUN_TYPES) -> dict[str, list[str]]:
    """``{type: [urls]}`` in each list's order, for the types that have at least one URL."""
    grouped: dict[str, list[str]] = {}
    for row in in_list_order(rows):
        if row.event_type in types:
            urls = grouped.setdefault(row.event_type, [])
            if row.url not in urls:
                urls.append(row.url)
    return grouped


class Subscriptions:
    def __init__(self, store: WebhookStorage, policy: TargetPolicy) -> None:
        self.store = store
        self.policy = policy

    # ------------------------------------------------------------------ shared checks
    async def domain(self, account: Account, name: str) -> Domain:
        return await find_domain(self.store, account, name)

    async def check_urls(self, urls: Sequence[str]) -> list[str]:
        return [await check_target(url, self.policy) for url in urls]

    async def _rows(self, account: Account, domain: Domain | None, event_type: str | None = None) -> list[Webhook]:
        return await self.store.list_webhooks(account.id, domain.id if domain else None, event_type=event_type)

    # ------------------------------------------------------------------ by type (Mailgun v3)
    async def urls_by_type(self, account: Account, domain: Domain) -> dict[str, list[str]]:
        return group_by_type(await self._rows(account, domain))

    async def urls_of_type(self, account: Account, domain: Domain, event_type: str) -> list[str]:
        urls = [row.url for row in in_list_order(await self._rows(account, domain, event_type))]
        if not urls:
            raise WebhookNotFound()
        return _unique(urls)

    async def create_type(self, account: Account, domain: Domain, event_type: str, urls: Sequence[str],
                          payload_format: PayloadFormat = PayloadFormat.MAILGUN) -> list[str]:
        urls = _unique(urls)
        check_url_limit(event_type, urls)
        if await self._rows(account, domain, event_type):
            raise TypeExists(event_type)
        urls = await self.check_urls(urls)

        def plan(rows: list[Webhook]) -> Change:
            if any(row.event_type == event_type for row in rows):
                raise TypeExists(event_type)
            return [NewWebhook(account.id, domain.id, event_type, url, payload_format, position=position)
                    for position, url in enumerate(urls)], []

        await self.store.plan_webhooks(account.id, domain.id, plan)
        return urls

    async def replace_type(self, account: Account, domain: Domain, event_type: str, urls: Sequence[str],
                           payload_format: PayloadFormat = PayloadFormat.MAILGUN) -> list[str]:
        urls = _unique(urls)
        check_url_limit(event_type, urls)
        if not await self._rows(account, domain, event_type):
            raise WebhookNotFound()
        urls = await self.check_urls(urls)

        def plan(rows: list[Webhook]) -> Change:
            existing = [row for row in rows if row.event_type == event_type]
            if not existing:
                raise WebhookNotFound()
            keep = {row.url for row in existing if row.url in urls}
            place = {url: position for position, url in enumerate(urls)}
            return (
                [NewWebhook(account.id, domain.id, event_type, url, payload_format, position=place[url])
                 for url in urls if url not in keep],
                [row.id for row in existing if row.url not in urls],
                {row.id: place[row.url] for row in existing if row.url in place and row.position != place[row.url]},
            )

        await self.store.plan_webhooks(account.id, domain.id, plan)
        return urls

    async def delete_type(self, account: Account, domain: Domain, event_type: str) -> list[str]:
        removed: list[str] = []

        def plan(rows: list[Webhook]) -> Change:
            existing = [row for row in rows if row.event_type == event_type]
            if not existing:
                raise WebhookNotFound()
            removed.extend(_unique(row.url for row in existing))
            return [], [row.id for row in existing]

        await self.store.plan_webhooks(account.id, domain.id, plan)
        return removed

    # ------------------------------------------------------------------ by URL (Mailgun v4)
    async def add_url(self, account: Account, domain: Domain, url: str, event_types: Sequence[str],
                      payload_format: PayloadFormat = PayloadFormat.MAILGUN) -> dict[str, list[str]]:
        (url,) = await self.check_urls([url])
        types = _unique(event_types)

        def plan(rows: list[Webhook]) -> Change:
            for event_type in types:
                check_not_subscribed(rows, event_type, url)
                check_url_limit(event_type, urls_of(rows, event_type) | {url})
            return [NewWebhook(account.id, domain.id, event_type, url, payload_format,
                               position=next_position(rows, event_type)) for event_type in types], []

        await self.store.plan_webhooks(account.id, domain.id, plan)
        return await self.urls_by_type(account, domain)

    async def set_url_types(self, account: Account, domain: Domain, url: str, event_types: Sequence[str],
                            payload_format: PayloadFormat = PayloadFormat.MAILGUN) -> dict[str, list[str]]:
        (url,) = await self.check_urls([url])
        types = _unique(event_types)

        def plan(rows: list[Webhook]) -> Change:
            mine = [row for row in rows if row.url == url and row.event_type in MAILGUN_TYPES]
            if not mine:
                raise WebhookNotFound()
            have = {row.event_type for row in mine}
            for event_type in types:
                if event_type not in have:
                    check_url_limit(event_type, urls_of(rows, event_type) | {url})
            return (
                [NewWebhook(account.id, domain.id, t, url, payload_format, position=next_position(rows, t))
                 for t in types if t not in have],
                [row.id for row in mine if row.event_type not in types],
            )

        await self.store.plan_webhooks(account.id, domain.id, plan)
        return await self.urls_by_type(account, domain)

    async def remove_urls(self, account: Account, domain: Domain, urls: Sequence[str]) -> dict[str, list[str]]:
        wanted = {url.strip() for url in urls}

        def plan(rows: list[Webhook]) -> Change:
            return [], [row.id for row in rows if row.url in wanted and row.event_type in MAILGUN_TYPES]

        await self.store.plan_webhooks(account.id, domain.id, plan)
        return await self.urls_by_type(account, domain)

    # ------------------------------------------------------------------ account level (Mailgun v1)
    @staticmethod
    def _groups(rows: Iterable[Webhook], group_ids: Sequence[str] | None = None) -> list[list[Webhook]]:
        groups: dict[str, list[Webhook]] = {}
        for row in rows:
            if row.group_id and (group_ids is None or row.group_id in group_ids):
                groups.setdefault(row.group_id, []).append(row)
        return list(groups.values())

    async def account_groups(self, account: Account, group_ids: Sequence[str] | None = None) -> list[list[Webhook]]:
        return self._groups(await self._rows(account, None), group_ids)

    async def account_group(self, account: Account, group_id: str) -> list[Webhook]:
        if not _plausible_id(group_id):
            raise WebhookNotFound()
        rows = await self.store.list_webhooks(account.id, None, group_id=group_id)
        if not rows:
            raise WebhookNotFound()
        return rows

    @staticmethod
    def _check_account_url(rows: Sequence[Webhook], url: str, types: Sequence[str]) -> None:
        """Every duplicate first, then the limit, type by type (``rows``: the others of the account)."""
        for event_type in types:
            check_not_subscribed(rows, event_type, url)
        for event_type in types:
            check_url_limit(event_type, urls_of(rows, event_type) | {url})

    async def create_account_webhook(self, account: Account, url: str, event_types: Sequence[str],
                                     description: str | None) -> list[Webhook]:
        (url,) = await self.check_urls([url])
        types = _unique(event_types)
        group_id = secrets.token_hex(12)
        description = (_description(description) or "")[:MAX_DESCRIPTION]

        def plan(rows: list[Webhook]) -> Change:
            self._check_account_url(rows, url, types)
            return [NewWebhook(account.id, None, t, url, PayloadFormat.MAILGUN, group_id, description)
                    for t in types], []

        return await self.store.plan_webhooks(account.id, None, plan)

    async def replace_account_webhook(self, account: Account, group_id: str, url: str,
                                      event_types: Sequence[str], description: str | None) -> list[Webhook]:
        await self.account_group(account, group_id)
        (url,) = await self.check_urls([url])
        types = _unique(event_types)
        description = _description(description)

        def plan(rows: list[Webhook]) -> Change:
            existing = [row for row in rows if row.group_id == group_id]
            if not existing:
                raise WebhookNotFound()
            self._check_account_url([row for row in rows if row.group_id != group_id], url, types)
            kept = existing[0].description if description is None else description
            return (
                [NewWebhook(account.id, None, t, url, PayloadFormat.MAILGUN, group_id, (kept or "")[:MAX_DESCRIPTION])
                 for t in types],
                [row.id for row in existing],
            )

        await self.store.plan_webhooks(account.id, None, plan)
        return await self.account_group(account, group_id)

    async def delete_account_webhooks(self, account: Account, group_ids: Sequence[str] | None) -> int:
        """Delete the given groups (all when ``None``); return how many groups went."""
        count = 0

        def plan(rows: list[Webhook]) -> Change:
            nonlocal count
            groups = self._groups(rows, group_ids)
            count = len(groups)
            return [], [row.id for group in groups for row in group]

        await self.store.plan_webhooks(account.id, None, plan)
        return count

    # ------------------------------------------------------------------ single rows (Kirim.Email)
    async def list_rows(self, account: Account, domain: Domain, event_types: Sequence[str],
                        event_type: str | None = None) -> list[Webhook]:
        rows = await self._rows(account, domain, event_type)
        return [row for row in rows if row.event_type in event_types]

    async def get_row(self, account: Account, domain: Domain, guid: str) -> Webhook:
        if not _plausible_id(guid):
            raise WebhookNotFound()
        row = await self.store.get_webhook(account.id, guid, domain.id)
        if row is None:
            raise WebhookNotFound()
        return row

    @staticmethod
    def _check_row(rows: Sequence[Webhook], event_type: str, url: str, ignore_id: int | None = None) -> None:
        others = [row for row in rows if row.id != ignore_id]
        check_not_subscribed(others, event_type, url)
        check_url_limit(event_type, urls_of(others, event_type) | {url})

    async def create_row(self, account: Account, domain: Domain, event_type: str, url: str,
                         payload_format: PayloadFormat = PayloadFormat.KIRIM) -> Webhook:
        (url,) = await self.check_urls([url])

        def plan(rows: list[Webhook]) -> Change:
            self._check_row(rows, event_type, url)
            return [NewWebhook(account.id, domain.id, event_type, url, payload_format,
                               position=next_position(rows, event_type))], []

        (row,) = await self.store.plan_webhooks(account.id, domain.id, plan)
        return row

    async def update_row(self, account: Account, domain: Domain, guid: str, event_type: str | None,
                         url: str | None) -> Webhook:
        row = await self.get_row(account, domain, guid)
        new_type = event_type or row.event_type
        new_url = url if url is not None else row.url
        changed = (new_type, new_url) != (row.event_type, row.url)
        if changed:
            (new_url,) = await self.check_urls([new_url])
        values: dict[str, object] = {"event_type": new_type, "url": new_url}

        def plan(rows: list[Webhook]) -> Change:
            if not any(r.id == row.id for r in rows):
                raise WebhookNotFound()  # deleted meanwhile
            if changed:
                self._check_row(rows, new_type, new_url, ignore_id=row.id)
            if new_type != row.event_type:  # joins the end of its new type's list
                values["position"] = next_position((r for r in rows if r.id != row.id), new_type)
            return [], []

        await self.store.plan_webhooks(account.id, domain.id, plan, set_values=(row.id, values))
        updated = await self.store.get_webhook_by_id(row.id)
        assert updated is not None
        return updated

    async def delete_row(self, account: Account, domain: Domain, guid: str) -> Webhook:
        row = await self.get_row(account, domain, guid)
        await self.store.change_webhooks(remove_ids=[row.id])
        return row
