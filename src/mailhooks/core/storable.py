"""Text from the outside world, made storable before it reaches a database.

A receiver's response body, header values and the error texts that quote them are whatever bytes the
receiver chose to send. PostgreSQL refuses NUL in ``text`` and both drivers refuse lone surrogates
(aiohttp decodes header bytes that are not UTF-8 with ``surrogateescape``). One such value in a
batched write used to fail the whole batch, so every such value goes through ``storable_text`` once,
where the send result becomes a stored attempt: every backend then stores the same text.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"  # what undecodable bytes already become: the reader sees that something was there
# NUL (PostgreSQL text) and lone surrogates (not encodable as UTF-8, refused by asyncpg and sqlite3).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str | None, max_chars: int) -> str | None:
    """``value`` cut to ``max_chars`` code points, with NUL and lone surrogates replaced by U+FFFD.

    Other control characters are valid text in both databases and are kept (the dashboard escapes on
    output). ``None`` stays ``None``.
    """
    if value is None:
        return None
    if len(value) > max_chars:
        value = value[:max_chars]
    if value.isascii():  # the common case: one C-speed scan, no regex
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    return _UNSTORABLE.sub(REPLACEMENT, value)
