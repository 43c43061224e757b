"""OpenAPI declarations of Mailgun's suppressions API (bounces, unsubscribes, complaints)."""

from __future__ import annotations

from typing import Any

from mailhooks.api.openapi.mailgun import responses
from mailhooks.core.suppressions import SuppressionKind

__all__ = ["ADD_BODY", "LIST_QUERY", "SCHEMAS", "responses"]


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


LIST_QUERY = {"parameters": [
    _query("limit", "Entries per page (1-1000, default 100)", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _query("page", "first, last, next or previous (with address)",
           {"type": "string", "enum": ["first", "last", "next", "previous"]}),
    _query("address", "The page's boundary address (from the paging links)", {"type": "string", "maxLength": 254}),
]}

_DATE = {"type": "string", "description": "RFC 2822, e.g. 'Fri, 21 Oct 2011 11:02:55 UTC'"}
_FORMS: dict[SuppressionKind, dict[str, Any]] = {
    SuppressionKind.BOUNCE: {"address": {"type": "string"}, "code": {"type": "string"}, "error": {"type": "string"},
                             "created_at": _DATE},
    SuppressionKind.UNSUBSCRIBE: {"address": {"type": "string"}, "tag": {"type": "string"}, "created_at": _DATE},
    SuppressionKind.COMPLAINT: {"address": {"type": "string"}, "created_at": _DATE},
}


def _body(kind: SuppressionKind) -> dict[str, Any]:
    one = {"type": "object", "properties": _FORMS[kind], "required": ["address"]}
    many = {"type": "array", "maxItems": 1000, "items": one}
    return {"requestBody": {"content": {
        "application/x-www-form-urlencoded": {"schema": one},
        "multipart/form-data": {"schema": one},
        "application/json": {"schema": many},
    }}}


ADD_BODY = {kind: _body(kind) for kind in SuppressionKind}


def _entry(kind: SuppressionKind) -> dict[str, Any]:
    props: dict[str, Any] = {"address": {"type": "string"}, "created_at": {"type": "string"}}
    if kind is SuppressionKind.BOUNCE:
        props |= {"code": {"type": "string"}, "error": {"type": "string"}}
    if kind is SuppressionKind.UNSUBSCRIBE:
        props["tags"] = {"type": "array", "items": {"type": "string"}}
    return {"type": "object", "properties": props, "required": ["address", "created_at"]}


_PAGING = {"type": "object", "properties": {k: {"type": "string"} for k in ("first", "last", "next", "previous")}}

SCHEMAS: dict[str, Any] = {
    "MailgunSuppressionAdded": {"type": "object", "properties": {"message": {"type": "string"},
                                                                 "address": {"type": "string"}},
                                "required": ["message"]},
    "MailgunSuppressionRemoved": {"type": "object", "properties": {"message": {"type": "string"},
                                                                   "address": {"type": "string"}},
                                  "required": ["message", "address"]},
}
for _kind in SuppressionKind:
    _name = f"Mailgun{_kind.value.capitalize()}"
    SCHEMAS[_name] = _entry(_kind)
    SCHEMAS[f"{_name}List"] = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{_name}"}}, "paging": _PAGING},
        "required": ["items", "paging"]}
