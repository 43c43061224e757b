"""First run: an empty database gets an account and a domain, and the key is printed once."""

from __future__ import annotations

import sys

from mailhooks.config import Settings
from mailhooks.core import accounts as core_accounts
from mailhooks.core.errors import ValidationFailed
from mailhooks.db.store import Store


async def bootstrap(store: Store, settings: Settings, host: str, port: int) -> None:
    """On an empty database, create the configured account and domain and print the key with curl lines
    for ``http://host:port``; otherwise do nothing. Run by ``serve`` and ``api`` (``mailhooks.services``)."""
    if await store.count_accounts() > 0:
        return
    # Check both names before writing anything: a bad setting must not leave an account whose key
    # nobody saw (the next start would find an account and never print one).
    problems = []
    if not core_accounts.USERNAME_RE.match(settings.bootstrap_user):
        problems.append(f"MAILHOOKS_BOOTSTRAP_USER {settings.bootstrap_user!r} is not a valid username")
    try:
        domain_name = core_accounts.normalize_domain(settings.bootstrap_domain)
    except ValidationFailed as exc:
        problems.append(f"MAILHOOKS_BOOTSTRAP_DOMAIN: {exc.message}")
    if problems:
        print(f"mailhooks: first start - no account created: {'; '.join(problems)}", file=sys.stderr, flush=True)
        return
    try:
        created = await core_accounts.create_account(store, settings.bootstrap_user)
    except Exception:  # another process won the race to bootstrap
        return
    domain = await core_accounts.add_domain(store, created.account, domain_name)
    base = f"http://{host}:{port}"
    user = created.account.username
    key = created.api_key
    print(
        "\n".join([
            "",
            "mailhooks: first start - created an account and a domain.",
            f"  account:  {user}",
            f"  domain:   {domain.name}",
            f"  API key:  {key}   (shown once; `mailhooks keys create {user}` makes another)",
            "",
            "Mailgun dialect:",
            f"  curl -s --user 'api:{key}' {base}/v3/domains/{domain.name}/webhooks",
            "Kirim.Email dialect:",
            f"  curl -s --user '{user}:{key}' {base}/api/domains/{domain.name}/webhooks",
            "",
        ]),
        file=sys.stderr,
        flush=True,
    )
