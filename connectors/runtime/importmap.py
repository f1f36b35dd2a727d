"""What one import record gives: its Kafka records, or why it goes to the dead letters.

    mapping = RecordMapping(connector, settings, file_id)
    outcomes = mapping([(content, row), ...])      # in a worker, or in the import itself

A row goes through ``connector.map_row``; its events get the import's ids, derived from
(instance, file identity, record content, n), so a re-run repeats ids, never adds new
ones; they are encoded to Kafka records. ``InvalidInput`` (and any other failure of the
connector, as ``connector_error``) is given back as (code, message): the import seals the
record to the dead letters. Pure: reads nothing, sends nothing, never blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any, TypeVar

from consentinel.connectors.contract import Connector, Output
from consentinel.connectors.runtime.producer import Record, records_of
from consentinel.connectors.runtime.rows import FileRecord
from consentinel.streams.events import ids
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Settings

#: what is mapped per record: its canonical content (for ids) and its row
Payload = tuple[bytes, Mapping[str, Any]]
#: what it gives: the Kafka records, usage and consent counts, or (code, message) of the
#: ``InvalidInput`` that sends the record to the dead letters
Outcome = tuple[list[Record], int, int, tuple[str, str] | None]

E = TypeVar("E", UsageEvent, ConsentEvent)


class RecordMapping:
    """Maps chunks of one file's records through one connector instance."""

    def __init__(self, connector: Connector, settings: Settings, file_id: str) -> None:
        self.connector = connector
        self.settings = settings
        self.file_id = file_id
        self.instance = connector.instance.name

    def __call__(self, payloads: list[Payload]) -> list[Outcome]:
        return [self.outcome(content, row) for content, row in payloads]

    def outcome(self, content: bytes, row: Mapping[str, Any]) -> Outcome:
        try:
            output = self.map(row, content)
        except InvalidInput as exc:
            return [], 0, 0, (exc.code, exc.message)
        return records_of(output, self.settings), len(output.usage), len(output.consent), None

    def map(self, row: Mapping[str, Any], content: bytes) -> Output:
        try:
            output = self.connector.map_row(row)
        except InvalidInput:
            raise
        except Exception as exc:
            raise InvalidInput(
                "connector_error", f"the connector failed on this record ({type(exc).__name__})"
            ) from exc
        # ids from (instance, file identity, content): stable across re-runs
        output.usage = _with_ids(output.usage, self._ids(content, "usage", len(output.usage)))
        output.consent = _with_ids(
            output.consent, self._ids(content, "consent", len(output.consent))
        )
        return output

    def _ids(self, content: bytes, kind: str, n: int) -> list[str]:
        return [ids.event_id(self.instance, self.file_id, content, kind, k) for k in range(n)]


def _with_ids(events: list[E], event_ids: list[str]) -> list[E]:
    """The events with the import's ids. The events of a ``map_row`` output are its own,
    just built: each gets its id in place, which costs nothing, where a copy
    (``dataclasses.replace``) builds the whole frozen record again (about a tenth of the
    mapping's time). One object listed twice is copied, so each entry keeps its own id."""
    seen: set[int] = set()
    out: list[E] = []
    for event, event_id in zip(events, event_ids, strict=True):
        if id(event) in seen:
            event = dataclasses.replace(event, event_id=event_id)
        else:
            seen.add(id(event))
            object.__setattr__(event, "event_id", event_id)  # frozen for its readers, not here
        out.append(event)
    return out


async def inline(
    work: Callable[[list[Payload]], list[Outcome]],
    items: Iterator[tuple[FileRecord, Payload | None]],
) -> AsyncGenerator[tuple[FileRecord, Outcome | None], None]:
    """The outcomes mapped in this process (``--jobs 0``), in the shape ``RowMapper.map``
    gives them."""
    for rec, payload in items:
        yield rec, None if payload is None else work([payload])[0]
