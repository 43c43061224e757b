"""Each dialect's words and shapes for the coded core errors: the same rule, answered as each vendor does.

Pure unit tests (no server): the end-to-end suites (test_mailgun.py, test_kirim.py) pin the same bodies
through the real SDKs; these pin the table that produces them.
"""

from __future__ import annotations

import pytest

from mailhooks.api.dialects import Dialect, dialect_for, errors_for, errors_of
from mailhooks.core.errors import CoreError, DeliveryInFlight, DomainNotFound, TooManyUrls, TypeExists, UrlExists
from mailhooks.core.event_types import CANONICAL, KIRIM_TYPES, MAILGUN_ALIASES, MAILGUN_TYPES, parse_type

URL = "https://hooks.example/a"


@pytest.mark.parametrize(("path", "dialect"), [
    ("/v3/domains/d/webhooks", Dialect.MAILGUN), ("/v4/domains/d/webhooks", Dialect.MAILGUN),
    ("/v5/accounts/http_signing_key", Dialect.MAILGUN), ("/v1/webhooks/x", Dialect.MAILGUN),
    ("/api/domains/d/webhooks", Dialect.KIRIM), ("/v1/deliveries", Dialect.NATIVE), ("/livez", Dialect.NATIVE),
])
def test_the_path_decides_the_dialect(path: str, dialect: Dialect) -> None:
    assert dialect_for(path) is dialect
    assert errors_for(path).dialect is dialect


@pytest.mark.parametrize(("path", "exc", "status", "body"), [
    ("/v3/domains/d/webhooks", TooManyUrls("opened", 3), 400,
     b'{"message":"Maximum of 3 urls for a given webhook type (opened)"}\n'),
    ("/v3/domains/d/webhooks", UrlExists("clicked", URL), 400,
     b'{"message":"Webhook for event type \'clicked\' with URL \'' + URL.encode() + b'\' already exists"}\n'),
    ("/v1/webhooks", UrlExists("clicked", URL), 409,
     b'{"message":"Webhook for event type \'clicked\' with URL \'' + URL.encode() + b'\' already exists"}\n'),
    ("/v3/domains/d/webhooks", TypeExists("clicked"), 400, b'{"message":"Webhook already exists"}\n'),
    ("/v3/domains/d/webhooks", DomainNotFound(), 404, b'{"message":"Domain not found"}\n'),
    ("/api/domains/d/webhooks", TooManyUrls("opened", 3), 422,
     b'{"success":false,"message":"Validation failed.","errors":{"url":["A maximum of 3 urls is allowed per event '
     b'type."]}}'),
    ("/api/domains/d/webhooks", UrlExists("opened", URL), 422,
     b'{"success":false,"message":"Validation failed.","errors":{"url":["A webhook for this type and url already '
     b'exists."]}}'),
    ("/api/domains/d/webhooks", DomainNotFound(), 404,
     b'{"success":false,"message":"Domain not found or you do not own this domain"}'),
    ("/v1/deliveries/7/retry", DeliveryInFlight(7), 409, b'{"message":"The delivery is being attempted right now"}'),
])
def test_coded_errors_in_each_dialects_words(path: str, exc: CoreError, status: int, body: bytes) -> None:
    response = errors_for(path).core_error(path, exc)
    assert (response.status_code, response.body) == (status, body)


def test_the_dashboard_words_forms_as_the_api_it_mirrors() -> None:
    assert errors_of(Dialect.KIRIM).words(TooManyUrls("opened", 3)) == "A maximum of 3 urls is allowed per event type."
    assert errors_of(Dialect.MAILGUN).field_errors(TooManyUrls("opened", 3)) == {
        "url": ["Maximum of 3 urls for a given webhook type (opened)"]}


def test_type_names_parse_in_one_place() -> None:
    assert parse_type("open", MAILGUN_TYPES, MAILGUN_ALIASES) == "opened"
    assert parse_type("queued", MAILGUN_TYPES, MAILGUN_ALIASES) is None
    assert parse_type("queued", KIRIM_TYPES) == "queued"
    assert parse_type(" queued", KIRIM_TYPES) is None  # Kirim.Email does not tidy; callers strip if they do
    assert parse_type("bounce", CANONICAL, MAILGUN_ALIASES) == "permanent_fail"
    assert parse_type("bounce", CANONICAL) is None
    assert parse_type(3, CANONICAL) is None
