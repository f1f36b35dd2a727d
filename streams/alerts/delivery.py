"""Drains the outbox for one sink: oldest first, retries with capped exponential backoff.

One worker per sink. It delivers that sink's notifications strictly in outbox order, so a
receiver never sees an incident resolved before it saw it open. When a delivery fails with
``RetriableError`` the notification stays at the head with its next attempt time; the
worker sleeps until then (a sink that is down is usually down for every notification, so
the head-of-line wait costs nothing and keeps the order). ``PermanentDeliveryError`` marks
the notification failed and moves on. Nothing is dropped for being old.

What blocks: ``run`` loops until ``stop`` is set; store calls go through a thread; a
delivery awaits at most the sink's timeout. Cancelling ``run`` mid-delivery leaves the
notification pending: it is delivered again after a restart, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.metrics import SINK_BACKLOG, SINK_DELIVERIES

from .model import OutboxItem
from .sinks.base import Notification, PermanentDeliveryError, Sink, incident_link
from .store import IncidentStore

log = logging.getLogger("consentinel.router")


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits U(d/2, d), d = min(max, initial*2^n).

    A receiver's ``Retry-After`` is a floor (honoured up to an hour)."""

    initial_s: float = 1.0
    max_s: float = 300.0

    def delay(self, attempt: int, retry_after: float = 0.0, rand: float | None = None) -> float:
        ceiling = min(self.max_s, self.initial_s * (2.0 ** min(attempt, 40)))
        r = random.random() if rand is None else rand
        jittered = ceiling * (0.5 + 0.5 * r)
        return max(jittered, min(retry_after, 3600.0))


class DeliveryWorker:
    def __init__(
        self,
        store: IncidentStore,
        sink: Sink,
        backoff: Backoff,
        console_url: str,
        poll_s: float = 1.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.sink = sink
        self.backoff = backoff
        self.console_url = console_url
        self.poll_s = poll_s
        self.clock = clock
        self._wake = asyncio.Event()
        self._failing_since: int | None = None

    def wake(self) -> None:
        """New notifications were written (by this process); look now, not at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        name = self.sink.name
        while not stop.is_set():
            self._wake.clear()  # before reading: a wake after this read is not missed
            items = await asyncio.to_thread(self.store.pending, name, 100)
            SINK_BACKLOG.labels(name).set(len(items) if len(items) < 100 else await self._count())
            if not items:
                await self._sleep(stop, self.poll_s, wakeable=True)
                continue
            for item in items:
                wait_s = (item.next_attempt_ms - self.clock()) / 1000
                if wait_s > 0:
                    await self._sleep(stop, wait_s, wakeable=False)
                    break  # re-read: the console may have added rows meanwhile
                if stop.is_set() or not await self.deliver_one(item):
                    break

    async def deliver_one(self, item: OutboxItem) -> bool:
        """One attempt; True when the row left the backlog (delivered or failed for good)."""
        name = self.sink.name
        note = Notification(
            kind=item.kind,
            incident=item.incident,
            link=incident_link(self.console_url, item.incident.incident_id),
            created_at_ms=item.created_at_ms,
        )
        try:
            await self.sink.deliver(note)
        except PermanentDeliveryError as exc:
            SINK_DELIVERIES.labels(name, "failed").inc()
            log.error("%s (incident %s)", exc, note.idempotency_key)
            await asyncio.to_thread(self.store.mark_failed, item.item_id, self.clock(), str(exc))
            return True
        except Exception as exc:
            retry_after = exc.retry_after if isinstance(exc, RetriableError) else 0.0
            reason = (
                str(exc)
                if isinstance(exc, RetriableError)
                else (f"sink {name}: unexpected {type(exc).__name__} (a bug; will retry)")
            )
            delay = self.backoff.delay(item.attempts, retry_after)
            SINK_DELIVERIES.labels(name, "retry").inc()
            if self._failing_since is None:
                self._failing_since = self.clock()
            if item.attempts == 0 or item.attempts % 10 == 9:
                log.warning(
                    "%s; attempt %d for incident %s, next in %.1fs; nothing is lost, the "
                    "backlog waits",
                    reason,
                    item.attempts + 1,
                    note.idempotency_key,
                    delay,
                )
            if not isinstance(exc, RetriableError):
                log.debug("sink %s failure", name, exc_info=True)
            await asyncio.to_thread(
                self.store.mark_retry, item.item_id, self.clock() + int(delay * 1000), reason
            )
            return False
        SINK_DELIVERIES.labels(name, "delivered").inc()
        await asyncio.to_thread(self.store.mark_delivered, item.item_id, self.clock())
        if self._failing_since is not None:
            down_s = (self.clock() - self._failing_since) / 1000
            log.info("sink %s delivers again after %.0fs; draining its backlog", name, down_s)
            self._failing_since = None
        return True

    async def _count(self) -> int:
        return (await asyncio.to_thread(self.store.backlog)).get(self.sink.name, 0)

    async def _sleep(self, stop: asyncio.Event, seconds: float, wakeable: bool) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
