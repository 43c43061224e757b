"""Property-based run of the published OpenAPI document against the real app, in this process.

Schemathesis takes the document the app serves and sends generated requests (schema
examples, boundary/coverage cases, then random positive and negative inputs) to every documented
operation, authenticated with a real provisioned account's key, so that requests get past auth and
reach the edges and the core. Its ``requests`` session reaches the app through a transport adapter
(tests/in_process.py), so a 500 shows its traceback here. Every response must:

- not be a 5xx (``not_a_server_error``): a 500 is always a bug in the server;
- have a documented status code, the documented content type, and a body that matches the
  documented schema for that status.

It runs on both storage backends (PostgreSQL refuses NUL in text, which SQLite stores happily).
Generation is deterministic (fixed seed, derandomized) so CI replays the cases seen here; set
``MAILHOOKS_SCHEMA_SEED`` to explore other cases and ``MAILHOOKS_SCHEMA_EXAMPLES`` for a longer run.

Nothing in the document is excluded. ``/ui`` (HTML dashboard with sessions and CSRF) and
``/openapi.json``/``/docs`` are not in the document, so they are not exercised here (tests/test_ui.py
covers the dashboard). Operations documented without security (``/healthz``, ``/metrics``) are sent
without credentials.
"""

from __future__ import annotations

import base64
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mailhooks.api.dialects import dialect_for
from mailhooks.config import Settings
from mailhooks.db.migrate import upgrade
from mailhooks.services import web_app
from tests.in_process import InProcessApp
from tests.support import Provisioner, Tenant

SEED = int(os.environ.get("MAILHOOKS_SCHEMA_SEED", "20240611"))
MAX_EXAMPLES = int(os.environ.get("MAILHOOKS_SCHEMA_EXAMPLES", "60"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _basic(username: str, key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()}


def credentials(username: str, key: str, path: str) -> dict[str, str]:
    """Each dialect's credentials, the dialect decided by the path as the server does: Mailgun
    ``api:KEY``, Kirim.Email ``USERNAME:KEY``, native ``Bearer KEY``."""
    dialect = dialect_for(path)
    if dialect == "kirim":
        return _basic(username, key)
    if dialect == "mailgun":
        return _basic("api", key)
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Target:
    """The app under test, the session reaching it, its tenant, and real ids the fuzzer may address."""

    app: InProcessApp
    session: requests.Session
    tenant: Tenant
    kirim_guids: list[str]
    mailgun_ids: list[str]
    delivery_ids: list[int]

    def auth_headers(self, path: str) -> dict[str, str]:
        return {} if path in PUBLIC_PATHS else credentials(self.tenant.username, self.tenant.api_key, path)

    def call(self, case: Case, headers: dict[str, str]) -> Any:
        return case.call_and_validate(base_url=self.app.base_url, session=self.session, headers=headers,
                                      checks=CHECKS)

    def aim(self, case: Case) -> None:
        """Point most cases at the tenant's real domain and real rows; one in four keeps the generated
        values, so impossible names and ids are fuzzed too. Decided by a checksum of the generated
        values (not ``random``), so a derandomized run sends the same requests every time."""
        params = case.path_parameters
        if not params:
            return
        pick = zlib.crc32(repr(sorted(params.items())).encode("utf-8", "surrogatepass"))
        if pick % 4 == 0:
            return
        real: dict[str, Any] = {"domain": self.tenant.domain}
        if self.kirim_guids:
            real["webhook_guid"] = self.kirim_guids[pick % len(self.kirim_guids)]
            real["guid"] = self.kirim_guids[pick % len(self.kirim_guids)]
        if self.mailgun_ids:
            real["webhook_id"] = self.mailgun_ids[pick % len(self.mailgun_ids)]
        if self.delivery_ids:
            real["delivery_id"] = self.delivery_ids[pick % len(self.delivery_ids)]
        for name in params:
            if name in real:
                params[name] = real[name]


def _seed_rows(app: InProcessApp, tenant: Tenant) -> tuple[list[str], list[str], list[int]]:
    """Real subscriptions and deliveries, made through the API itself."""
    domain = tenant.domain
    kirim_auth = (tenant.username, tenant.api_key)
    mg_auth = ("api", tenant.api_key)
    guids = []
    with app.client() as client:
        for kind in ("delivered", "opened"):
            resp = client.post(f"/api/domains/{domain}/webhooks", auth=kirim_auth,
                               json={"type": kind, "url": f"http://127.0.0.1:9/{kind}"})
            assert resp.status_code == 201, resp.text
            guids.append(resp.json()["data"]["webhook_guid"])
        resp = client.post("/v1/webhooks", auth=mg_auth,
                           data={"url": "http://127.0.0.1:9/account", "event_types": "delivered,clicked"})
        assert resp.status_code == 200, resp.text
        mailgun_ids = [resp.json()["webhook_id"]]
        resp = client.post("/v1/events", headers={"Authorization": f"Bearer {tenant.api_key}"},
                           json=[{"domain": domain, "event": "delivered", "recipient": f"r{i}@example.com"}
                                 for i in range(2)])
        assert resp.status_code == 202, resp.text
        resp = client.get("/v1/deliveries", headers={"Authorization": f"Bearer {tenant.api_key}"})
        assert resp.status_code == 200, resp.text
        delivery_ids = [item["id"] for item in resp.json()["items"]]
        assert delivery_ids
    return guids, mailgun_ids, delivery_ids


@pytest.fixture(scope="module")
def schema_target(module_db: str) -> Iterator[Target]:
    upgrade(module_db)
    app = InProcessApp(Settings(database_url=module_db, allow_private_targets=True, delivery_timeout=2.0,
                                rate_limit="1000000/minute", auth_failure_limit="1000000/minute")).start()
    session = requests.Session()
    session.mount(app.base_url, app.requests_adapter())
    try:
        tenant = Provisioner(module_db).tenant()
        yield Target(app, session, tenant, *_seed_rows(app, tenant))
    finally:
        session.close()
        app.stop()


def _document() -> dict[str, Any]:
    """The OpenAPI document, built at collection time by the same code the server runs (routes only: no
    database is touched). ``test_served_document_is_the_one_fuzzed`` proves the live server serves it."""
    return web_app(Settings(database_url="sqlite:///unused.db")).openapi()


# Values that random text rarely hits but that break real servers: NUL (PostgreSQL refuses it in text),
# lone control characters, numbers spelled out of range, and very long or non-ASCII text. Drawn in
# place of any generated string or number with a small probability.
HOSTILE_STRINGS = ["\x00", "a\x00b", "http://127.0.0.1/\x00", "\x00@example.com", "\x1f", "\u2028",
                   "NaN", "-Infinity", "1e400", "-1", "9223372036854775808", "99999999999999999999", "é",
                   "\U0001f4e7", "%00", "..", "x" * 5000]
HOSTILE_NUMBERS = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324]
HOSTILE_PROBABILITY = 0.15


def _hostile_bindings(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Bind every parameter and top-level body field of the document to the hostile values (by name,
    since FastAPI's optional parameters are ``anyOf`` schemas that type-wide bindings skip)."""
    components = document.get("components", {}).get("schemas", {})

    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = components[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def kind(node: Any) -> str:
        node = resolve(node) or {}
        types = {node.get("type")} | {resolve(alt).get("type") for alt in node.get("anyOf", [])}
        return "hostile-numbers" if types & {"integer", "number"} else "hostile-strings"

    bindings: dict[str, dict[str, Any]] = {}
    for operations in document["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                bindings[f"{param['in']}.{param['name']}"] = {"dictionary": kind(param.get("schema")),
                                                              "probability": HOSTILE_PROBABILITY}
            for media in operation.get("requestBody", {}).get("content", {}).values():
                body = resolve(media["schema"])
                for variant in [body, *body.get("oneOf", [])]:
                    variant = resolve(variant)
                    prefix = "body."
                    if variant.get("type") == "array":
                        variant, prefix = resolve(variant["items"]), "body.[*]."
                    for name, prop in variant.get("properties", {}).items():
                        if name.replace("-", "_").isidentifier():
                            bindings[f"{prefix}{name}"] = {"dictionary": kind(prop),
                                                           "probability": HOSTILE_PROBABILITY}
    return bindings


DOCUMENT = _document()
# Operations documented with ``security: []`` (health, metrics) are sent without credentials.
PUBLIC_PATHS = {path for path, ops in DOCUMENT["paths"].items() if all(op.get("security") == [] for op in ops.values())}
CONFIG = SchemathesisConfig.from_dict({
    "seed": SEED,
    "dictionaries": {"hostile-strings": {"values": HOSTILE_STRINGS},
                     "hostile-numbers": {"values": HOSTILE_NUMBERS}},
    "parameters": _hostile_bindings(DOCUMENT),
    "generation": {
        "mode": "all",  # valid and invalid inputs
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "with-security-parameters": False,  # the real credentials are sent by the test
    },
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
    "request-timeout": 30,
})
# Not ``schemathesis.pytest.from_fixture``: its lazy loader rewrites ``Node._nodeid``, which pytest 9 no
# longer has; a document known at collection also gives one pytest item per operation and backend.
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_served_document_is_the_one_fuzzed(schema_target: Target) -> None:
    served = schema_target.session.get(f"{schema_target.app.base_url}/openapi.json")
    assert served.status_code == 200
    assert served.json() == _document()


@schema.parametrize()
def test_openapi_conformance(case: Case, schema_target: Target) -> None:
    schema_target.aim(case)
    schema_target.call(case, schema_target.auth_headers(case.path))


# ---------------------------------------------------------------------- the answers fuzzing cannot reach
# Random inputs always carry good credentials and small bodies; the refusals for bad credentials and
# oversized bodies are checked here, once per operation, against the same document and checks.
OPERATIONS = [(method.upper(), path) for path, ops in DOCUMENT["paths"].items() for method in ops]
WITH_BODY = [(method, path) for method, path in OPERATIONS
             if "requestBody" in DOCUMENT["paths"][path][method.lower()]]
MAX_BODY = Settings().max_body_bytes


def _fixed_case(target: Target, method: str, path: str, **kwargs: Any) -> Case:
    operation = schema[path][method]
    values = {"domain": target.tenant.domain, "name": "delivered", "webhook_guid": target.kirim_guids[0],
              "webhook_id": target.mailgun_ids[0], "delivery_id": target.delivery_ids[0],
              "guid": target.kirim_guids[0], "address": "alice@example.com"}
    params = {name: values[name] for name in re.findall(r"{(\w+)}", path)}
    return operation.Case(path_parameters=params, **kwargs)


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[1] not in PUBLIC_PATHS])
def test_bad_credentials_are_documented(schema_target: Target, method: str, path: str) -> None:
    case = _fixed_case(schema_target, method, path)
    bad_key = credentials(schema_target.tenant.username, "mh_not-a-key", path)
    response = schema_target.call(case, bad_key)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
def test_oversized_body_is_documented(schema_target: Target, method: str, path: str) -> None:
    media_type = next(iter(DOCUMENT["paths"][path][method.lower()]["requestBody"]["content"]))
    body: Any = {"url": "x" * (MAX_BODY + 1)}
    case = _fixed_case(schema_target, method, path, body=body, media_type=media_type)
    response = schema_target.call(case, schema_target.auth_headers(path))
    assert response.status_code == 413
