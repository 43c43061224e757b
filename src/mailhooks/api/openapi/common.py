"""What the dialects' OpenAPI declarations share."""

from __future__ import annotations

from typing import Any


def openapi_json(schema: str, description: str = "OK") -> dict[str, Any]:
    """An OpenAPI response object whose JSON body is ``#/components/schemas/{schema}``."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}
