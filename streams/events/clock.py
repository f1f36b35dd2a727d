"""The one wall clock of consentinel: epoch milliseconds, UTC.

Event time comes from the records (``occurred_at_ms``); this is only for the times the
monitor itself stamps (received, decided, detected). Tests that need a fixed clock pass
their own ``now_ms`` callable where a component takes one.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock time in integer epoch milliseconds."""
    return time.time_ns() // 1_000_000
