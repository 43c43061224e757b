"""Faults staged for real, for the tests and for ``make chaos``: a PostgreSQL cluster of our own that is
stopped and started, a Redis of our own that is frozen with SIGSTOP, a resolver we control inside a
private mount namespace, receivers that answer hostile bytes. Nothing here mocks our own code."""
