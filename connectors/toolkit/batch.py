"""A platform's batch mapped item by item: one bad item is refused alone.

Batch-level problems (the body is not JSON, not an array, a bad signature) still refuse
the whole request: they are raised before :func:`map_items` is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from consentinel.connectors.contract import ItemRejected, Output
from consentinel.streams.events.codec import dumps
from consentinel.streams.events.errors import InvalidInput


def map_items(items: Sequence[Any], map_one: Callable[[int, Any], Output]) -> Output:
    """The events of every item ``map_one(index, item)`` maps, in order, and an
    :class:`ItemRejected` (its code, message and index, the item re-encoded) for every item
    that raised ``InvalidInput``. Other errors propagate: they are faults, not bad input.
    Pure: never blocks."""
    out = Output()
    for index, item in enumerate(items):
        try:
            mapped = map_one(index, item)
        except InvalidInput as exc:
            raw = item if isinstance(item, bytes) else dumps(item)
            out.rejected.append(ItemRejected(index, exc.code, exc.message, raw))
            continue
        out.extend(mapped)
    return out
