"""Mailgun's suppressions API (bounces, unsubscribes, complaints) through the official ``mailgun`` SDK
against a real ``mailhooks serve``, on SQLite and PostgreSQL; the lists fed by events; the
``suppressed`` flag on later events for a suppressed recipient."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mailgun.client import Client

from tests.support import Provisioner, Receiver, ServerProcess, Tenant
from tests.test_mailgun import expect, sdk


@pytest.fixture()
def mg(server: ServerProcess, tenant: Tenant) -> Iterator[Client]:
    with sdk(server, tenant.api_key) as client:
        yield client


def emit(server: ServerProcess, tenant: Tenant, event: str, recipient: str, **fields: Any) -> None:
    r = httpx.post(f"{server.base_url}/v1/events", headers={"Authorization": f"Bearer {tenant.api_key}"},
                   json={"domain": tenant.domain, "event": event, "recipient": recipient, **fields})
    assert r.status_code == 202, r.text


def addresses(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["address"] for item in response.json()["items"]]


def test_bounces_with_the_sdk(mg: Client, tenant: Tenant) -> None:
    dom = tenant.domain
    empty = mg.bounces.get(domain=dom)
    expect(empty, 200, {"items": [], "paging": empty.json()["paging"]})
    assert set(empty.json()["paging"]) == {"first", "last", "next", "previous"}

    r = mg.bounces.create(domain=dom, data={"address": "Alice@Example.com", "code": "550", "error": "No such user"})
    expect(r, 200, {"message": "Address has been added to the bounces table", "address": "alice@example.com"})
    r = mg.bounces.create(domain=dom, data=json.dumps([{"address": "bob@example.com", "code": "554"},
                                                       {"address": "carol@example.com"}]),
                          headers={"Content-Type": "application/json"})
    expect(r, 200, {"message": "2 addresses have been added to the bounces table"})

    one = mg.bounces.get(domain=dom, bounce_address="alice@example.com")
    assert one.status_code == 200
    body = one.json()
    assert (body["address"], body["code"], body["error"]) == ("alice@example.com", "550", "No such user")
    assert body["created_at"].endswith(" UTC") and body["created_at"][:3] in ("Mon", "Tue", "Wed", "Thu", "Fri",
                                                                            "Sat", "Sun")
    assert mg.bounces.get(domain=dom, bounce_address="carol@example.com").json()["code"] == "550"  # the default
    assert addresses(mg.bounces.get(domain=dom)) == ["alice@example.com", "bob@example.com", "carol@example.com"]

    expect(mg.bounces.delete(domain=dom, bounce_address="bob@example.com"), 200,
           {"message": "Bounced address has been removed", "address": "bob@example.com"})
    expect(mg.bounces.get(domain=dom, bounce_address="bob@example.com"), 404,
           {"message": "Address not found in bounces table"})
    expect(mg.bounces.delete(domain=dom, bounce_address="bob@example.com"), 404,
           {"message": "Address not found in bounces table"})
    expect(mg.bounces.delete(domain=dom), 200, {"message": "Bounced addresses for this domain have been removed"})
    assert addresses(mg.bounces.get(domain=dom)) == []


def test_unsubscribes_and_complaints_with_the_sdk(mg: Client, tenant: Tenant) -> None:
    dom = tenant.domain
    r = mg.unsubscribes.create(domain=dom, data={"address": "dave@example.com", "tag": "newsletter"})
    expect(r, 200, {"message": "Address has been added to the unsubscribes table", "address": "dave@example.com"})
    r = mg.unsubscribes.create(domain=dom, data={"address": "erin@example.com"})
    got = mg.unsubscribes.get(domain=dom).json()["items"]
    assert [(i["address"], i["tags"]) for i in got] == [("dave@example.com", ["newsletter"]),
                                                         ("erin@example.com", ["*"])]
    expect(mg.unsubscribes.delete(domain=dom, unsubscribe_address="dave@example.com"), 200,
           {"message": "Unsubscribe event has been removed", "address": "dave@example.com"})

    r = mg.complaints.create(domain=dom, data={"address": "frank@example.com"})
    expect(r, 200, {"message": "Address has been added to the complaints table", "address": "frank@example.com"})
    item = mg.complaints.get(domain=dom, complaint_address="frank@example.com").json()
    assert set(item) == {"address", "created_at"}
    expect(mg.complaints.delete(domain=dom, complaint_address="frank@example.com"), 200,
           {"message": "Spam complaint has been removed", "address": "frank@example.com"})
    expect(mg.complaints.delete(domain=dom), 200, {"message": "Spam complaints for this domain have been removed"})


def test_paging_follows_mailguns_links(server: ServerProcess, tenant: Tenant) -> None:
    auth = ("api", tenant.api_key)
    base = f"{server.base_url}/v3/{tenant.domain}/complaints"
    r = httpx.post(base, auth=auth, json=[{"address": f"user{i}@example.com"} for i in range(5)])
    assert r.status_code == 200, r.text
    seen: list[str] = []
    page = httpx.get(base, auth=auth, params={"limit": 2}).json()
    while page["items"]:
        seen += [i["address"] for i in page["items"]]
        page = httpx.get(page["paging"]["next"], auth=auth).json()
    assert seen == [f"user{i}@example.com" for i in range(5)]
    last = httpx.get(base, auth=auth, params={"limit": 2, "page": "last"}).json()
    assert [i["address"] for i in last["items"]] == ["user3@example.com", "user4@example.com"]
    back = httpx.get(last["paging"]["previous"], auth=auth).json()
    assert [i["address"] for i in back["items"]] == ["user1@example.com", "user2@example.com"]


def test_bad_input_is_a_mailgun_400(server: ServerProcess, tenant: Tenant) -> None:
    auth = ("api", tenant.api_key)
    base = f"{server.base_url}/v3/{tenant.domain}/bounces"
    for data in ({"address": "not an address"}, {}, {"address": "a@example.com", "code": "abc"},
                 {"address": "a@example.com", "created_at": "yesterday"}, {"address": "a\x00@example.com"}):
        r = httpx.post(base, auth=auth, data=data)
        assert r.status_code == 400 and set(r.json()) == {"message"}, (data, r.status_code, r.text)
    r = httpx.post(base, auth=auth, json=[{"address": f"u{i}@example.com"} for i in range(1001)])
    assert r.status_code == 400, r.text
    for params in ({"limit": "0"}, {"limit": "abc"}, {"page": "sideways"}):
        r = httpx.get(base, auth=auth, params=params)
        assert r.status_code == 400 and "message" in r.json(), (params, r.text)
    r = httpx.get(f"{base}/{'x' * 300}", auth=auth)
    assert r.status_code == 404 and r.json() == {"message": "Address not found in bounces table"}


def test_another_account_sees_nothing(server: ServerProcess, tenant: Tenant, provision: Provisioner) -> None:
    other = provision.tenant()
    with sdk(server, tenant.api_key) as mine, sdk(server, other.api_key) as theirs:
        mine.bounces.create(domain=tenant.domain, data={"address": "alice@example.com"})
        for call in (theirs.bounces.get(domain=tenant.domain),
                     theirs.bounces.get(domain=tenant.domain, bounce_address="alice@example.com"),
                     theirs.bounces.delete(domain=tenant.domain),
                     theirs.bounces.create(domain=tenant.domain, data={"address": "x@example.com"})):
            expect(call, 404, {"message": "Domain not found"})
        assert addresses(mine.bounces.get(domain=tenant.domain)) == ["alice@example.com"]
        assert addresses(theirs.bounces.get(domain=other.domain)) == []


def test_events_feed_the_lists_and_flag_later_events(server: ServerProcess, tenant: Tenant, receiver: Receiver,
                                                     mg: Client) -> None:
    dom = tenant.domain
    path = f"/supp-{tenant.username}"
    r = mg.domains_webhooks.create(domain=dom, data={"id": "delivered", "url": receiver.url(path)})
    assert r.status_code == 200, r.text
    emit(server, tenant, "permanent_fail", "Bob@Example.com",
         **{"delivery-status": {"code": 550, "message": "5.1.1 mailbox unavailable"}})
    emit(server, tenant, "unsubscribed", "dave@example.com", tags=["newsletter"])
    emit(server, tenant, "complained", "erin@example.com")
    emit(server, tenant, "delivered", "nobody", severity="x")  # not an address: no entry, no error
    emit(server, tenant, "permanent_fail", "nul\x00@example.com")  # NUL: PostgreSQL refuses it in text; no lookup
    emit(server, tenant, "permanent_fail", "frank@example.com", reason="old")  # expired in the queue: not the address

    bounce = mg.bounces.get(domain=dom, bounce_address="bob@example.com").json()
    assert (bounce["code"], bounce["error"]) == ("550", "5.1.1 mailbox unavailable")
    # From everything: an event cannot tell a tag's unsubscribe link from a global one.
    assert mg.unsubscribes.get(domain=dom, unsubscribe_address="dave@example.com").json()["tags"] == ["*"]
    assert mg.complaints.get(domain=dom, complaint_address="erin@example.com").status_code == 200
    assert mg.bounces.get(domain=dom, bounce_address="frank@example.com").status_code == 404

    emit(server, tenant, "delivered", "bob@example.com")
    emit(server, tenant, "delivered", "carol@example.com")
    got = receiver.wait_for(path, 3)
    datas = [json.loads(r.body)["event-data"] for r in got]
    flags = {d["recipient"]: d.get("suppressed") for d in datas}
    assert flags == {"bob@example.com": True, "carol@example.com": None, "nobody": None}, flags
    assert addresses(mg.bounces.get(domain=dom)) == ["bob@example.com"]
    # The list is editable by hand: once removed, the recipient's next event is not flagged.
    mg.bounces.delete(domain=dom, bounce_address="bob@example.com")
    emit(server, tenant, "delivered", "bob@example.com")
    last = json.loads(receiver.wait_for(path, 4)[-1].body)["event-data"]
    assert last["recipient"] == "bob@example.com" and "suppressed" not in last


def test_subscriptions_filter_on_the_suppressed_flag(server: ServerProcess, tenant: Tenant, receiver: Receiver,
                                                     mg: Client) -> None:
    dom = tenant.domain
    clean, flagged = f"/clean-{tenant.username}", f"/flagged-{tenant.username}"
    r = mg.domains_webhooks.create(domain=dom, data={"id": "delivered", "url": [receiver.url(clean),
                                                                                receiver.url(flagged)]})
    assert r.status_code == 200, r.text
    native = {"Authorization": f"Bearer {tenant.api_key}"}
    listed = httpx.get(f"{server.base_url}/v1/subscriptions", params={"domain": dom}, headers=native).json()
    guids = {item["url"]: item["guid"] for item in listed["items"]}
    for path, wanted in ((clean, False), (flagged, True)):
        r = httpx.patch(f"{server.base_url}/v1/subscriptions/{guids[receiver.url(path)]}", headers=native,
                        json={"filters": {"suppressed": wanted}})
        assert r.status_code == 200 and r.json()["filters"]["suppressed"] is wanted, r.text
    r = httpx.patch(f"{server.base_url}/v1/subscriptions/{guids[receiver.url(clean)]}", headers=native,
                    json={"filters": {"suppressed": "yes"}})
    assert r.status_code == 422 and "filters.suppressed" in r.json()["errors"], r.text

    mg.bounces.create(domain=dom, data={"address": "bob@example.com"})
    emit(server, tenant, "delivered", "bob@example.com")
    emit(server, tenant, "delivered", "carol@example.com")
    receiver.wait_for(clean, 1)
    receiver.wait_for(flagged, 1)
    time.sleep(1.0)  # both events were ingested before either arrived: nothing more is on its way
    got_clean, got_flagged = receiver.on(clean), receiver.on(flagged)
    assert [json.loads(r.body)["event-data"]["recipient"] for r in got_clean] == ["carol@example.com"]
    assert [json.loads(r.body)["event-data"]["recipient"] for r in got_flagged] == ["bob@example.com"]
