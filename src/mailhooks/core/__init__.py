"""Domain logic: no HTTP framework, no SQL and no import of any other mailhooks package but ``config``.

Storage is reached through the small ``typing.Protocol``s core declares (``core.ports``,
``core.events.EventOutbox``), which the ``db`` package satisfies.
"""
