"""Unit tests of the subscription plans (``mailhooks.core.webhooks``), table-driven, no database.

Every change to subscriptions is a plan: given the live rows of one scope (a domain's, or the account's
own for Mailgun v1), it decides which rows to add (type, URL, place in the type's list), which to remove,
which to move within their list, and which row to update in place, or it refuses with an error. The
storage runs the plan atomically; here an in-memory store runs it instead and records the decision.

Each case: the rows there are, one call, and the decision expected (or the error it must raise). The
dialect suites (tests/test_mailgun.py, tests/test_kirim.py) check the words each dialect uses.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from mailhooks.core.errors import CoreError, TooManyUrls, TypeExists, UrlExists, ValidationFailed, WebhookNotFound
from mailhooks.core.models import Account, Domain, NewWebhook, Webhook
from mailhooks.core.targets import TargetPolicy
from mailhooks.core.webhooks import Subscriptions

ACCOUNT = Account(id=1, guid="account-guid", username="alice", signing_key="key-0", created_at=0.0)
DOMAIN = Domain(id=7, guid="domain-guid", name="d.example", account_id=1, secret="s", created_at=0.0)
# IP literals: a subscribe-time check looks the host up, and a literal needs no resolver.
A, B, C, D = (f"https://192.0.2.{i}/hook" for i in range(1, 5))


def row(id_: int, event_type: str, url: str, position: int = 0, group: str | None = None,
        fmt: str = "mailgun", description: str | None = None) -> Webhook:
    """A live row: on ``DOMAIN`` unless it belongs to a Mailgun v1 ``group`` (account level)."""
    return Webhook(id=id_, guid=f"guid-{id_}", account_id=ACCOUNT.id, domain_id=None if group else DOMAIN.id,
                   event_type=event_type, url=url, payload_format=fmt, group_id=group, description=description,
                   created_at=0.0, modified_at=0.0, position=position)


@dataclass
class Decision:
    """What a plan handed the store."""

    added: list[tuple[str, str, int]] = field(default_factory=list)  # (type, url, position)
    removed: list[int] = field(default_factory=list)
    moved: dict[int, int] = field(default_factory=dict)  # id -> new position
    updated: dict[str, object] = field(default_factory=dict)  # set in place on one row


class PlanningStore:
    """The store's side of ``Subscriptions``, in memory: runs each plan on the live rows of its scope,
    records the decision, and applies it so that what the call reads back afterwards is consistent."""

    def __init__(self, rows: Sequence[Webhook]) -> None:
        self.rows = list(rows)
        self.decision: Decision | None = None
        self._ids = itertools.count(1000)

    def _live(self, domain_id: int | None) -> list[Webhook]:
        return sorted((r for r in self.rows if r.domain_id == domain_id and r.deleted_at is None), key=lambda r: r.id)

    async def list_webhooks(self, account_id: int, domain_id: int | None, event_type: str | None = None,
                            event_types: Sequence[str] | None = None, include_deleted: bool = False,
                            group_id: str | None = None) -> list[Webhook]:
        return [r for r in self._live(domain_id) if (event_type is None or r.event_type == event_type)
                and (event_types is None or r.event_type in event_types)
                and (group_id is None or r.group_id == group_id)]

    async def get_webhook(self, account_id: int, guid: str, domain_id: int | None = None,
                          any_domain: bool = False) -> Webhook | None:
        return next((r for r in self._live(domain_id) if r.guid == guid), None)

    async def get_webhook_by_id(self, webhook_id: int) -> Webhook | None:
        return next((r for r in self.rows if r.id == webhook_id), None)

    async def plan_webhooks(self, account_id: int, domain_id: int | None, plan: Callable[[list[Webhook]], Any],
                            set_values: tuple[int, dict[str, Any]] | None = None) -> list[Webhook]:
        change = plan(self._live(domain_id))
        add, remove = change[0], change[1]
        moved = change[2] if len(change) == 3 else {}
        self.decision = Decision([(n.event_type, n.url, n.position) for n in add], sorted(remove), dict(moved),
                                 dict(set_values[1]) if set_values else {})
        for webhook_id, position in moved.items():
            self._update(webhook_id, position=position)
        if set_values is not None:
            self._update(set_values[0], **set_values[1])
        return await self.change_webhooks(add, remove)

    async def change_webhooks(self, add: Sequence[NewWebhook] = (), remove_ids: Sequence[int] = (),
                              hard_delete: bool = False) -> list[Webhook]:
        if self.decision is None:  # a change without a plan (a Kirim delete)
            self.decision = Decision(removed=sorted(remove_ids))
        for webhook_id in remove_ids:
            self._update(webhook_id, deleted_at=1.0)
        created = [Webhook(id=(i := next(self._ids)), guid=f"guid-{i}", account_id=n.account_id,
                           domain_id=n.domain_id, event_type=n.event_type, url=n.url, payload_format=n.payload_format,
                           group_id=n.group_id, description=n.description, created_at=1.0, modified_at=1.0,
                           position=n.position) for n in add]
        self.rows.extend(created)
        return created

    def _update(self, webhook_id: int, **values: Any) -> None:
        self.rows = [replace(r, **values) if r.id == webhook_id else r for r in self.rows]


Call = Callable[[Subscriptions], Awaitable[object]]


def decide(rows: Sequence[Webhook], call: Call) -> tuple[Decision | None, object]:
    store = PlanningStore(rows)
    subscriptions = Subscriptions(store, TargetPolicy(allow_private=True))  # type: ignore[arg-type]
    answer = asyncio.run(call(subscriptions))
    return store.decision, answer


def refused(rows: Sequence[Webhook], call: Call) -> CoreError:
    store = PlanningStore(rows)
    with pytest.raises(CoreError) as caught:
        asyncio.run(call(Subscriptions(store, TargetPolicy(allow_private=True))))  # type: ignore[arg-type]
    assert store.rows == list(rows), "a refused plan changed rows"
    return caught.value


# ---------------------------------------------------------------------------- Mailgun v3: a type's URL list
V3 = [
    ("create: the URLs in the order given, duplicates once",
     [row(1, "opened", A)],
     lambda s: s.create_type(ACCOUNT, DOMAIN, "clicked", [B, A, B]),
     Decision(added=[("clicked", B, 0), ("clicked", A, 1)])),
    ("replace: a URL that stays keeps its row and moves to its new place; one that goes is removed",
     [row(1, "clicked", A, 0), row(2, "clicked", B, 1), row(3, "opened", A)],
     lambda s: s.replace_type(ACCOUNT, DOMAIN, "clicked", [B, C]),
     Decision(added=[("clicked", C, 1)], removed=[1], moved={2: 0})),
    ("replace: a reorder only moves rows",
     [row(1, "clicked", A, 0), row(2, "clicked", B, 1), row(3, "clicked", C, 2)],
     lambda s: s.replace_type(ACCOUNT, DOMAIN, "clicked", [C, A, B]),
     Decision(moved={3: 0, 1: 1, 2: 2})),
    ("replace: the same list in the same order changes nothing",
     [row(1, "clicked", A, 0), row(2, "clicked", B, 1)],
     lambda s: s.replace_type(ACCOUNT, DOMAIN, "clicked", [A, B]),
     Decision()),
    ("delete: every row of the type, none of the others",
     [row(1, "clicked", A, 0), row(2, "clicked", B, 1), row(3, "opened", A)],
     lambda s: s.delete_type(ACCOUNT, DOMAIN, "clicked"),
     Decision(removed=[1, 2])),
]

V3_REFUSED = [
    ("create: the type already has URLs", [row(1, "clicked", A)],
     lambda s: s.create_type(ACCOUNT, DOMAIN, "clicked", [B]), TypeExists),
    ("create: four URLs", [],
     lambda s: s.create_type(ACCOUNT, DOMAIN, "clicked", [A, B, C, D]), TooManyUrls),
    ("replace: a type with no URLs", [row(1, "opened", A)],
     lambda s: s.replace_type(ACCOUNT, DOMAIN, "clicked", [A]), WebhookNotFound),
    ("replace: four URLs", [row(1, "clicked", A)],
     lambda s: s.replace_type(ACCOUNT, DOMAIN, "clicked", [A, B, C, D]), TooManyUrls),
    ("delete: a type with no URLs", [row(1, "opened", A)],
     lambda s: s.delete_type(ACCOUNT, DOMAIN, "clicked"), WebhookNotFound),
]


# ---------------------------------------------------------------------------- Mailgun v4: one URL's types
V4 = [
    ("add: the URL joins the end of each type's list",
     [row(1, "clicked", B, 0), row(2, "clicked", C, 4)],
     lambda s: s.add_url(ACCOUNT, DOMAIN, A, ["opened", "clicked", "opened"]),
     Decision(added=[("opened", A, 0), ("clicked", A, 5)])),
    ("set types: added where missing, removed where not listed, kept where both",
     [row(1, "clicked", A, 0), row(2, "opened", A, 0), row(3, "delivered", B, 0)],
     lambda s: s.set_url_types(ACCOUNT, DOMAIN, A, ["opened", "delivered"]),
     Decision(added=[("delivered", A, 1)], removed=[1])),
    ("remove: the URLs leave every Mailgun type; Kirim-only types and other URLs stay",
     [row(1, "clicked", A), row(2, "opened", B), row(3, "bounced", A, fmt="kirim"), row(4, "opened", C, 1)],
     lambda s: s.remove_urls(ACCOUNT, DOMAIN, [f" {A} ", B, D]),
     Decision(removed=[1, 2])),
    ("remove: URLs that are nowhere change nothing",
     [row(1, "clicked", A)],
     lambda s: s.remove_urls(ACCOUNT, DOMAIN, [D]),
     Decision()),
]

V4_REFUSED = [
    ("add: the URL is already in one of the types", [row(1, "clicked", A)],
     lambda s: s.add_url(ACCOUNT, DOMAIN, A, ["opened", "clicked"]), UrlExists),
    ("add: one of the types is full", [row(1, "opened", B, 0), row(2, "opened", C, 1), row(3, "opened", D, 2)],
     lambda s: s.add_url(ACCOUNT, DOMAIN, A, ["clicked", "opened"]), TooManyUrls),
    ("set types: the URL is in no Mailgun type", [row(1, "bounced", A, fmt="kirim"), row(2, "clicked", B)],
     lambda s: s.set_url_types(ACCOUNT, DOMAIN, A, ["clicked"]), WebhookNotFound),
    ("set types: a type it joins is full",
     [row(1, "clicked", A), row(2, "opened", B, 0), row(3, "opened", C, 1), row(4, "opened", D, 2)],
     lambda s: s.set_url_types(ACCOUNT, DOMAIN, A, ["opened"]), TooManyUrls),
]


# ---------------------------------------------------------------------------- Mailgun v1: account-level groups
V1 = [
    ("replace: the group's rows go, the new ones come with its id; no description keeps the old one",
     [row(1, "delivered", A, group="g1", description="old"), row(2, "opened", A, group="g1", description="old"),
      row(3, "opened", B, group="g2")],
     lambda s: s.replace_account_webhook(ACCOUNT, "g1", C, ["clicked", "opened"], None),
     Decision(added=[("clicked", C, 0), ("opened", C, 0)], removed=[1, 2])),
    ("replace: the group does not count against itself",
     [row(1, "opened", A, group="g1"), row(2, "opened", B, group="g2"), row(3, "opened", C, group="g3")],
     lambda s: s.replace_account_webhook(ACCOUNT, "g1", D, ["opened"], "new"),
     Decision(added=[("opened", D, 0)], removed=[1])),
    ("delete some: only the named groups",
     [row(1, "opened", A, group="g1"), row(2, "clicked", A, group="g1"), row(3, "opened", B, group="g2")],
     lambda s: s.delete_account_webhooks(ACCOUNT, ["g1", "nope"]),
     Decision(removed=[1, 2])),
    ("delete all: every group",
     [row(1, "opened", A, group="g1"), row(2, "opened", B, group="g2")],
     lambda s: s.delete_account_webhooks(ACCOUNT, None),
     Decision(removed=[1, 2])),
]

V1_REFUSED = [
    ("create: the URL already has the type", [row(1, "opened", A, group="g1")],
     lambda s: s.create_account_webhook(ACCOUNT, A, ["clicked", "opened"], None), UrlExists),
    ("create: the type already has three URLs",
     [row(1, "opened", A, group="g1"), row(2, "opened", B, group="g2"), row(3, "opened", C, group="g3")],
     lambda s: s.create_account_webhook(ACCOUNT, D, ["opened"], None), TooManyUrls),
    ("create: a NUL in the description", [],
     lambda s: s.create_account_webhook(ACCOUNT, A, ["opened"], "a\x00b"), ValidationFailed),
    ("replace: another group has the URL for the type",
     [row(1, "opened", A, group="g1"), row(2, "clicked", B, group="g2")],
     lambda s: s.replace_account_webhook(ACCOUNT, "g1", B, ["clicked"], None), UrlExists),
    ("replace: an unknown group", [row(1, "opened", A, group="g1")],
     lambda s: s.replace_account_webhook(ACCOUNT, "g9", B, ["opened"], None), WebhookNotFound),
    ("replace: an id no group could have", [row(1, "opened", A, group="g1")],
     lambda s: s.replace_account_webhook(ACCOUNT, "a\x00b", B, ["opened"], None), WebhookNotFound),
]


# ---------------------------------------------------------------------------- Kirim: single rows
KIRIM = [
    ("create: the row joins the end of its type's list",
     [row(1, "opened", B, 0, fmt="kirim"), row(2, "opened", C, 3, fmt="kirim")],
     lambda s: s.create_row(ACCOUNT, DOMAIN, "opened", A),
     Decision(added=[("opened", A, 4)])),
    ("update the url: in place, keeping its place",
     [row(1, "opened", A, 0, fmt="kirim")],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-1", None, D),
     Decision(updated={"event_type": "opened", "url": D})),
    ("update the type: in place, at the end of the new type's list",
     [row(1, "opened", A, 0, fmt="kirim"), row(2, "clicked", B, 0), row(3, "clicked", C, 1)],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-1", "clicked", None),
     Decision(updated={"event_type": "clicked", "url": A, "position": 2})),
    ("update within a full type: the row does not count against itself",
     [row(1, "opened", A, 0), row(2, "opened", B, 1), row(3, "opened", C, 2)],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-1", None, D),
     Decision(updated={"event_type": "opened", "url": D})),
    ("update to what it is: nothing checked, still an update",
     [row(1, "opened", A, 0), row(2, "opened", B, 1), row(3, "opened", C, 2)],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-1", "opened", A),
     Decision(updated={"event_type": "opened", "url": A})),
    ("delete: that row only",
     [row(1, "opened", A, fmt="kirim"), row(2, "opened", B, fmt="kirim")],
     lambda s: s.delete_row(ACCOUNT, DOMAIN, "guid-2"),
     Decision(removed=[2])),
]

KIRIM_REFUSED = [
    ("create: the type already has the url", [row(1, "opened", A)],
     lambda s: s.create_row(ACCOUNT, DOMAIN, "opened", A), UrlExists),
    ("create: the type has three urls", [row(1, "opened", A), row(2, "opened", B, 1), row(3, "opened", C, 2)],
     lambda s: s.create_row(ACCOUNT, DOMAIN, "opened", D), TooManyUrls),
    ("update: into a (type, url) another row has", [row(1, "opened", A), row(2, "clicked", A)],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-2", "opened", None), UrlExists),
    ("update: into a full type",
     [row(1, "opened", A), row(2, "opened", B, 1), row(3, "opened", C, 2), row(4, "clicked", D)],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-4", "opened", None), TooManyUrls),
    ("update: an unknown guid", [row(1, "opened", A)],
     lambda s: s.update_row(ACCOUNT, DOMAIN, "guid-9", None, B), WebhookNotFound),
    ("delete: an unknown guid", [row(1, "opened", A)],
     lambda s: s.delete_row(ACCOUNT, DOMAIN, "guid-9"), WebhookNotFound),
]


def _ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [case[0] for case in cases]


@pytest.mark.parametrize(("name", "rows", "call", "expected"), [*V3, *V4, *V1, *KIRIM],
                         ids=_ids([*V3, *V4, *V1, *KIRIM]))
def test_the_plan_decides(name: str, rows: list[Webhook], call: Call, expected: Decision) -> None:
    decision, _ = decide(rows, call)
    assert decision == expected


@pytest.mark.parametrize(("name", "rows", "call", "error"), [*V3_REFUSED, *V4_REFUSED, *V1_REFUSED, *KIRIM_REFUSED],
                         ids=_ids([*V3_REFUSED, *V4_REFUSED, *V1_REFUSED, *KIRIM_REFUSED]))
def test_the_plan_refuses(name: str, rows: list[Webhook], call: Call, error: type[CoreError]) -> None:
    assert type(refused(rows, call)) is error


def test_a_created_account_webhook_is_one_group_with_its_description() -> None:
    decision, created = decide([row(1, "opened", B, group="g1")],
                               lambda s: s.create_account_webhook(ACCOUNT, A, ["opened", "clicked", "opened"], "mine"))
    assert decision == Decision(added=[("opened", A, 0), ("clicked", A, 0)])
    assert isinstance(created, list) and len({r.group_id for r in created}) == 1
    assert {(r.domain_id, r.description, r.payload_format) for r in created} == {(None, "mine", "mailgun")}
    assert created[0].group_id not in (None, "g1")


def test_answers_read_back_the_decided_lists() -> None:
    """What each Mailgun call answers is the state after its plan, each type's URLs in list order."""
    rows = [row(1, "clicked", A, 0), row(2, "clicked", B, 1), row(3, "opened", C, 0)]
    assert decide(rows, lambda s: s.replace_type(ACCOUNT, DOMAIN, "clicked", [B, D]))[1] == [B, D]
    assert decide(rows, lambda s: s.add_url(ACCOUNT, DOMAIN, D, ["opened"]))[1] == {"clicked": [A, B],
                                                                                   "opened": [C, D]}
    assert decide(rows, lambda s: s.delete_type(ACCOUNT, DOMAIN, "clicked"))[1] == [A, B]
    assert decide(rows, lambda s: s.urls_by_type(ACCOUNT, DOMAIN))[1] == {"clicked": [A, B], "opened": [C]}


def test_a_replaced_group_keeps_or_replaces_its_description() -> None:
    rows = [row(1, "opened", A, group="g1", description="old")]
    _, kept = decide(rows, lambda s: s.replace_account_webhook(ACCOUNT, "g1", B, ["opened"], None))
    _, new = decide(rows, lambda s: s.replace_account_webhook(ACCOUNT, "g1", B, ["opened"], "new"))
    assert [r.description for r in kept] == ["old"]  # type: ignore[attr-defined]
    assert [r.description for r in new] == ["new"]  # type: ignore[attr-defined]
