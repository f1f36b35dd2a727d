"""Tuning of Python's cyclic garbage collector for the worker's process.

The checker keeps many long-lived objects (the read-through cache of decoded consent
histories and holds, the deadline index) and allocates many short-lived ones per record
(decoded events, verdicts). With Python's default thresholds (700, 10, 10) a collection of
the youngest generation runs every 700 allocations, and the older generations, which hold
the cache, are scanned again and again: about a third of the checker's CPU time in
``tests/bench/own_code.py``. None of those objects form cycles that need collecting soon.

``tune_gc`` (called once by ``consentinel worker`` after start-up, before the first record)
moves everything allocated so far (modules, Faust's app, the registry view) out of the
collector's sight with ``gc.freeze()`` and raises the youngest generation's threshold to
``CONSENTINEL_GC_THRESHOLD`` allocations (0: Python's defaults, nothing frozen).
"""

from __future__ import annotations

import gc

#: Collections of a generation between collections of the next (Python's default is 10).
OLDER_EVERY = 20


def tune_gc(threshold: int) -> tuple[int, int, int]:
    """Freeze what start-up allocated and collect the youngest generation every
    ``threshold`` allocations (0: leave the collector as it is). Returns the thresholds
    in force. Blocks for one full collection (start-up garbage) before freezing."""
    if threshold > 0:
        gc.collect()
        gc.freeze()
        gc.set_threshold(threshold, OLDER_EVERY, OLDER_EVERY)
    return gc.get_threshold()
