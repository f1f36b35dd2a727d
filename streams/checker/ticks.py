"""Ticks: the clock of the grace period, delivered inside stream iteration.

A pending use must be decided once its grace period has passed, even if no other event
for its partition ever arrives. A timer cannot do it: table writes must happen while
processing an event of the right partition. So each worker, every ``interval`` seconds,
produces one small tick record to each partition of the *tick topic* it owns (same
partition count as consent and usage, so Faust's assignor gives partition p of all three
to the same worker). The agent reads ticks like any record, and a tick on partition p
decides p's pending uses whose deadline has passed.

A tick also carries the end offset of consent partition p at the moment it was made
(asked of the broker). It only decides anything once every consent record before that
offset has been processed, so a worker catching up after a restart (consent backlog, or a
crash) never declares "no consent" for a use whose consent is already in the topic, unread.
With deadlines counted from when the worker first saw the use (``judge``), a tick made
after a deadline knows of every consent written within G after that use reached Kafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from consentinel.streams.events import codec, metrics
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.settings import Settings

#: Ticks are disposable: keep them an hour.
TICK_TOPIC_CONFIG = {"retention.ms": str(3_600_000), "cleanup.policy": "delete"}


def tick_topic(settings: Settings) -> str:
    """The worker's tick topic, named like Faust's internal topics (``<app id>-tick``)."""
    return f"{settings.topic_prefix}{settings.app_id}-tick"


def tick_interval(settings: Settings) -> float:
    """Seconds between ticks: a quarter of the grace period, within [1 s, 5 s]."""
    interval: float = min(5.0, max(1.0, settings.grace_seconds / 4))
    return interval


@dataclass(frozen=True, slots=True)
class Tick:
    t_ms: int  # wall-clock time the tick was made
    consent_end: int | None  # end offset of the consent partition then (None: unknown)

    def encode(self) -> bytes:
        data: bytes = codec.dumps({"t": self.t_ms, "end": self.consent_end})
        return data

    @classmethod
    def decode(cls, data: bytes) -> Tick:
        obj = codec.loads(data)
        if not isinstance(obj, dict) or type(obj.get("t")) is not int:
            raise InvalidInput("schema", "tick record: expected {'t': int, 'end': int | null}")
        end = obj.get("end")
        return cls(obj["t"], end if type(end) is int else None)


class TickClock:
    """Knows how far this worker has processed each consent partition.

    ``committed`` gives the group's committed offset for a consent partition (the next
    offset to read), for partitions where nothing was processed yet in this process.
    """

    def __init__(self, committed: Callable[[int], int | None]) -> None:
        self._committed = committed
        self._done: dict[int, int] = {}  # partition -> next offset after the last processed

    def consent_done(self, partition: int, offset: int) -> None:
        if offset + 1 > self._done.get(partition, 0):
            self._done[partition] = offset + 1

    def position(self, partition: int) -> int:
        return max(self._done.get(partition, 0), self._committed(partition) or 0)

    def caught_up(self, partition: int, tick: Tick) -> bool:
        if tick.consent_end is None:
            return False
        return self.position(partition) >= tick.consent_end


class TickSkips:
    """Ticks the worker could not send, said once a minute while it lasts.

    A worker that sends no tick decides no held use: the grace period never ends for them.
    A skip now and then (a rebalance) is normal; a run of them is what the person on call
    must see, with the reason, so each skip is counted, and once skips have lasted
    ``every_s`` seconds a WARNING is logged, then again every ``every_s`` seconds until a
    tick is sent again.
    """

    def __init__(
        self,
        log: logging.Logger,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._since: float | None = None
        self._warned: float | None = None
        self.count = 0

    def skipped(self, reason: str) -> None:
        metrics.TICKS_SKIPPED.inc()
        now = self._clock()
        self.count += 1
        if self._since is None:
            self._since = now
        if now - self._since < self._every_s:
            return  # a start-up, a rebalance: normal
        if self._warned is None or now - self._warned >= self._every_s:
            self._warned = now
            self._log.warning(
                "no grace-period tick sent for %.0f s (%d skipped): %s; held uses are "
                "decided only once ticks are sent again",
                now - self._since,
                self.count,
                reason,
            )

    def sent(self) -> None:
        if self._since is not None and self._warned is not None:
            self._log.warning(
                "grace-period ticks sent again after %.0f s (%d skipped)",
                self._clock() - self._since,
                self.count,
            )
        self._since = self._warned = None
        self.count = 0
