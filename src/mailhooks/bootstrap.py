"""First run: an empty database gets an account and a domain, and the key is printed once."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from mailhooks.api.state import Services
from mailhooks.core import accounts as core_accounts


def bootstrap_hook(host: str, port: int) -> Callable[[Services], Awaitable[None]]:
    async def hook(svc: Services) -> None:
        store = svc.store
        if await store.count_accounts() > 0:
            return
        settings = svc.settings
        try:
            created = await core_accounts.create_account(store, settings.bootstrap_user)
        except Exception:  # another process won the race to bootstrap
            return
        domain = await core_accounts.add_domain(store, created.account, settings.bootstrap_domain)
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

    return hook
