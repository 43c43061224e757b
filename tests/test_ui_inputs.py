"""The dashboard answers hostile query and form values with a 4xx page, never a 500 (issue 9, item 7),
on SQLite and PostgreSQL (which refuses NUL in text, where SQLite stores it).

Each value went through every ``/ui`` route that reads a query parameter, a form field or a path
segment; these are the ones that answered 500 before: times beyond the calendar in the deliveries
filters and in recover, a NUL webhook filter, a NUL key prefix to revoke.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support import Provisioner, ServerProcess
from tests.test_ui import sign_in_http

BEYOND_THE_CALENDAR = ("99999999999999999999", "9223372036854775808", "1" * 30, "1e400", "nan", "-1",
                       "10000-01-01T00:00", "0001-01-01T00:00", "abc", "\x00")


def expect_page(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, (response.status_code, response.request.url, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    for word in words:
        assert word in response.text


@pytest.fixture()
def signed_in(server: ServerProcess, provision: Provisioner) -> tuple[httpx.Client, str, str]:
    tenant = provision.tenant()
    client, csrf = sign_in_http(server, tenant.api_key)
    return client, csrf, tenant.domain


@pytest.mark.parametrize("value", BEYOND_THE_CALENDAR)
def test_times_beyond_the_calendar_are_a_400_page(signed_in: tuple[httpx.Client, str, str], value: str) -> None:
    client, csrf, domain = signed_in
    for name in ("since", "until"):
        expect_page(client.get("/ui/deliveries", params={name: value}), 400, f"&#39;{name}&#39; must be a date")
    expect_page(client.post("/ui/deliveries/recover", data={"csrf": csrf, "domain": domain, "since": value}), 400,
                "&#39;since&#39; must be a date")
    # the edges of the calendar still work
    expect_page(client.get("/ui/deliveries", params={"since": "0", "until": "9999-12-31T23:59"}), 200)
    recovered = client.post("/ui/deliveries/recover", data={"csrf": csrf, "domain": domain,
                                                            "since": "9999-12-31T23:59"})
    assert recovered.status_code == 303


def test_nul_in_filters_and_paths_is_a_4xx_page(signed_in: tuple[httpx.Client, str, str]) -> None:
    client, csrf, _domain = signed_in
    for webhook in ("\x00", "a\x00b", "x" * 65):
        expect_page(client.get("/ui/deliveries", params={"webhook": webhook}), 404, "Webhook not found")
    for prefix in ("%00", "a%00b"):
        expect_page(client.post(f"/ui/settings/keys/{prefix}/revoke", data={"csrf": csrf}), 404, "API key not found")
    # and the session is still good after all of it
    expect_page(client.get("/ui/deliveries"), 200)
    client.close()
