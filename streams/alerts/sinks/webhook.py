"""A generic webhook, signed: for a SOAR, a ticketing system, a home-made receiver.

``POST <url>`` with a JSON body::

    {"idempotency_key": "<incident_id>:<revision>", "kind": "opened", "link": "...",
     "notified_at": "<when the change happened, RFC 3339>", "incident": {...Incident...}}

and the headers ``Idempotency-Key`` (the same key), ``X-Consentinel-Event`` (the kind),
``X-Consentinel-Timestamp`` (Unix seconds of this attempt) and
``X-Consentinel-Signature: sha256=<hex>``: HMAC-SHA256 with the shared secret over
``<timestamp>.<raw body>``. A receiver recomputes it, compares in constant time, refuses a
timestamp older than a few minutes (replay), and deduplicates on the idempotency key:
a redelivery carries the same key and the same body, byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from consentinel.streams.events import codec
from consentinel.streams.events.settings import Secret

from .base import Notification, iso
from .http import HttpPoster

if TYPE_CHECKING:
    from ..config import Options

SIGNATURE_HEADER = "X-Consentinel-Signature"
TIMESTAMP_HEADER = "X-Consentinel-Timestamp"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes,
    body: bytes,
    timestamp: str,
    sig: str,
    now_s: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """What a receiver does: constant-time comparison and a freshness window."""
    try:
        age = abs((time.time() if now_s is None else now_s) - int(timestamp))
    except ValueError:
        return False
    if age > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), sig)


def body_of(notification: Notification) -> bytes:
    """The request body: identical on every redelivery of the same notification."""
    data: bytes = codec.dumps(
        {
            "idempotency_key": notification.idempotency_key,
            "kind": notification.kind.value,
            "link": notification.link,
            "notified_at": iso(notification.created_at_ms),
            "incident": codec.to_obj(notification.incident),
        }
    )
    return data


class WebhookSink:
    def __init__(
        self,
        name: str,
        url: str,
        secret: Secret,
        timeout_s: float = 10.0,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._secret = secret
        self._clock_s = clock_s
        self._http = HttpPoster(name, url, timeout_s)

    async def deliver(self, notification: Notification) -> None:
        body = body_of(notification)
        ts = str(int(self._clock_s()))
        await self._http.post(
            body,
            {
                "Content-Type": "application/json",
                "Idempotency-Key": notification.idempotency_key,
                "X-Consentinel-Event": notification.kind.value,
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: signature(self._secret.reveal(), ts, body),
            },
        )

    async def close(self) -> None:
        await self._http.close()


def from_options(name: str, opts: Options) -> WebhookSink:
    url = opts.url("url", secret_ok=True)
    secret = opts.secret("secret")
    if secret is not None and 0 < len(secret.reveal()) < 16:
        opts.problem("'secret' is shorter than 16 bytes; make a longer one")
    return WebhookSink(
        name,
        url,
        secret or Secret(b""),
        timeout_s=opts.number("timeout_seconds", 10.0, 0.5, 300.0),
    )
