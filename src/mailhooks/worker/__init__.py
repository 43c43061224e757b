"""Delivery: the HTTP sender and the dispatcher loop that drains the outbox."""
