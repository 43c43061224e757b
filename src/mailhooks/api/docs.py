"""``/docs``: Swagger UI served from this process, nothing loaded from a CDN.

FastAPI's default page pulls Swagger UI's script and stylesheet from a CDN at every visit (a third
party sees who reads the docs, and can change what runs in their browser). The same assets come here
from the ``fastapi-offline`` package, pinned in pyproject.toml, under ``/docs/assets``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from mailhooks.api.scopes import requires
from mailhooks.core.scopes import Need

DOCS = "/docs"
ASSETS = f"{DOCS}/assets"


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to ``app`` (built with ``docs_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    @requires(Need.PUBLIC)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # Swagger UI would otherwise send the document to its public validator for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
