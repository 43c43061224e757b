"""OpenAPI declarations of ``/v1/replays`` (``api/replays.py``)."""

from __future__ import annotations

from typing import Any

from mailhooks.core.replays import MAX_TIME, ReplayScope, ReplayState

_TIME = {"type": "number", "minimum": 0, "maximum": MAX_TIME, "description": "epoch seconds (time received)"}
_NULLABLE_TIME = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS: dict[str, Any] = {
    "ReplayIn": {
        "type": "object",
        "properties": {
            "domain": {"type": "string", "maxLength": 253},
            "since": _TIME,
            "until": {**_TIME, "description": "epoch seconds, exclusive; open-ended when absent"},
            "status": {"type": "string", "enum": [s.value for s in ReplayScope],
                       "description": "failed: only deliveries that gave up; all: every one (a back-fill: all)"},
            "webhook": {"type": "string", "maxLength": 64, "description": "only this subscription's deliveries"},
            "to_webhook": {"type": "string", "maxLength": 64,
                           "description": "back-fill: the range's events as new deliveries to this subscription"},
        },
        "required": ["domain", "since", "status"],
        "additionalProperties": False,
    },
    "ReplayStarted": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    "Replay": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "domain": {"type": "string"}, "since": {"type": "number"},
            "until": _NULLABLE_TIME, "status": {"type": "string", "enum": [s.value for s in ReplayScope]},
            "webhook": _NULLABLE_STRING, "to_webhook": _NULLABLE_STRING,
            "state": {"type": "string", "enum": [s.value for s in ReplayState]},
            "matched": {**_NULLABLE_INT, "description": "rows of the range, counted when a worker starts it"},
            "queued": {"type": "integer", "description": "deliveries queued (or, back-filling, created) so far"},
            "skipped": {"type": "integer",
                        "description": "in flight at their turn, or events the target subscription already had"},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "error": _NULLABLE_STRING, "created_at": {"type": "number"}, "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME, "updated_at": {"type": "number"},
        },
        "required": ["id", "domain", "since", "until", "status", "webhook", "to_webhook", "state", "matched",
                     "queued", "skipped", "progress", "error", "created_at", "started_at", "finished_at",
                     "updated_at"],
    },
}

REPLAY_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ReplayIn"}}}}}
