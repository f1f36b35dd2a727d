"""The console's live feed: one poller tails the store's change feed for every browser.

What blocks: store reads run in threads (``asyncio.to_thread``); ``Feed.follow`` waits on a
condition (at most 15 s, then yields a heartbeat) and never raises for an empty feed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from consentinel.streams.events import codec

from .console_evidence import incident_view
from .model import Change
from .store import IncidentStore

log = logging.getLogger("consentinel.console")


class Feed:
    """One poller tails ``changes_since`` and keeps the recent changes for every browser."""

    def __init__(self, store: IncidentStore, poll_s: float = 0.5, keep: int = 2000) -> None:
        self.store = store
        self.poll_s = poll_s
        self.head = 0
        self.recent: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=keep)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def start(self) -> None:
        self.head = await asyncio.to_thread(self._last_seq)
        self._task = asyncio.create_task(self._run(), name="console-feed")

    def _last_seq(self) -> int:
        # Thin adapter: the store has no "last sequence number" read, so page to the end
        # once at start; from then on the poller keeps ``head``.
        seq = 0
        while True:
            page = self.store.changes_since(seq, limit=5000)
            if not page:
                return seq
            seq = page[-1].seq

    async def stop(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        while True:
            try:
                changes = await asyncio.to_thread(self.store.changes_since, self.head, 500)
                if changes:
                    payloads = await asyncio.to_thread(self._payloads, changes)
                    async with self._changed:
                        self.recent.extend(payloads)
                        self.head = changes[-1].seq
                        self._changed.notify_all()
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: reading the change feed failed; retrying")
            await asyncio.sleep(self.poll_s)

    def _payloads(self, changes: list[Change]) -> list[tuple[int, bytes]]:
        incidents: dict[str, Any] = {}
        out = []
        for c in changes:
            if c.incident_id not in incidents:
                inc = self.store.get_incident(c.incident_id)
                incidents[c.incident_id] = incident_view(inc) if inc is not None else None
            body = {
                "seq": c.seq,
                "kind": c.kind.value,
                "incident_id": c.incident_id,
                "status": c.status.value,
                "revision": c.revision,
                "at_ms": c.at_ms,
                "who": c.who,
                "incident": incidents[c.incident_id],
            }
            out.append((c.seq, codec.dumps(body)))
        return out

    async def follow(self, since: int) -> AsyncIterator[tuple[int, bytes] | None]:
        """Changes after ``since``; ``None`` means "reload the list" (nothing to resume from);
        ``(seq, b"")`` is a heartbeat (nothing new for 15 s). Yields outside the lock."""
        while not self.closed:
            async with self._changed:
                batch, behind = self._after(since)
                if not batch and not behind:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), timeout=15)
                    batch, behind = self._after(since)
                head = self.head
            if behind:
                # Older than what the poller keeps: read the missed changes from the store.
                missed = await asyncio.to_thread(self.store.changes_since, since, 500)
                if not missed:
                    since = head
                    yield None
                    continue
                batch = await asyncio.to_thread(self._payloads, missed)
            if not batch:
                yield (since, b"")
                continue
            for item in batch:
                yield item
                since = item[0]

    def _after(self, since: int) -> tuple[list[tuple[int, bytes]], bool]:
        oldest = self.recent[0][0] if self.recent else self.head + 1
        if since < self.head and since < oldest - 1:
            return [], True
        return [item for item in self.recent if item[0] > since], False


FEED = web.AppKey("feed", Feed)


async def feed(request: web.Request) -> web.StreamResponse:
    """``GET /api/feed``: server-sent events, resumable with ``Last-Event-ID`` or ``?since=``."""
    hub = request.app[FEED]
    try:
        since = int(request.headers.get("Last-Event-ID") or request.query.get("since") or hub.head)
    except ValueError:
        since = hub.head
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    await resp.write(f"retry: 2000\nevent: hello\ndata: {since}\n\n".encode())
    try:
        async for item in hub.follow(since):
            if item is None:
                await resp.write(b"event: resync\ndata: {}\n\n")
            elif not item[1]:
                await resp.write(b": still here\n\n")
            else:
                await resp.write(b"id: %d\nevent: change\ndata: %s\n\n" % item)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp
