"""What the ingest server lets one client hold: sizes, bytes at once, time, log lines.

Sizes derive from the producer's largest record (``max_request_size``, which must not
exceed the brokers' ``message.max.bytes``): the largest accepted body is what still fits,
sealed (AES-GCM, base64: 4 bytes for 3, plus nonce and tag) in a dead letter with its
envelope. So every body the server accepts can be written, as events or as a dead
letter, and every larger one is refused with 413 before it is read.

    limits = Limits.for_record(1024 * 1024)    # body limit 783,332 bytes
    budget = ByteBudget(limits.inflight_bytes)
    if await budget.acquire(n, limits.busy_wait_s): ...; budget.release(n)

Slow clients: a connection that has not sent its headers within ``header_timeout_s`` is
closed (aiohttp's idle timer, which also runs before the first request); a body not
received within ``body_timeout_s`` is answered 408 and the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from consentinel.streams.events import metrics

#: the dead letter around a sealed body: reason, attributes, ids, JSON keys, batch header
ENVELOPE = 4096
#: AES-GCM nonce and tag around the sealed payload
SEAL_OVERHEAD = 28


def body_limit(max_record: int) -> int:
    """The largest body whose sealed dead letter still fits in ``max_record`` bytes."""
    return max(1024, (max_record - ENVELOPE) * 3 // 4 - SEAL_OVERHEAD)


@dataclass(frozen=True, slots=True)
class Limits:
    """The ingest server's bounds on one request and on all of them at once."""

    max_record: int = 1024 * 1024
    max_body: int = body_limit(1024 * 1024)
    inflight_bytes: int = 8 * body_limit(1024 * 1024)
    busy_wait_s: float = 2.0
    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    verify_threads: int = 4

    @classmethod
    def for_record(cls, max_record: int, max_body: int | None = None, **kw: float) -> Limits:
        """Limits for a producer whose largest record is ``max_record`` bytes.

        ``max_body`` lowers the derived body limit; it is never raised above it (what is
        accepted must be writable). ``inflight_bytes`` defaults to eight bodies.
        """
        derived = body_limit(max_record)
        body = derived if max_body is None else min(max_body, derived)
        inflight = int(kw.pop("inflight_bytes", 8 * body))
        return cls(max_record=max_record, max_body=body, inflight_bytes=inflight, **kw)  # type: ignore[arg-type]


class ByteBudget:
    """Bytes of request bodies held at once; a request waits briefly for its share."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._changed = asyncio.Condition()

    async def acquire(self, n: int, wait_s: float) -> bool:
        """Reserve ``n`` bytes; False when they did not free up within ``wait_s`` seconds.

        A request larger than the whole budget gets it when nothing else is held.
        """
        async with self._changed:
            try:
                async with asyncio.timeout(wait_s):
                    await self._changed.wait_for(
                        lambda: self.held == 0 or self.held + n <= self.limit
                    )
            except TimeoutError:
                return False
            self.held += n
            metrics.INGEST_BODY_BYTES_IN_FLIGHT.set(self.held)
            return True

    async def release(self, n: int) -> None:
        async with self._changed:
            self.held -= n
            metrics.INGEST_BODY_BYTES_IN_FLIGHT.set(self.held)
            self._changed.notify_all()


class _NoRequestText(logging.Filter):
    """aiohttp logs a protocol error with its exception, whose text quotes the request line
    and may quote the body (an address could be in it): keep the exception's type only."""

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "error"
        record.msg = "ingest http: a request could not be handled (%s); request not logged"
        record.args = (kind,)
        record.exc_info = None
        record.exc_text = None
        return True


def protocol_logger() -> logging.Logger:
    """The logger aiohttp's server gets: its lines never carry a request line or body."""
    logger = logging.getLogger("consentinel.ingest.http")
    if not any(isinstance(f, _NoRequestText) for f in logger.filters):
        logger.addFilter(_NoRequestText())
    return logger
