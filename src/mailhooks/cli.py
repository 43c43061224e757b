"""The ``mailhooks`` command line (README.md#command-line: keep the commands and their output stable)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from mailhooks.config import Settings
from mailhooks.core import accounts as core_accounts
from mailhooks.core.audit import CLI_ACTOR, acting_as
from mailhooks.core.errors import CoreError
from mailhooks.core.operational import check_alert_email
from mailhooks.core.scopes import Scope, parse_scope
from mailhooks.db.migrate import upgrade
from mailhooks.db.operational_webhooks import OperationalWebhooks
from mailhooks.db.store import Store
from mailhooks.logs import configure_logging

app = typer.Typer(help="Self-hosted webhooks for email senders.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
domains_app = typer.Typer(help="Sending domains.", no_args_is_help=True)
events_app = typer.Typer(help="Events.", no_args_is_help=True)
sources_app = typer.Typer(help="Intake sources: a mail platform's own webhooks into a domain.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(domains_app, name="domains")
app.add_typer(events_app, name="events")
app.add_typer(sources_app, name="sources")

T = TypeVar("T")


def _settings() -> Settings:
    return Settings.from_env()


def _with_store(work: Callable[[Store], Awaitable[T]], migrate: bool = True) -> T:
    settings = _settings()
    if migrate:
        upgrade(settings.database_url)

    async def runner() -> T:
        acting_as(CLI_ACTOR)  # the audit log names the command line as the actor of what it changes
        store = Store(settings.database_url)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(runner())
    except CoreError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def _print(data: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data) if as_json else text)


def _run_server(host: str, port: int, dispatcher: bool) -> None:
    import uvicorn

    from mailhooks.services import web_app
    from mailhooks.serving import uvicorn_config

    settings = _settings()
    upgrade(settings.database_url)
    application = web_app(settings, dispatcher=dispatcher, bootstrap_at=(host, port))
    uvicorn.Server(uvicorn_config(application, host, port, settings.header_timeout)).run()


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to bind."),
          port: int = typer.Option(8000, help="Port to bind.")) -> None:
    """API and dispatcher in one process; migrates the database first."""
    configure_logging()
    _run_server(host, port, dispatcher=True)


@app.command()
def api(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000)) -> None:
    """The API alone (run ``mailhooks worker`` processes beside it)."""
    configure_logging()
    _run_server(host, port, dispatcher=False)


@app.command()
def worker() -> None:
    """The dispatcher alone: claims due deliveries and sends them. Run as many as you like on PostgreSQL."""
    configure_logging()
    from mailhooks.services import run_worker

    settings = _settings()
    upgrade(settings.database_url)
    run_worker(settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply migrations."""
    upgrade(_settings().database_url)
    typer.echo("database is up to date")


@accounts_app.command("create")
def accounts_create(username: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Create an account and print its first API key (shown once)."""
    created = _with_store(lambda store: core_accounts.create_account(store, username))
    data = {"username": created.account.username, "account_guid": created.account.guid, "api_key": created.api_key}
    _print(data, as_json, f"account {username} created\napi key (shown once): {created.api_key}")


@accounts_app.command("alerts")
def accounts_alerts(username: str,
                    email: str = typer.Option(None, "--email", help="Mail this account's operational events here."),
                    clear: bool = typer.Option(False, "--clear", help="Mail them nowhere."),
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Show or set the address an account's operational events are mailed to (needs MAILHOOKS_SMTP_URL)."""

    async def work(store: Store) -> str | None:
        account = await store.get_account_by_username(username)
        if account is None:
            raise CoreError(f"no account {username!r}")
        alerts = OperationalWebhooks(store)
        if clear or email is not None:
            await alerts.set_alert_email(account.id, None if clear else check_alert_email(email))
        return await alerts.alert_email(account.id)

    address = _with_store(work)
    _print({"username": username, "email": address}, as_json, f"alerts of {username}: {address or 'none'}")


@keys_app.command("create")
def keys_create(username: str, as_json: bool = typer.Option(False, "--json"),
                scope: str = typer.Option("admin", "--scope", help="admin | manage | ingest | read"),
                domain: str | None = typer.Option(None, "--domain", help="Limit the key to this domain.")) -> None:
    """Create another API key for an account (shown once), optionally with a narrower scope or one domain."""
    parsed = parse_scope(scope)
    if parsed is None:
        typer.echo(f"error: --scope must be one of {', '.join(Scope)}", err=True)
        raise typer.Exit(2)

    async def work(store: Store) -> str:
        account = await store.get_account_by_username(username)
        if account is None:
            raise CoreError(f"no account {username!r}")
        return await core_accounts.create_api_key(store, account, parsed, domain)

    key = _with_store(work)
    _print({"username": username, "api_key": key, "prefix": key[:core_accounts.KEY_PREFIX_LENGTH],
            "scope": str(parsed), "domain": domain and core_accounts.normalize_domain(domain)}, as_json,
           f"api key (shown once): {key}")


@keys_app.command("list")
def keys_list(username: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """List an account's keys by prefix (the keys themselves are not stored)."""

    async def work(store: Store) -> list[dict[str, Any]]:
        account = await store.get_account_by_username(username)
        if account is None:
            raise CoreError(f"no account {username!r}")
        return [{"prefix": k.prefix, "scope": k.scope, "domain": k.domain, "created_at": k.created_at,
                 "last_used_at": k.last_used_at, "revoked": k.revoked_at is not None}
                for k in await store.list_api_keys(account.id)]

    keys = _with_store(work)
    if as_json:
        typer.echo(json.dumps(keys))
    else:
        for key in keys:
            where = f" {key['domain']}" if key["domain"] else ""
            typer.echo(f"{key['prefix']}…  {key['scope']}{where}  {'revoked' if key['revoked'] else 'active'}")


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke the key(s) starting with PREFIX (as shown by ``keys list``)."""
    count = _with_store(lambda store: store.revoke_api_key(prefix.rstrip("…")))
    if not count:
        typer.echo(f"error: no active key with prefix {prefix!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {count} key(s)")


@domains_app.command("add")
def domains_add(domain: str, account: str = typer.Option(..., "--account", help="Owning account's username."),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Add a sending domain to an account."""

    async def work(store: Store) -> Any:
        owner = await store.get_account_by_username(account)
        if owner is None:
            raise CoreError(f"no account {account!r}")
        return await core_accounts.add_domain(store, owner, domain)

    added = _with_store(work)
    data = {"domain": added.name, "domain_guid": added.guid, "secret": added.secret}
    _print(data, as_json, f"domain {added.name} added (guid {added.guid})\nsigning secret: {added.secret}")


@domains_app.command("list")
def domains_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List domains with their owners."""

    async def work(store: Store) -> list[dict[str, Any]]:
        owners = {}
        out = []
        for dom in await store.list_domains():
            if dom.account_id not in owners:
                owner = await store.get_account(dom.account_id)
                owners[dom.account_id] = owner.username if owner else "?"
            out.append({"domain": dom.name, "domain_guid": dom.guid, "account": owners[dom.account_id]})
        return out

    rows = _with_store(work)
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        for row in rows:
            typer.echo(f"{row['domain']}  {row['account']}  {row['domain_guid']}")


@events_app.command("emit")
def events_emit(
    domain: str,
    event: str,
    recipient: str = typer.Option(..., "--recipient", help="Recipient address."),
    event_id: str | None = typer.Option(None, "--id", help="Event id (idempotency key); generated if omitted."),
    data: str | None = typer.Option(None, "--data", help="Extra event-data fields as a JSON object."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Ingest one event for DOMAIN as its owning account (same rules as ``POST /v1/events``)."""
    from mailhooks.core.events import Intake
    from mailhooks.db.intake import IntakeStore

    try:
        item: dict[str, Any] = json.loads(data) if data else {}
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's parser goes
        item = None  # type: ignore[assignment]
    if not isinstance(item, dict):
        typer.echo("error: --data must be a JSON object", err=True)
        raise typer.Exit(2)
    item.update({"domain": domain, "event": event, "recipient": recipient})
    if event_id is not None:
        item["id"] = event_id

    async def work(store: Store) -> tuple[str, bool]:
        owned = await store.get_domain_by_name(domain.strip().lower())
        if owned is None:
            raise CoreError(f"no domain {domain!r}")
        owner = await store.get_account(owned.account_id)
        assert owner is not None
        ids, _many, new = await Intake(store, IntakeStore(store)).ingest(owner, item)
        return ids[0], bool(new)

    emitted, new = _with_store(work)
    _print({"id": emitted, "ids": [emitted], "new": new}, as_json,
           f"event {emitted} {'accepted' if new else 'already known (not delivered again)'}")


@sources_app.command("create")
def sources_create(
    username: str,
    provider: str = typer.Option(..., "--provider", help="mailgun, sendgrid, postmark, kumomta, postal or ses."),
    domain: str = typer.Option(..., "--domain", help="The account's domain the events belong to."),
    signing_key: str | None = typer.Option(None, "--signing-key", help="mailgun: the domain's webhook signing key."),
    public_key: str | None = typer.Option(None, "--public-key", help="sendgrid, postal: the provider's public key."),
    topic_arn: str | None = typer.Option(None, "--topic-arn", help="ses: the SNS topic SES publishes to."),
    base_url: str = typer.Option("http://127.0.0.1:8000", "--base-url",
                                 help="Where the provider reaches mailhooks (the intake URL starts with it)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an intake source for USERNAME's DOMAIN; prints what to enter at the provider (credentials once)."""
    from mailhooks.core.events import Intake
    from mailhooks.core.sources.service import Sources
    from mailhooks.db.intake import IntakeStore
    from mailhooks.db.sources import SourceStore

    given = {"provider": provider, "domain": domain, "signing_key": signing_key, "public_key": public_key,
             "topic_arn": topic_arn}

    async def work(store: Store) -> dict[str, Any]:
        owner = await store.get_account_by_username(username)
        if owner is None:
            raise CoreError(f"no account {username!r}")
        sources = Sources(SourceStore(store), Intake(store, IntakeStore(store)))
        return await sources.create(owner, {k: v for k, v in given.items() if v is not None}, base_url)

    created = _with_store(work)  # a bad provider or key, or a foreign domain: "error: …", exit 1
    setup = created["setup"]
    _print(created, as_json, f"source {created['guid']} ({created['provider']}, {created['domain']})\n"
                             f"provider webhook URL: {setup['url']}\n{setup['instructions']}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
