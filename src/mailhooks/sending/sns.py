"""Fetching what Amazon SNS names in its messages: signing certificates (cached) and subscription
confirmations, for the SES intake source (``core.sources.ses`` decides which URLs may be fetched).

A plain aiohttp GET per fetch, no redirects followed, a 5-second deadline and a 64 KiB cap: a certificate
is fetched once per URL and process, a confirmation once per subscription.
"""

from __future__ import annotations

from collections import OrderedDict

import aiohttp

from mailhooks.core.sources.base import Outside, Rejection, SourceRejected

MAX_BYTES = 64 * 1024
TIMEOUT = 5.0


class SnsFetcher:
    def __init__(self, extra_hosts: tuple[str, ...] = (), cache_size: int = 64) -> None:
        self.extra_hosts = extra_hosts
        self.cache_size = cache_size
        self._certificates: OrderedDict[str, bytes] = OrderedDict()

    def outside(self) -> Outside:
        return Outside(self.fetch, self.extra_hosts)

    async def fetch(self, url: str) -> bytes:
        cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session, \
                    session.get(url, allow_redirects=False) as response:
                body = await response.content.read(MAX_BYTES)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceRejected(Rejection.CERTIFICATE, "Amazon SNS could not be reached; try again.") from exc
        if status != 200:
            raise SourceRejected(Rejection.CERTIFICATE, f"Amazon SNS answered {status}; try again.")
        if url.endswith(".pem"):
            self._certificates[url] = body
            while len(self._certificates) > self.cache_size:
                self._certificates.popitem(last=False)
        return body
