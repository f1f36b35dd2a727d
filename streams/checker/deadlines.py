"""The deadline index: which subjects of a partition have something due, by due time.

A subject is due when one of its pending uses reaches the end of its grace period, or
when its oldest alerted use leaves the correction window. A tick asks for the subjects
due at its time: the cost is O(due subjects x log n), never a scan of every hold.

Entries are corrected in place (``set`` with the subject's new due time, or ``None`` when
nothing is due any more); the heap keeps superseded entries until they surface, and
skips them then (lazy deletion), so ``set`` is O(log n). The index is in memory only: a
partition newly assigned to this process is ``built`` once from its holds table.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineIndex:
    """Per partition: subject key -> due time (epoch ms), ordered by due time. Blocks on nothing."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, bytes]]] = {}
        self._due: dict[int, dict[bytes, int]] = {}
        self._built: set[int] = set()

    def built(self, partition: int) -> bool:
        """Whether the index holds every subject of ``partition`` (see ``build``)."""
        return partition in self._built

    def build(self, partition: int, entries: Iterable[tuple[bytes, int | None]]) -> None:
        """Add the due times read from the partition's table, then mark it built.

        A key already indexed (changed since the table was read) keeps its newer due time.
        """
        known = self._due.setdefault(partition, {})
        for key, due in entries:
            if key not in known and due is not None:
                self.set(partition, key, due)
        self._built.add(partition)

    def set(self, partition: int, key: bytes, due: int | None) -> None:
        """Record (or correct, or with ``None`` remove) the due time of one subject."""
        known = self._due.setdefault(partition, {})
        if due is None:
            known.pop(key, None)
            return
        if known.get(key) == due:
            return
        known[key] = due
        heapq.heappush(self._heaps.setdefault(partition, []), (due, key))

    def get(self, partition: int, key: bytes) -> int | None:
        return self._due.get(partition, {}).get(key)

    def pop_due(self, partition: int, t_ms: int) -> list[bytes]:
        """Remove and return the subjects due at or before ``t_ms``, earliest first.

        The caller re-``set``s each after deciding what was due.
        """
        heap = self._heaps.get(partition)
        known = self._due.get(partition, {})
        out: list[bytes] = []
        while heap and heap[0][0] <= t_ms:
            due, key = heapq.heappop(heap)
            if known.get(key) == due:  # else superseded by a later set
                del known[key]
                out.append(key)
        return out

    def next_due(self, partition: int) -> int | None:
        """The earliest due time of the partition (None: nothing due)."""
        heap = self._heaps.get(partition)
        known = self._due.get(partition, {})
        while heap and known.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def __len__(self) -> int:
        return sum(len(d) for d in self._due.values())

    def forget(self) -> None:
        """Drop everything (after a rebalance: partitions may have moved)."""
        self._heaps.clear()
        self._due.clear()
        self._built.clear()
