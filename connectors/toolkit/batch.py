"""A platform's batch mapped item by item: one bad item is refused alone.

Batch-level problems (the body is not JSON, not an array, a bad signature) still refuse
the whole request: they are raised before :func:`map_items` is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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


def map_batch(
    value: Any,
    what: str,
    map_one: Callable[[int, dict[str, Any]], Output],
    *,
    allow_single: bool = False,
) -> Output:
    """A platform's JSON batch: an array of objects mapped item by item (see
    :func:`map_items`; an item that is not an object is refused alone, ``malformed_json``).
    With ``allow_single`` a bare object is one event, refused whole when it is bad. Anything
    else is ``malformed_json`` for the whole request, and so is a batch whose every item is
    refused (nothing in it can be kept: the request is dead-lettered whole, with the first
    item's reason). Pure."""
    if allow_single and isinstance(value, dict):
        return map_one(0, value)
    if not isinstance(value, list):
        expected = "an object or an array of objects" if allow_single else "an array of objects"
        raise InvalidInput("malformed_json", f"{what} is not {expected}")

    def checked(index: int, item: Any) -> Output:
        if not isinstance(item, dict):
            raise InvalidInput("malformed_json", f"{what}[{index}] is not an object")
        return map_one(index, item)

    out = map_items(value, checked)
    if out.rejected and len(out.rejected) == len(value):
        first = out.rejected[0]
        raise InvalidInput(first.code, first.message)
    return out


def map_all(
    items: Iterable[Any],
    map_one: Callable[[dict[str, Any]], Output],
    refused: str,
    *,
    code: str = "malformed_json",
) -> Output:
    """The events of every object of ``items`` (a page of records the platform sends as
    one), in order. Unlike :func:`map_batch`, a non-object refuses the whole request:
    ``InvalidInput(code, refused)``. Pure."""
    out = Output()
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInput(code, refused)
        out.extend(map_one(item))
    return out
