"""``consentinel subject erase ADDRESS``: a data subject's erasure request, carried out.

In order, each write confirmed (acks=all) before the next:

1. the audit record (``AuditEvent``, action ``subject_erase``) on the audit topic: who asked
   for the erasure of which subject key, when. It is written first, like every operator
   act on personal data; the alert router consumes it and redacts the subject's alerts and
   incident evidence in the incident store, keeping the fact and the time (``erasure``);
2. one ``ConsentEvent`` with action ``erase`` per controller the subject is known to (its
   consent history, uses, held uses and alerts), on the consent topic, keyed by the subject
   key (its partition): the worker's ledger drops each controller's consent history up to
   the erasure and keeps only the fact and its time (``policy.history.erase``).

Running it again is safe: a second erasure changes nothing the first did not (the router
finds nothing left to redact; the ledger keeps the later erasure time).

What blocks: Kafka reads (the subject's partitions) and writes, SQLite reads. Raises
``RetriableError`` when Kafka does not answer or a write is not confirmed: nothing after
the failed write was done, and running the command again finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from consentinel.streams.alerts import subjects
from consentinel.streams.events import codec, ids, topics
from consentinel.streams.events.records import AuditEvent, ConsentAction, ConsentEvent
from consentinel.streams.events.settings import Settings

SOURCE = "consentinel-subject-erase"


@dataclass(frozen=True)
class Erased:
    audit: AuditEvent
    events: list[ConsentEvent]

    @property
    def controllers(self) -> list[str]:
        return [e.controller for e in self.events]


def erasure_events(key: str, hint: str, controllers: list[str], at_ms: int) -> list[ConsentEvent]:
    """One ``erase`` consent event per controller, at ``at_ms`` (ids stable for a retry of
    the same request)."""
    return [
        ConsentEvent(
            event_id=ids.event_id(SOURCE, key, controller, at_ms),
            occurred_at_ms=at_ms,
            received_at_ms=at_ms,
            source=SOURCE,
            processor="consentinel",
            subject_key=key,
            hint=hint,
            controller=controller,
            action=ConsentAction.ERASE,
        )
        for controller in controllers
    ]


def erase(settings: Settings, key: str, hint: str, controllers: list[str], actor: str) -> Erased:
    """Audit, then write the erasure events (see the module's docstring)."""
    audit = subjects.audit(settings, key, actor, "cli", subjects.ERASE)
    events = erasure_events(key, hint, controllers, audit.at_ms)
    subjects.produce(
        settings,
        topics.CONSENT,
        [(key, codec.encode(e)) for e in events],
        "the erasure consent events",
    )
    return Erased(audit, events)
