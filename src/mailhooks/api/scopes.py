"""Which scope each route needs, declared on the route itself.

Every handler carries one ``@requires(Need.…)`` line right under its route decorator; the dashboard's
routers are declared as a whole (``declare_router``), and a few framework paths (the OpenAPI document,
static files) are listed in ``PUBLIC_PATHS``. The authentication dependencies (``api/auth.py``) read the
declaration of the handler being called; a handler without one is treated as ``Need.ADMIN``, so that
a route added without thought is closed to every narrower key, and ``tests/test_scoped_keys.py`` walks
every route of the app and fails on any that is not declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter

from mailhooks.core.scopes import Need

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "__mailhooks_need__"
# Served by the framework or as static files, not by a handler of ours: no key.
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs/assets", "/ui/static"})


def requires(need: Need) -> Callable[[F], F]:
    """Declare what the decorated handler needs of the caller's key. Put it under ``@router.<method>``."""

    def declare(handler: F) -> F:
        setattr(handler, ATTRIBUTE, need)
        return handler

    return declare


def need_of(handler: object) -> Need | None:
    """The declared need of ``handler``, ``None`` when it declares none."""
    need = getattr(handler, ATTRIBUTE, None)
    return need if isinstance(need, Need) else None


def declare_router(router: APIRouter, need: Need) -> None:
    """Declare ``need`` for every handler of ``router`` that declares nothing itself."""
    for route in router.routes:
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None and need_of(endpoint) is None:
            requires(need)(endpoint)
