"""Erasure in the incident store: a subject's alerts and incident evidence redacted, the fact
and the time kept.

How the store learns of an erasure: ``consentinel subject erase`` writes an ``AuditEvent``
with action ``subject_erase`` to the audit topic, and the router consumes that topic beside
the alerts (``router_intake``). Why the audit topic and not the consent topic's ``erase``
events: those also come from connectors (a CMP's ``user.deleted``: one controller forgetting
the person), and a controller deleting its records must not wipe the monitor's evidence of
that controller's violations; only an operator's audited erasure request redacts evidence.
The audit topic is also small (one partition), where the consent topic carries every
consent event of every subject.

What redaction does, in ONE transaction (``Erasures.erase_subject``):

- every alert about the subject on a use that happened at or before the erasure keeps only
  the fact and the time: rule, its source and severity, controller, campaign, channel,
  declared purpose, status and times; its subject key, hint, summary, usage event id,
  consent evidence (ids, proof) and correction reason are removed (``redacted``);
- an incident whose first alert (its summary) was the subject's gets a neutral summary; its
  queued notifications are rewritten the same way;
- each incident touched is one ``redacted`` change in the hash chain (``chain``), with
  revision + 1: the chain records the redaction and still verifies;
- the erasure itself is kept as (sha256 of the subject key, erased at): an alert of the
  subject arriving later (a correction from the core, a replay of the alerts topic) for a
  use at or before the erasure is redacted as it is taken in. Alerts on uses AFTER the
  erasure are new evidence and are kept whole (a controller still writing to an erased
  address is exactly what must stay provable).

Applying an erasure twice changes nothing the second time (no new chain row).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from dataclasses import dataclass

from consentinel.streams.events import codec
from consentinel.streams.events.records import Alert, AuditEvent

from .console_evidence import iso
from .model import BY_ERASURE, Change, ChangeKind, Incident
from .outbox import Outbox

ERASE_ACTION = "subject_erase"
ERASED_HINT = "(erased)"


@dataclass(frozen=True)
class Erasure:
    subject_key: str
    erased_at_ms: int
    event_id: str


def erasure_of(event: AuditEvent) -> Erasure | None:
    """The erasure an audit record asks for (None: the record is not an erasure)."""
    if event.action != ERASE_ACTION or not event.subject_key:
        return None
    return Erasure(event.subject_key, event.at_ms, event.event_id)


def subject_digest(subject_key: str) -> str:
    """What the store keeps of an erased subject: enough to recognize its late alerts."""
    return hashlib.sha256(b"consentinel-erased:" + subject_key.encode()).hexdigest()


def redacted_summary(rule_id: str, erased_at_ms: int) -> str:
    return (
        f"{rule_id} broken on a use of an address whose details were erased on request "
        f"({iso(erased_at_ms)}); the fact and the time are kept"
    )


def redacted(alert: Alert, erased_at_ms: int) -> Alert:
    """The alert with nothing of its subject left but the fact and the time."""
    return dataclasses.replace(
        alert,
        usage_event_id="",
        subject_key="",
        hint=ERASED_HINT,
        summary=redacted_summary(alert.rule_id, erased_at_ms),
        consent=None,
        correction_reason=None,
    )


class Erasures(Outbox):
    """The erasure half of the incident store (``IncidentStore`` builds on it)."""

    def erase_subject(self, erasure: Erasure, now_ms: int) -> list[Change]:
        """Redact the subject's alerts and incident evidence; one chained change per
        incident touched (none when there was nothing left to redact)."""
        changes: list[Change] = []
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO erasures (event_id, subject_digest, erased_at_ms, "
                "applied_at_ms) VALUES (?, ?, ?, ?)",
                (erasure.event_id, subject_digest(erasure.subject_key), erasure.erased_at_ms,
                 now_ms),
            )  # fmt: skip
            rows = db.execute(
                "SELECT alert_id, incident_id, body FROM alerts "
                "WHERE json_extract(body, '$.subject_key')=? "
                "AND json_extract(body, '$.occurred_at_ms')<=?",
                (erasure.subject_key, erasure.erased_at_ms),
            ).fetchall()
            touched: dict[str, set[str]] = {}
            for row in rows:
                alert = redacted(codec.decode(Alert, row["body"]), erasure.erased_at_ms)
                db.execute(
                    "UPDATE alerts SET body=? WHERE alert_id=?",
                    (codec.encode(alert), row["alert_id"]),
                )
                if row["incident_id"]:
                    touched.setdefault(row["incident_id"], set()).add(row["alert_id"])
            for incident_id, alert_ids in sorted(touched.items()):
                inc = self._get(db, incident_id)
                if inc is not None:
                    changes.append(self._redact_incident(db, inc, alert_ids, erasure, now_ms))
        return changes

    def _redact_incident(
        self,
        db: sqlite3.Connection,
        inc: Incident,
        alert_ids: set[str],
        erasure: Erasure,
        now_ms: int,
    ) -> Change:
        first = inc.sample_alert_ids[0] if inc.sample_alert_ids else None
        summary = inc.summary
        if first in alert_ids:
            summary = redacted_summary(inc.rule_id, erasure.erased_at_ms)
            for item in db.execute(
                "SELECT item_id, payload FROM outbox WHERE incident_id=?", (inc.incident_id,)
            ).fetchall():
                queued = codec.decode(Incident, item["payload"])
                queued = dataclasses.replace(queued, summary=summary)
                db.execute(
                    "UPDATE outbox SET payload=? WHERE item_id=?",
                    (codec.encode(queued), item["item_id"]),
                )
        inc = dataclasses.replace(
            inc, summary=summary, revision=inc.revision + 1, updated_at_ms=now_ms
        )
        self._update(db, inc)
        n = len(alert_ids)
        note = (
            f"evidence of one data subject redacted on an erasure request of "
            f"{iso(erasure.erased_at_ms)}: {n} alert{'s' if n != 1 else ''} keep only the "
            f"fact and the time"
        )
        return self._record(db, inc, ChangeKind.REDACTED, now_ms, [], None, BY_ERASURE, False, note)

    @staticmethod
    def _unless_erased(db: sqlite3.Connection, alert: Alert) -> Alert:
        """``alert``, redacted when its subject was erased after the use it is about."""
        if not alert.subject_key:
            return alert
        found = db.execute(
            "SELECT MAX(erased_at_ms) FROM erasures WHERE subject_digest=?",
            (subject_digest(alert.subject_key),),
        ).fetchone()
        erased_at = found[0] if found is not None else None
        if erased_at is None or alert.occurred_at_ms > erased_at:
            return alert
        return redacted(alert, int(erased_at))
