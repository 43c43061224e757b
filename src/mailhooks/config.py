"""Runtime settings, read once from ``MAILHOOKS_*`` environment variables.

The names are part of the public contract (see README): keep them stable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_RETRY_SCHEDULE = (300.0, 600.0, 900.0, 3600.0, 7200.0, 14400.0)


class HttpClient(StrEnum):
    """The HTTP client under the sender (``mailhooks.sending``): both keep the same SSRF guarantees."""

    AIOHTTP = "aiohttp"  # header names sent as written
    # pyreqwest: about half of aiohttp's CPU per delivery (docs/benchmarks.md); header names sent in
    # lower case (hyper cannot keep the case as written), as HTTP/2 always sends them
    REQWEST = "reqwest"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _schedule(value: str | None) -> tuple[float, ...]:
    if not value:
        return DEFAULT_RETRY_SCHEDULE
    return tuple(float(part) for part in value.split(",") if part.strip())


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(name: str, value: str | None, default: float) -> float:
    """Seconds (``86400``, ``0.5``) or a duration (``24h``, ``90m``, ``1h30m``, ``2d``)."""
    text = (value or "").strip().lower()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"{name}={value!r}: give seconds (86400) or a duration (24h, 90m, 1h30m, 2d)") from None
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    if seconds < 0:
        raise ValueError(f"{name}={value!r}: a duration cannot be negative")
    return seconds


def _cidrs(value: str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not value:
        return ()
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./mailhooks.db"
    redis_url: str | None = None
    allow_private_targets: bool = False
    allowed_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    delivery_timeout: float = 10.0
    http_client: HttpClient = HttpClient.REQWEST
    rate_limit: str = "300/minute"
    ingest_rate_limit: str = "5000/second"
    auth_failure_limit: str = "30/minute"
    database_timeout: float = 30.0
    retention_days: float = 30.0
    bootstrap_user: str = "admin"
    bootstrap_domain: str = "example.test"
    max_body_bytes: int = 1024 * 1024
    worker_batch_size: int = 200
    worker_concurrency: int = 256
    per_url_concurrency: int = 32
    lease_seconds: float = 60.0
    poll_interval: float = 0.5
    disable_after_seconds: float = 5 * 24 * 3600.0
    header_timeout: float = 10.0  # seconds for a request head to arrive whole (slowloris)
    replay_batch_size: int = 100  # rows per replay batch (the due backlog a replay may add ahead of live work)
    replay_rate: float = 1000.0  # rows per second one replay queues at most
    session_secret: str | None = None  # signs /ui cookies; unset: random per process (sessions end with it)
    signing_key_overlap: float = 24 * 3600.0  # seconds the previous signing key still signs after a rotation
    smtp_url: str | None = None  # smtp://[user:password@]host[:port] or smtps://…; unset: no email alerts
    alert_from: str = "mailhooks@localhost"
    alert_interval: float = 3600.0  # at most one alert email per subscription this often; the rest in a digest
    # host[:port] besides Amazon's sns.<region>.amazonaws.com that SNS certificate and subscription URLs may
    # name, over http too: for tests against a loopback stand-in only.
    sns_cert_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        get = env.get
        return cls(
            database_url=get("MAILHOOKS_DATABASE_URL") or cls.database_url,
            redis_url=get("MAILHOOKS_REDIS_URL") or None,
            allow_private_targets=_flag(get("MAILHOOKS_ALLOW_PRIVATE_TARGETS")),
            allowed_cidrs=_cidrs(get("MAILHOOKS_ALLOWED_CIDRS")),
            retry_schedule=_schedule(get("MAILHOOKS_RETRY_SCHEDULE")),
            delivery_timeout=float(get("MAILHOOKS_DELIVERY_TIMEOUT") or 10.0),
            http_client=HttpClient((get("MAILHOOKS_HTTP_CLIENT") or cls.http_client).strip().lower()),
            rate_limit=get("MAILHOOKS_RATE_LIMIT") or cls.rate_limit,
            ingest_rate_limit=get("MAILHOOKS_INGEST_RATE_LIMIT") or cls.ingest_rate_limit,
            auth_failure_limit=get("MAILHOOKS_AUTH_FAILURE_LIMIT") or cls.auth_failure_limit,
            database_timeout=float(get("MAILHOOKS_DATABASE_TIMEOUT") or 30.0),
            retention_days=float(get("MAILHOOKS_RETENTION_DAYS") or 30.0),
            bootstrap_user=get("MAILHOOKS_BOOTSTRAP_USER") or cls.bootstrap_user,
            bootstrap_domain=get("MAILHOOKS_BOOTSTRAP_DOMAIN") or cls.bootstrap_domain,
            worker_batch_size=int(get("MAILHOOKS_WORKER_BATCH") or 200),
            worker_concurrency=int(get("MAILHOOKS_WORKER_CONCURRENCY") or 256),
            per_url_concurrency=int(get("MAILHOOKS_PER_URL_CONCURRENCY") or 32),
            lease_seconds=float(get("MAILHOOKS_LEASE_SECONDS") or 60.0),
            poll_interval=float(get("MAILHOOKS_POLL_INTERVAL") or 0.5),
            disable_after_seconds=float(get("MAILHOOKS_DISABLE_AFTER_SECONDS") or 5 * 24 * 3600.0),
            header_timeout=float(get("MAILHOOKS_HEADER_TIMEOUT") or 10.0),
            replay_batch_size=int(get("MAILHOOKS_REPLAY_BATCH") or 100),
            replay_rate=float(get("MAILHOOKS_REPLAY_RATE") or 1000.0),
            session_secret=get("MAILHOOKS_SESSION_SECRET") or None,
            signing_key_overlap=_duration("MAILHOOKS_SIGNING_KEY_OVERLAP", get("MAILHOOKS_SIGNING_KEY_OVERLAP"),
                                          24 * 3600.0),
            smtp_url=get("MAILHOOKS_SMTP_URL") or None,
            alert_from=get("MAILHOOKS_ALERT_FROM") or cls.alert_from,
            alert_interval=float(get("MAILHOOKS_ALERT_INTERVAL") or 3600.0),
            sns_cert_hosts=tuple(h.strip().lower() for h in (get("MAILHOOKS_SNS_CERT_HOSTS") or "").split(",")
                                 if h.strip()),
        )
