"""The server starts on each backend, answers health checks, and serves OpenAPI and docs."""

from __future__ import annotations

import re

import httpx

from tests.support import Provisioner, ServerProcess


def test_health_and_docs(server: ServerProcess) -> None:
    health = httpx.get(f"{server.base_url}/healthz")
    assert health.status_code == 200
    assert health.json()["database"] == "ok"
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    assert "/v3/domains/{domain}/webhooks" in spec["paths"]
    assert "/api/domains/{domain}/webhooks/{webhook_guid}" in spec["paths"]
    docs = httpx.get(f"{server.base_url}/docs")
    assert docs.status_code == 200
    # Swagger UI comes from this server, not a CDN: every referenced URL is a path here, and answers
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", docs.text)
    assert len(referenced) >= 3 and "//" not in docs.text.replace("<!--", "").split("<body>", 1)[0]
    for url in referenced:
        assert url.startswith("/docs/assets/"), url
        assert httpx.get(f"{server.base_url}{url}").status_code == 200
    assert '"validatorUrl": null' in docs.text


def test_signing_key_native(server: ServerProcess, provision: Provisioner) -> None:
    tenant = provision.tenant()
    r = httpx.get(f"{server.base_url}/v1/signing-key", headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert r.status_code == 200
    assert r.json()["http_signing_key"] == tenant.signing_key
    assert r.json()["whsec"].startswith("whsec_")
    assert httpx.get(f"{server.base_url}/v1/signing-key", auth=("api", "nope")).status_code == 401
