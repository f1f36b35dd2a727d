"""Which subjects' decoded states are worth keeping in the processor's cache.

A subject read once and never again (a newsletter sent to a million readers, a consent
export imported) gains nothing from the read-through cache: its decoded history and holds
stay there until pushed out, then are freed long after they were made, and pushing them
out is most of what the cache costs (``Processor._stage_batch``: 4-5 % of the worker's CPU
at the ledger build of 1e6 subjects, py-spy, 2026-12). So once the cache is full, a state
read from the tables enters it only on the subject's second read within a while
(``SecondTouch``), or when it holds a pending use (its consent or its deadline comes back
to it soon). Until then it is freed once its batch is staged, while still warm, and the
subjects already cached stay: with more subjects than the cache holds, read in no
particular order, the cache keeps the hits it has instead of trading them for newcomers
(the admission of TinyLFU, with its doorkeeper alone as the frequency).

Admitting only second reads, even into an empty cache, lost hits where the cache holds a
good part of the subjects: a worker restarted on 1e5 subjects (a cache of 5e4, a few uses
a subject) then decodes every subject at least twice before any hit.

Only what is cached changes, never what is judged: a state not cached is read back from
the staged writes or the tables, as any state pushed out of the cache.
"""

from __future__ import annotations


class SecondTouch:
    """Subject keys read once lately: about the last ``size`` to ``2 * size`` of them.

    Two generations of sets: a key is noted in the young one; when it holds ``size``
    keys, it becomes the old one and the previous old one is dropped at once (no
    per-key order to keep, as an LRU would)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._young: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` was noted lately (nothing forgotten: see ``seen``)."""
        return key in self._young or key in self._old

    def seen(self, key: bytes) -> bool:
        """Whether ``key`` was noted lately (and is forgotten now: it is admitted)."""
        if key in self._young:
            self._young.discard(key)
            return True
        if key in self._old:
            self._old.discard(key)
            return True
        return False

    def note(self, key: bytes) -> None:
        """Note a key read once (not admitted this time)."""
        young = self._young
        young.add(key)
        if len(young) >= self.size:
            self._old, self._young = young, set()

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
