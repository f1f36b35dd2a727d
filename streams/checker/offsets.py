"""Offsets the checker has handled per partition, to catch records Faust skipped.

Consent, usage and tick records are never compacted and never written in transactions,
so each partition's offsets come one after the other. When the next record of a
partition is further on than the one after the last handled, records were skipped: Faust
0.15 drops what it had fetched when a rebalance or recovery clears its queues, and treats
the hole as "acked" (``faust_fixes`` has the story). The guard says which records are
missing; the agent reads them from the broker itself (``worker.holes``: seeking the
partition back cannot win against Faust's fetch loop) and handles them before the record
that revealed the hole. Records already handled (a repeat) are acknowledged and not
handled again.

After a rebalance, Faust seeks each partition to its committed offset, then resumes its
flow, which clears the stream queues: records fetched between the seek and the resume are
dropped, and the first record the stream then gives is further on than the committed
offset. So every seek is told to the guard (``sought``, with the offsets the broker
returned, never Faust's own ``_committed_offset``, which a failed commit leaves ahead of
the broker's), and the first record of the partition is checked against it. A partition
with no committed offset is read from its beginning (``faust_compat``) and not checked.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger("consentinel.checker")

Key = tuple[str, int]


class Action(enum.Enum):
    HANDLE = "handle"  # the next record: handle it, then acknowledge it
    REPEAT = "repeat"  # handled already (a repeat after a seek): acknowledge only
    HOLE = "hole"  # records before this one were skipped: read them, then handle this one


class OffsetGuard:
    def __init__(self) -> None:
        self._next: dict[Key, int] = {}
        #: where the last seek put each partition, until its first record is checked
        self._start: dict[Key, int] = {}
        self.holes = 0

    def reset(self) -> None:
        """Forget what was handled (call on rebalance). Seek positions stay: Faust may
        seek before or after the rebalance signal, and every seek overwrites them."""
        self._next.clear()

    def sought(self, topic: str, partition: int, offset: int | None) -> None:
        """The consumer was sought to ``offset`` (None: to the beginning, not checked)."""
        key = (topic, partition)
        self._next.pop(key, None)
        if offset is None:
            self._start.pop(key, None)
        else:
            self._start[key] = offset

    def expected(self, topic: str, partition: int) -> int | None:
        return self._next.get((topic, partition))

    def check(self, topic: str, partition: int, offset: int) -> Action:
        key = (topic, partition)
        expected = self._next.get(key)
        if expected is None:
            start = self._start.pop(key, None)
            if start is not None:
                self._next[key] = expected = start
        if expected is None or offset == expected:
            return Action.HANDLE
        if offset < expected:
            return Action.REPEAT
        self.holes += 1
        log.warning(
            "%s[%d]: records %d..%d were skipped by the stream (Faust dropped them); "
            "reading them from the broker (repaired, nothing lost)",
            topic,
            partition,
            expected,
            offset - 1,
        )
        return Action.HOLE

    def handled(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset + 1 > self._next.get(key, -1):
            self._next[key] = offset + 1
