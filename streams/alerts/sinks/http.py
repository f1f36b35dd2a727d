"""Shared HTTP delivery: one aiohttp session per sink, status codes mapped onto the contract.

2xx: delivered. 408, 425, 429 and 5xx, connection errors and timeouts: ``RetriableError``
(``Retry-After`` honoured). Any other status: ``PermanentDeliveryError``. The messages name
the sink and the status, never the URL's secret parts (the path of a Slack URL is a
secret: only scheme, host and port are shown).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
from consentinel.streams.events.errors import RetriableError

from .base import PermanentDeliveryError

RETRIABLE_STATUS = frozenset({408, 425, 429})


def safe_url(url: str) -> str:
    """scheme://host:port only: what may appear in a log line."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


class HttpPoster:
    """POSTs bytes to one URL; the session is created on first use (inside the loop)."""

    def __init__(self, sink: str, url: str, timeout_s: float) -> None:
        self.sink = sink
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The response text on 2xx; raises per the sink contract otherwise."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        where = safe_url(self.url)
        try:
            async with self._session.post(self.url, data=body, headers=dict(headers)) as resp:
                text = (await resp.text(errors="replace"))[:300]
                if 200 <= resp.status < 300:
                    return text
                brief = " ".join(text.split())[:200]
                if resp.status in RETRIABLE_STATUS or resp.status >= 500:
                    raise RetriableError(
                        f"sink {self.sink}: {where} answered {resp.status} ({brief or 'no body'});"
                        f" will retry",
                        retry_after(resp.headers.get("Retry-After"), 0.0),
                    )
                raise PermanentDeliveryError(
                    f"sink {self.sink}: {where} refused the notification with {resp.status} "
                    f"({brief or 'no body'}); check the sink's URL and credentials in the "
                    f"sinks file: this notification will not be retried"
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise RetriableError(
                f"sink {self.sink}: cannot reach {where} ({type(exc).__name__}); will retry",
                0.0,
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
