"""Workarounds for faust-streaming 0.15.x bugs that lose records; each says what and why.

Uncommitted partitions after a restart (found by the SIGKILL test, 2026-11)
-------------------------------------------------------------------------
After recovery, Faust resumes the stream partitions, then seeks them to their committed
offsets, then resumes flow control, which CLEARS every stream queue
(``tables/recovery.py::on_recovery_completed``). Records fetched between the resume and
the clear are dropped; for a partition with a committed offset the seek makes the
consumer fetch them again, but aiokafka's ``seek_to_committed`` does not seek a
partition that has no committed offset (or offset 0), so its position stays after the
dropped records and they are never processed, and their offsets get committed. That is
exactly a worker killed before its first commit, or a partition that had records but no
commit yet. The fix: after Faust's seek, seek such partitions of our source topics to
their beginning (what ``auto_offset_reset=earliest`` meant), so they are fetched again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

log = logging.getLogger("consentinel.worker")

_SOURCES: WeakKeyDictionary[Any, frozenset[str]] = WeakKeyDictionary()
_MARK = "_consentinel_seeks_uncommitted"


def seek_uncommitted_to_beginning(app: Any, topics: Iterable[str]) -> None:
    """Install the fix for ``app``, whose agents read ``topics``."""
    from faust.transport.drivers.aiokafka import Consumer

    _SOURCES[app] = frozenset(topics)
    if getattr(Consumer.seek_to_committed, _MARK, False):
        return
    original = Consumer.seek_to_committed

    async def seek_to_committed(self: Any) -> Any:
        committed = await original(self)
        sources = _SOURCES.get(self.app, frozenset())
        fresh = [tp for tp, offset in committed.items() if not offset and tp.topic in sources]
        if fresh:
            log.info(
                "no committed offset yet for %d source partition(s): reading them from the "
                "beginning",
                len(fresh),
            )
            await self._thread.seek_to_beginning(*fresh)
        return committed

    setattr(seek_to_committed, _MARK, True)
    Consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
