"""The change feed and the transactional outbox: notifications written with the change
they announce.

Every change of an incident is a row of ``changes`` (``changes_since`` reads them in order:
the console's live feed).

The row that tells sink S to announce incident I at revision R is written in the same
transaction as the change itself (``_record``). Delivery workers (``delivery``) drain it
with retries and backoff; a sink that is down never loses an incident, and its backlog is
the number of its undelivered rows (``SINK_BACKLOG``).

What blocks: every method runs SQL on the calling thread (call them through
``asyncio.to_thread`` in async code); a write may wait up to the store's busy timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from consentinel.streams.events import codec
from consentinel.streams.events.clock import now_ms as wall_clock

from . import chain
from .model import Change, ChangeKind, Incident, IncidentStatus, OutboxItem
from .store_db import Database


class Outbox(Database):
    """The change feed and outbox half of the incident store (base of ``IncidentStore``)."""

    def changes_since(self, seq: int, limit: int = 500) -> list[Change]:
        """Changes with a sequence number above ``seq``, in order (pass the last one seen)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, incident_id, kind, revision, status, at_ms, alert_id, who "
                "FROM changes WHERE seq>? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [
            Change(
                seq=r["seq"],
                incident_id=r["incident_id"],
                kind=ChangeKind(r["kind"]),
                revision=r["revision"],
                status=IncidentStatus(r["status"]),
                at_ms=r["at_ms"],
                alert_id=r["alert_id"],
                who=r["who"],
            )
            for r in rows
        ]

    def register_sinks(self, names: Iterable[str], now_ms: int | None = None) -> None:
        """The sinks notifications are written for, from now on (others are kept, inactive,
        with their undelivered rows: re-adding a sink delivers them)."""
        wanted = sorted(set(names))
        now = wall_clock() if now_ms is None else now_ms
        with self._write() as db:
            db.execute("UPDATE sinks SET active=0")
            for name in wanted:
                db.execute(
                    "INSERT INTO sinks (name, active, registered_at_ms) VALUES (?, 1, ?) "
                    "ON CONFLICT(name) DO UPDATE SET active=1",
                    (name, now),
                )

    def pending(self, sink: str, limit: int = 50) -> list[OutboxItem]:
        """The sink's undelivered notifications, oldest first (deliver them in this order)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id, sink, kind, payload, created_at_ms, attempts, next_attempt_ms "
                "FROM outbox WHERE sink=? AND state='pending' ORDER BY item_id LIMIT ?",
                (sink, limit),
            ).fetchall()
        return [
            OutboxItem(
                item_id=r["item_id"],
                sink=r["sink"],
                kind=ChangeKind(r["kind"]),
                incident=codec.decode(Incident, r["payload"]),
                created_at_ms=r["created_at_ms"],
                attempts=r["attempts"],
                next_attempt_ms=r["next_attempt_ms"],
            )
            for r in rows
        ]

    def mark_delivered(self, item_id: int, now_ms: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state='delivered', done_at_ms=?, attempts=attempts+1 "
                "WHERE item_id=?",
                (now_ms, item_id),
            )

    def mark_retry(self, item_id: int, next_attempt_ms: int, error: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET attempts=attempts+1, next_attempt_ms=?, last_error=? "
                "WHERE item_id=?",
                (next_attempt_ms, error[:500], item_id),
            )

    def mark_failed(self, item_id: int, now_ms: int, error: str) -> None:
        """A permanent failure: the row leaves the backlog, kept with its error for people."""
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET state='failed', done_at_ms=?, attempts=attempts+1, "
                "last_error=? WHERE item_id=?",
                (now_ms, error[:500], item_id),
            )

    def backlog(self) -> dict[str, int]:
        """Undelivered notifications per active sink (0 included)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.name, COUNT(o.item_id) FROM sinks s LEFT JOIN outbox o "
                "ON o.sink=s.name AND o.state='pending' WHERE s.active=1 GROUP BY s.name"
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def prune(self, older_than_ms: int) -> int:
        """Forget delivered outbox rows older than that; incidents, alerts and changes stay."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM outbox WHERE state='delivered' AND done_at_ms<?", (older_than_ms,)
            )
            return int(cur.rowcount)

    @staticmethod
    def _active_sinks(db: sqlite3.Connection) -> list[str]:
        return [r[0] for r in db.execute("SELECT name FROM sinks WHERE active=1 ORDER BY name")]

    @staticmethod
    def _record(
        db: sqlite3.Connection,
        inc: Incident,
        kind: ChangeKind,
        now: int,
        sinks: list[str],
        alert_id: str | None,
        who: str | None,
        notify: bool,
        note: str | None = None,
    ) -> Change:
        seq = chain.append(
            db, inc.incident_id, kind.value, inc.revision, inc.status.value, now, alert_id, who,
            note,
        )  # fmt: skip
        if notify and sinks:
            payload = codec.encode(inc)
            db.executemany(
                "INSERT OR IGNORE INTO outbox (sink, incident_id, revision, kind, payload, "
                "created_at_ms, next_attempt_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(s, inc.incident_id, inc.revision, kind.value, payload, now, now) for s in sinks],
            )
        return Change(seq, inc.incident_id, kind, inc.revision, inc.status, now, alert_id, who)
