"""The served ``/openapi.json``: FastAPI's document of the routes plus every dialect's schemas.

The declarations live beside each other here (``mailgun``, ``kirim``, ``native``), out of the handler
modules; the routes cite them by name.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from mailhooks.api.openapi import (
    audit,
    kirim,
    mailgun,
    native,
    operational,
    replays,
    signing_key,
    sources,
    subscriptions,
    suppressions,
)


def install_openapi(app: FastAPI) -> None:
    """Serve the document built from ``app``'s routes, with the schemas and security schemes (once, cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(mailgun.SCHEMAS)
        schemas.update(kirim.SCHEMAS)
        schemas.update(native.SCHEMAS)
        schemas.update(subscriptions.SCHEMAS)
        schemas.update(suppressions.SCHEMAS)
        schemas.update(signing_key.SCHEMAS)
        schemas.update(audit.SCHEMAS)
        schemas.update(operational.SCHEMAS)
        schemas.update(replays.SCHEMAS)
        schemas.update(sources.SCHEMAS)
        components["securitySchemes"] = {"basicAuth": {"type": "http", "scheme": "basic"},
                                         "bearerAuth": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"basicAuth": []}, {"bearerAuth": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
