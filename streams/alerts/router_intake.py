"""What the router takes in: alerts from the alerts topic, erasures from the audit topic.

The router consumes both topics with one consumer (one group, one commit after the store
committed). An alert that fails validation is logged with its partition, offset and the
reason (never its content) and skipped; so is an audit record that cannot be read. Audit
records other than erasures (lookups) are read and ignored. Why erasures come from the
audit topic and not from the consent topic: see ``erasure``.

``take_in`` blocks (SQLite): call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Alert, AuditEvent

from .erasure import Erasure, erasure_of
from .model import Change
from .store import IncidentStore

log = logging.getLogger("consentinel.router")


def decode(
    batches: Mapping[Any, list[Any]], alerts_topic: str
) -> tuple[list[Alert], list[Erasure]]:
    """The alerts and the erasures of one fetch, each in the order of its partition."""
    alerts: list[Alert] = []
    erasures: list[Erasure] = []
    for tp, messages in batches.items():
        for m in messages:
            try:
                if tp.topic == alerts_topic:
                    alerts.append(codec.decode(Alert, m.value or b""))
                else:
                    erasure = erasure_of(codec.decode(AuditEvent, m.value or b""))
                    if erasure is not None:
                        erasures.append(erasure)
            except InvalidInput as exc:
                log.warning(
                    "skipped the record at %s[%d]@%d: %s (a producer wrote a record this "
                    "router cannot read; fix the producer, the record stays on the topic)",
                    tp.topic,
                    tp.partition,
                    m.offset,
                    exc.message,
                )
    return alerts, erasures


def take_in(
    store: IncidentStore, alerts: Sequence[Alert], erasures: Sequence[Erasure], now_ms: int
) -> list[Change]:
    """Alerts first (an alert of an erased subject is redacted as it is taken in), then the
    erasures (which redact what is already stored)."""
    changes = store.ingest_many(alerts, now_ms) if alerts else []
    for erasure in erasures:
        redacted = store.erase_subject(erasure, now_ms)
        changes += redacted
        log.info(
            "erasure request of %s applied: %d incident(s) redacted, the fact and time kept",
            erasure.erased_at_ms,
            len(redacted),
        )
    return changes
