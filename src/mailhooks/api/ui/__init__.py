"""The web dashboard at ``/ui``: server-rendered pages over the same core and storage functions as the APIs.

Thin, like every edge: subscription rules come from ``core.webhooks``, retry/recover/re-enable from
``db.deliveries``, keys from ``core.accounts``, test sends from ``api.samples``; the dashboard's own read queries
live in ``db.dashboard``.

One module per page: ``login`` (sign in/out), ``overview``, ``domains`` (a domain and its webhooks),
``account_webhooks``, ``sources`` (intake sources), ``deliveries`` (the list, recover), ``delivery`` (one
delivery, retry), ``replays`` (start one, see progress), ``settings`` (signing key, API keys, alerts),
``subscription_settings`` (one subscription's headers, filters, timeout, retries), ``audit`` (the audit log).

Shared: ``session`` (sessions and CSRF as FastAPI dependencies), ``deps`` (the one
place that reaches the services), ``rendering`` (templates, flash messages), ``errors`` (error pages),
``inputs`` (reading query, path and form values), ``chart`` (the overview's SVG geometry), ``formatting``,
``signing``, ``samples`` (test sends) and ``site`` (prefix, headers, cookies).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from mailhooks.api.scopes import declare_router
from mailhooks.api.ui import (
    account_webhooks,
    audit,
    deliveries,
    delivery,
    domains,
    login,
    overview,
    replays,
    settings,
    sources,
    subscription_settings,
)
from mailhooks.api.ui.errors import html_error
from mailhooks.api.ui.rendering import PACKAGE, render
from mailhooks.api.ui.session import BadCsrf, SignInRequired
from mailhooks.api.ui.site import PREFIX, is_ui_path
from mailhooks.core.scopes import Need

__all__ = ["PREFIX", "html_error", "install", "is_ui_path", "render"]

PAGES = (login, overview, domains, account_webhooks, sources, deliveries, delivery, replays, settings,
         subscription_settings, audit)


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and its sign-in redirect to ``app``."""
    for page in PAGES:
        declare_router(page.router, Need.DASHBOARD)  # a session opened with an admin key (ui/login.py)
        app.include_router(page.router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(PACKAGE / "static")), name="ui-static")
    app.add_exception_handler(SignInRequired, html_error)
    app.add_exception_handler(BadCsrf, html_error)
