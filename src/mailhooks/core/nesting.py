"""How deeply a JSON document taken from a client may nest: the one rule every JSON body obeys.

Why a limit at all: orjson parses 1,024 levels but writes at most 254, and what we accept is written
again later (stored, then wrapped in list pages, delivery bodies, the dashboard). A document under
``MAX_DEPTH`` stays far below the writer's limit whatever wrapping comes on top, so everything accepted
can be served. Real event data nests a handful of levels.
"""

from __future__ import annotations

from typing import Any

# Counted over the whole body: ``{}`` and ``[]`` are depth 1, ``[{"a": {}}]`` is depth 3.
MAX_DEPTH = 32

TOO_DEEP = f"The body may not nest deeper than {MAX_DEPTH} levels of objects and arrays."

Path = tuple[str | int, ...]


def too_deep(document: Any, max_depth: int = MAX_DEPTH) -> Path | None:
    """The path to the first object or array nested deeper than ``max_depth``, or ``None`` when none is.

    Iterative, so that a document nested as deep as the parser allows cannot exhaust Python's stack."""
    stack: list[tuple[Any, int, Path]] = [(document, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict):
            children = value.items()
        elif isinstance(value, list):
            children = enumerate(value)  # type: ignore[assignment]
        else:
            continue
        if depth > max_depth:
            return path
        stack.extend((child, depth + 1, (*path, key)) for key, child in children
                     if isinstance(child, dict | list))
    return None


def is_recursion_error(message: str) -> bool:
    """orjson's own refusal of a document deeper than it parses (1,024 levels) reads like this
    ("depth limit exceeded" today, "recursion limit" in older releases)."""
    lowered = message.lower()
    return "depth limit" in lowered or "recursion" in lowered
