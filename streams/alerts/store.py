"""The durable incident store: alerts grouped into incidents, and their lifecycle.

The file and its schema live in ``store_db``; the notification outbox, written in the same
transactions, in ``outbox``. ``IncidentStore`` is the one class callers use.

Why SQLite, and why an outbox: see ``store_db``. Dedupe is the PRIMARY KEY on ``alert_id``
(deterministic: hash(usage event id, rule id)) with the alert's revision: a replayed alert
changes nothing; a newer revision (a correction from the core) updates it.

What blocks: every method runs SQL on the calling thread. Reads take microseconds; a write
may wait up to ``busy_timeout_s`` for the other process's transaction. In async code, call
the methods through ``asyncio.to_thread``. One instance may be shared by threads (an
internal lock serializes them).

Grouping (``grouping``): a firing alert joins the latest unresolved incident of its group
(by default controller x campaign, configurable) when its detection time is within
``window_ms`` (24 h by default) of that incident's alerts; otherwise it opens a new
incident. Only the changes in ``model.NOTIFYING``, and alert counts reaching 10, 100,
1000..., write notifications: one page per incident, never one per address. Erasure
requests redact a subject's evidence (``erasure``), also as alerts are taken in.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.records import Alert, AlertStatus
from consentinel.streams.events.settings import Settings

from .erasure import Erasures
from .grouping import (
    DEFAULT_GROUP_BY,
    group_key,
    incident_id_for,
    parse_group_by,
    with_alert,
    with_resolved,
    worst,
)
from .model import (
    BY_CORRECTION,
    BY_REFIRE,
    NOTIFYING,
    Change,
    ChangeKind,
    Incident,
    IncidentError,
    IncidentStatus,
    InvalidTransition,
    Stats,
    Transition,
    UnknownIncident,
)
from .store_db import INCIDENT_COLUMNS, incident_from_row

DAY_MS = 86_400_000
_MILESTONES = frozenset(10**k for k in range(1, 10))


class IncidentStore(Erasures):
    """Incidents, their alerts (the evidence), the change feed and the outbox, in one file."""

    def __init__(
        self,
        path: Path,
        *,
        window_ms: int = DAY_MS,
        max_samples: int = 20,
        busy_timeout_s: float = 10.0,
        group_by: Sequence[str] = DEFAULT_GROUP_BY,
    ) -> None:
        self.group_by = parse_group_by(group_by)
        super().__init__(path, busy_timeout_s=busy_timeout_s)
        self.window_ms = window_ms
        self.max_samples = max_samples

    @classmethod
    def open(cls, settings: Settings, **options: Any) -> IncidentStore:
        """The deployment's store: ``settings.state_dir / "incidents.db"``."""
        return cls(settings.state_dir / "incidents.db", **options)

    def __enter__(self) -> IncidentStore:
        return self

    # -- alerts in ---------------------------------------------------------------------

    def ingest(self, alert: Alert, now_ms: int) -> Change | None:
        """Take in one alert; ``None`` when it changes nothing (a duplicate or older revision)."""
        changes = self.ingest_many([alert], now_ms)
        return changes[0] if changes else None

    def ingest_many(self, alerts: Sequence[Alert], now_ms: int) -> list[Change]:
        """Take in a batch in ONE transaction (commit Kafka offsets after this returns)."""
        out: list[Change] = []
        with self._write() as db:
            sinks = self._active_sinks(db)
            for alert in alerts:
                change = self._ingest_one(db, self._unless_erased(db, alert), now_ms, sinks)
                if change is not None:
                    out.append(change)
        return out

    def _ingest_one(
        self, db: sqlite3.Connection, alert: Alert, now: int, sinks: list[str]
    ) -> Change | None:
        row = db.execute(
            "SELECT incident_id, revision, status FROM alerts WHERE alert_id=?", (alert.alert_id,)
        ).fetchone()
        body = codec.encode(alert)
        firing = alert.status is AlertStatus.FIRING
        if row is not None and row["revision"] >= alert.revision:
            return None  # a replay, or an older revision arriving late
        if row is None or not row["incident_id"]:
            if not firing:
                # A correction of an alert this store never saw fire: keep it, so that the
                # older firing revision, should it arrive late, is recognized as outdated.
                db.execute(
                    "INSERT OR REPLACE INTO alerts VALUES (?, NULL, ?, ?, ?, ?)",
                    (
                        alert.alert_id,
                        alert.revision,
                        alert.status.value,
                        alert.detected_at_ms,
                        body,
                    ),
                )
                return None
            inc = self._grouping_target(db, alert)
            if inc is None:
                inc, kind = self._opened(alert, now), ChangeKind.OPENED
                self._insert(db, inc)
            else:
                samples = inc.sample_alert_ids
                if len(samples) < self.max_samples:
                    samples = (*samples, alert.alert_id)
                rules = with_alert(inc.rules, alert)
                inc = dataclasses.replace(
                    inc,
                    alert_count=inc.alert_count + 1,
                    rules=rules,
                    severity=worst(r.severity for r in rules),
                    last_seen_ms=max(inc.last_seen_ms, alert.detected_at_ms),
                    sample_alert_ids=samples,
                    revision=inc.revision + 1,
                    updated_at_ms=now,
                )
                kind = ChangeKind.ALERT_ADDED
                self._update(db, inc)
            db.execute(
                "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
                (
                    alert.alert_id,
                    inc.incident_id,
                    alert.revision,
                    alert.status.value,
                    alert.detected_at_ms,
                    body,
                ),
            )
            notify = kind is ChangeKind.OPENED or inc.alert_count in _MILESTONES
            return self._record(db, inc, kind, now, sinks, alert.alert_id, None, notify)

        # A newer revision of an alert already in an incident.
        db.execute(
            "UPDATE alerts SET revision=?, status=?, body=? WHERE alert_id=?",
            (alert.revision, alert.status.value, body, alert.alert_id),
        )
        found = self._get(db, row["incident_id"])
        if found is None:  # cannot happen unless the file was edited by hand
            return None
        inc = found
        was_firing = row["status"] == AlertStatus.FIRING.value
        kind = ChangeKind.ALERT_UPDATED
        who: str | None = None
        resolved = inc.resolved_alert_count
        status = inc.status
        transitions = inc.transitions
        rules = inc.rules
        if was_firing and not firing:
            resolved += 1
            rules = with_resolved(rules, alert.rule_id, +1)
            kind = ChangeKind.ALERT_RESOLVED
            if resolved >= inc.alert_count and status is not IncidentStatus.RESOLVED:
                status, kind, who = IncidentStatus.RESOLVED, ChangeKind.RESOLVED, BY_CORRECTION
                note = alert.correction_reason or "every alert of the incident was corrected"
                transitions = (*transitions, Transition(who, status, now, note))
        elif not was_firing and firing:
            resolved -= 1
            rules = with_resolved(rules, alert.rule_id, -1)
            last = transitions[-1] if transitions else None
            if status is IncidentStatus.RESOLVED and last is not None and last.who == BY_CORRECTION:
                status, kind, who = IncidentStatus.OPEN, ChangeKind.REOPENED, BY_REFIRE
                note = f"alert {alert.alert_id} fired again (revision {alert.revision})"
                transitions = (*transitions, Transition(who, status, now, note))
        inc = dataclasses.replace(
            inc,
            resolved_alert_count=max(0, resolved),
            rules=rules,
            status=status,
            transitions=transitions,
            revision=inc.revision + 1,
            updated_at_ms=now,
        )
        self._update(db, inc)
        return self._record(db, inc, kind, now, sinks, alert.alert_id, who, kind in NOTIFYING)

    def _grouping_target(self, db: sqlite3.Connection, alert: Alert) -> Incident | None:
        t = alert.detected_at_ms
        row = db.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE incident_key=? AND status!=? "
            "AND opened_at_ms<=? AND last_seen_ms>=? ORDER BY opened_at_ms DESC LIMIT 1",
            (
                group_key(alert, self.group_by),
                IncidentStatus.RESOLVED.value,
                t + self.window_ms,
                t - self.window_ms,
            ),
        ).fetchone()
        return None if row is None else incident_from_row(row)

    def _opened(self, alert: Alert, now: int) -> Incident:
        key = group_key(alert, self.group_by)
        return Incident(
            incident_id=incident_id_for(key, alert.detected_at_ms, alert.alert_id),
            incident_key=key,
            rule_id=alert.rule_id,
            rule_source=alert.rule_source,
            severity=alert.severity.value,
            controller=alert.controller,
            campaign_id=alert.campaign_id,
            purpose_used=alert.purpose_used,
            channel=alert.channel.value,
            summary=alert.summary,
            status=IncidentStatus.OPEN,
            opened_at_ms=alert.detected_at_ms,
            last_seen_ms=alert.detected_at_ms,
            alert_count=1,
            resolved_alert_count=0,
            sample_alert_ids=(alert.alert_id,),
            transitions=(Transition("consentinel", IncidentStatus.OPEN, now, "first alert"),),
            revision=1,
            updated_at_ms=now,
            rules=with_alert((), alert),
        )

    # -- people ------------------------------------------------------------------------

    def acknowledge(
        self, incident_id: str, who: str, note: str = "", now_ms: int | None = None
    ) -> Incident:
        """open -> acknowledged; anything else raises ``InvalidTransition``."""
        return self._transition(
            incident_id, who, note, IncidentStatus.ACKNOWLEDGED, {IncidentStatus.OPEN}, now_ms
        )

    def resolve(
        self, incident_id: str, who: str, note: str = "", now_ms: int | None = None
    ) -> Incident:
        """open or acknowledged -> resolved; a resolved incident raises ``InvalidTransition``."""
        return self._transition(
            incident_id,
            who,
            note,
            IncidentStatus.RESOLVED,
            {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED},
            now_ms,
        )

    def _transition(
        self,
        incident_id: str,
        who: str,
        note: str,
        wanted: IncidentStatus,
        allowed_from: set[IncidentStatus],
        at_ms: int | None,
    ) -> Incident:
        who = who.strip()
        if not who:
            raise IncidentError(
                f"say who {'acknowledges' if wanted is IncidentStatus.ACKNOWLEDGED else 'resolves'}"
                f" incident {incident_id}: the lifecycle records a name for every step"
            )
        now = now_ms() if at_ms is None else at_ms
        with self._write() as db:
            inc = self._get(db, incident_id)
            if inc is None:
                raise UnknownIncident(incident_id)
            if inc.status not in allowed_from:
                raise InvalidTransition(inc, wanted)
            inc = dataclasses.replace(
                inc,
                status=wanted,
                transitions=(*inc.transitions, Transition(who, wanted, now, note[:2000])),
                revision=inc.revision + 1,
                updated_at_ms=now,
            )
            self._update(db, inc)
            kind = ChangeKind(wanted.value)
            sinks = self._active_sinks(db)
            self._record(db, inc, kind, now, sinks, None, who, True, note[:2000])
        return inc

    # -- reads -------------------------------------------------------------------------

    def get_incident(self, incident_id: str) -> Incident | None:
        with self._lock:
            return self._get(self._db, incident_id)

    def list_incidents(self, status: str | None = None, limit: int = 100) -> list[Incident]:
        """Most recently active first. ``status``: open, acknowledged, resolved, ``active``
        (open or acknowledged) or None (all)."""
        sql = f"SELECT {INCIDENT_COLUMNS} FROM incidents"
        args: list[Any] = []
        if status == "active":
            sql += " WHERE status!=?"
            args.append(IncidentStatus.RESOLVED.value)
        elif status is not None:
            try:
                args.append(IncidentStatus(status).value)
            except ValueError:
                raise IncidentError(
                    f"unknown incident status {status!r}: expected open, acknowledged, "
                    f"resolved or active"
                ) from None
            sql += " WHERE status=?"
        sql += " ORDER BY last_seen_ms DESC, incident_id LIMIT ?"
        args.append(limit)
        with self._lock:
            return [incident_from_row(r) for r in self._db.execute(sql, args)]

    def alerts_of(self, incident_id: str, limit: int = 500) -> list[Alert]:
        """The evidence, oldest first: each alert with its masked hint, declared purpose,
        controller, consent summary with proof, rule id and source."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM alerts WHERE incident_id=? "
                "ORDER BY detected_at_ms, alert_id LIMIT ?",
                (incident_id, limit),
            ).fetchall()
        return [codec.decode(Alert, r["body"]) for r in rows]

    def stats(self) -> Stats:
        """Incidents by status, by rule broken (an incident counts once under each of its
        rules) and by severity, each split by status; alerts stored; sink backlogs."""
        by_status: dict[str, int] = {s.value: 0 for s in IncidentStatus}
        by_rule: dict[str, dict[str, int]] = {}
        by_severity: dict[str, dict[str, int]] = {}
        with self._lock:
            rows = self._db.execute(
                "SELECT severity, status, COUNT(*) AS n FROM incidents GROUP BY severity, status"
            ).fetchall()
            rule_rows = self._db.execute(
                "SELECT json_extract(r.value, '$.rule_id') AS rule_id, i.status, COUNT(*) AS n "
                "FROM incidents i, json_each(i.rules) r GROUP BY 1, 2"
            ).fetchall()
            alerts = self._db.execute(
                "SELECT COUNT(*) FROM alerts WHERE incident_id IS NOT NULL"
            ).fetchone()[0]
        for r in rows:
            by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
            sev = by_severity.setdefault(r["severity"], {})
            sev[r["status"]] = sev.get(r["status"], 0) + r["n"]
        for r in rule_rows:
            rule = by_rule.setdefault(r["rule_id"], {})
            rule[r["status"]] = rule.get(r["status"], 0) + r["n"]
        return Stats(by_status, by_rule, by_severity, int(alerts), self.backlog())

    def open_counts(self) -> dict[tuple[str, str], int]:
        """Unresolved incidents by (rules, severity): the ``INCIDENTS_OPEN`` gauge. Each
        incident counts once, so the gauge sums to the open incidents; its ``rule`` label
        is every rule it breaks joined by ``+`` (``R1+R2+R17``), its severity the worst."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE status!=?",
                (IncidentStatus.RESOLVED.value,),
            ).fetchall()
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            inc = incident_from_row(row)
            key = ("+".join(inc.rule_ids), inc.severity)
            counts[key] = counts.get(key, 0) + 1
        return counts
