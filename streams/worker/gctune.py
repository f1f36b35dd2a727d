"""Tuning of Python's cyclic garbage collector for the worker's process.

The checker keeps many long-lived objects (the read-through cache of decoded consent
histories and holds, the deadline index, the records in flight) and allocates many
short-lived ones per record (decoded events, verdicts). A collection stops the whole
worker, and costs in proportion to the objects of the generations it looks at:

- With Python's default thresholds (700, 10, 10) the youngest generation is collected every
  700 allocations and the older ones, which hold the cache, again and again: about a third
  of the checker's CPU time in ``tests/bench/own_code.py``.
- With the youngest threshold raised alone (50,000, then an older generation every 20), the
  CPU was saved but the pauses grew: a collection of the middle generation looked at up to a
  million objects, 1.5-5 s with the worker stopped (bench at 2e4 subjects, 2026-12, load
  5-8: ``Thread keepalive is not responding``, latencies of seconds), and every time the
  heap grew by a quarter (the caches warming up) a full collection looked at all of it.
  And the youngest generation's count is allocations minus deallocations of ANY generation,
  so while old records are freed it barely moves and the young objects pile up unseen.
- None of those objects form cycles that need collecting soon: every collection logged
  "0 objects collected".

So (``tune_gc``, once by ``consentinel worker`` after start-up, before the first record) what
start-up allocated is frozen (``gc.freeze()``), the youngest generation's automatic threshold
is ``CONSENTINEL_GC_THRESHOLD`` and the older generations are never collected automatically.
``GcPacer`` (a task of the worker) then freezes the youngest generation every ``PACE_S``, so
no collection looks at the long-lived heap again; frozen objects are still freed when their
last reference goes (reference counting), only cycles among them are not.

Before it freezes, the pacer collects the youngest generation (what was allocated since the
last step and is still alive), but only as often as that finds garbage: every step while
collections find some, and after each that finds none, half as often, down to one step in
``MAX_GAP_STEPS``. Every collection looks at every live object allocated since the last step,
and the worker keeps many young objects alive past a step (records fetched and in flight,
histories entering the cache), so collecting every step cost 11-15 % of the worker's CPU at
the ledger build of 1e6 subjects, and 200 collections found 21 objects between them, all at
start-up (2026-12). The cycles made in the steps not collected are frozen with the rest.

All cycles among frozen objects are found by a full collection, which runs only when the
worker's memory has doubled since the last one (``FULL_GROWTH``), and is said.
``CONSENTINEL_GC_THRESHOLD=0``: Python's defaults, no pacing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("consentinel.worker")

#: The older generations' thresholds once tuned: never reached (``GcPacer`` freezes).
NEVER = 1_000_000
#: Seconds between two steps of ``GcPacer`` (a freeze, after a collection when one is due).
PACE_S = 0.1
#: Steps between two collections of the youngest generation, at most: the gap doubles after
#: each collection that finds no garbage (1, 2, 4, ...) and is 1 again after one that does.
MAX_GAP_STEPS = 64
#: A full collection once the worker's memory is this many times what it was after the last,
#: and ``FULL_EVERY_S`` at the soonest after the last (or the start): a worker warming its
#: caches doubles its memory quickly, and each full collection then was 0.2-1.4 s with the
#: worker stopped (bench, 2026-12, load 4-5).
FULL_GROWTH = 2.0
FULL_EVERY_S = 300.0
#: A collection that stops the worker longer than this is said (a warning).
LONG_PAUSE_S = 0.1


def tune_gc(threshold: int) -> tuple[int, int, int]:
    """Freeze what start-up allocated, collect the youngest generation every ``threshold``
    allocations and the older ones never on their own (``GcPacer`` keeps them empty): 0
    leaves the collector as it is. Returns the thresholds in force. Blocks for one full
    collection (start-up garbage) before freezing."""
    if threshold > 0:
        gc.collect()
        gc.freeze()
        gc.set_threshold(threshold, NEVER, NEVER)
    return gc.get_threshold()


def rss_bytes() -> int:
    """The process's resident memory, from ``/proc/self/statm`` (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * _PAGE


try:
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    _PAGE = 4096


class GcPacer:
    """Freezes the youngest generation every ``pace_s``, after collecting it as often as
    that finds garbage (every step, down to one in ``max_gap`` steps: see the module's
    docstring); a full collection when the memory (``rss``) has grown ``full_growth``
    times since the last one, and ``full_every_s`` after it at the soonest. ``step`` is one
    round, ``run`` the loop. A step that collects blocks for it (the objects allocated since
    the last step and still alive)."""

    def __init__(
        self,
        pace_s: float = PACE_S,
        full_growth: float = FULL_GROWTH,
        full_every_s: float = FULL_EVERY_S,
        rss: Callable[[], int] = rss_bytes,
        clock: Callable[[], float] = time.monotonic,
        max_gap: int = MAX_GAP_STEPS,
    ) -> None:
        if max_gap < 1:
            raise ValueError(f"max_gap must be at least 1 step, not {max_gap}")
        self.pace_s = pace_s
        self.full_growth = full_growth
        self.full_every_s = full_every_s
        self.max_gap = max_gap
        self._rss = rss
        self._clock = clock
        self._base = rss()
        self._last_full = clock()
        #: steps from one collection of the youngest generation to the next, and to go
        self.gap = 1
        self._to_go = 1
        self.young_collections = 0
        self.full_collections = 0

    def step(self) -> None:
        self._to_go -= 1
        if self._to_go <= 0:
            found = gc.collect(0)
            self.young_collections += 1
            self.gap = 1 if found else min(self.gap * 2, self.max_gap)
            self._to_go = self.gap
        gc.freeze()
        if not self._base or self._clock() - self._last_full < self.full_every_s:
            return  # the memory is read only once a full collection may be due
        now = self._rss()
        if now >= self._base * self.full_growth:
            started = time.perf_counter()
            gc.unfreeze()
            collected = gc.collect()
            gc.freeze()
            self.full_collections += 1
            self._base = self._rss()
            self._last_full = self._clock()
            log.info(
                "full garbage collection (memory %.0f MiB, %.1f times that after the last "
                "one): %d objects collected in %.0f ms",
                now / 2**20,
                self.full_growth,
                collected,
                (time.perf_counter() - started) * 1000,
            )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.pace_s)
            self.step()


class PauseWatch:
    """A ``gc.callbacks`` hook that times every collection: each stops the whole worker
    (the event loop and every record in flight), so a long one is said, with its
    generation. ``longest``, ``total`` and ``count`` are kept per generation. Blocks on
    nothing."""

    def __init__(self, long_pause_s: float = LONG_PAUSE_S) -> None:
        self.long_pause_s = long_pause_s
        self.longest = [0.0, 0.0, 0.0]
        self.total = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = int(info.get("generation", 2))
        self.count[generation] += 1
        self.total[generation] += took
        self.longest[generation] = max(self.longest[generation], took)
        if took >= self.long_pause_s:
            log.warning(
                "garbage collection of generation %d stopped the worker for %.0f ms "
                "(%d objects collected)",
                generation,
                took * 1000,
                int(info.get("collected", 0)),
            )

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
