"""The incident store's file: its schema, its connection, and how an incident is a row.

``Database`` opens (or creates) the SQLite file in WAL mode with ``synchronous=FULL`` and
refuses a file written by a newer schema. ``IncidentStore`` (``store``) and ``Outbox``
(``outbox``) build on it; both share its connection and its lock.

What blocks: opening waits up to ``busy_timeout_s`` for another process's transaction;
``_write`` takes the write lock up front (``BEGIN IMMEDIATE``). Raises ``IncidentError``
for a file of a newer schema, ``sqlite3.Error`` for a file that cannot be opened.

Why SQLite (a decision, kept here so nobody has to rediscover it):

- One router process writes alerts in; the operator console (another process) reads and
  acknowledges or resolves through this same class. SQLite in WAL mode gives readers that
  never block and one writer at a time; the second writer waits on the lock
  (``busy_timeout``), which is all the concurrency two processes need. No server to run.
- Durable across restarts: the file lives at ``settings.state_dir / "incidents.db"``,
  ``synchronous=FULL`` so a committed transaction survives a power cut, not only a crash.
- Dedupe is a PRIMARY KEY on ``alert_id`` (deterministic: hash(usage event id, rule id)),
  with the alert's revision: a replayed alert changes nothing; a newer revision (a
  correction from the core) updates it.
- Notifications use a transactional **outbox**: the row that tells sink S to announce
  incident I at revision R is written in the same transaction as the change itself. Delivery
  workers drain the outbox with retries and backoff; a sink that is down never loses an
  incident, and its backlog is the number of its undelivered rows (``SINK_BACKLOG``).
- The router commits its Kafka offsets only after the SQLite transaction committed:
  at-least-once end to end, exact because replays dedupe on ``alert_id``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consentinel.streams.events import codec
from consentinel.streams.events.records import Alert

from .model import Incident, IncidentError, IncidentStatus, RuleCount, Transition

if TYPE_CHECKING:
    from .chain import ChainReport

SCHEMA_VERSION = 4
"""1: incidents per controller x campaign x rule. 2: ``incidents.rules`` (per-rule counts),
filled for version-1 rows from their one rule when the file is opened. 3: the hash chain
over ``changes`` (``note``, ``prev_hash``, ``hash``; see ``chain``), existing rows chained
when the file is opened. 4: ``erasures`` (``erasure``): an older consentinel must not take
in alerts of an erased subject unredacted, so it refuses the file."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY,
    incident_key TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    rule_source TEXT NOT NULL,
    severity TEXT NOT NULL,
    controller TEXT NOT NULL,
    campaign_id TEXT,
    purpose_used TEXT,
    channel TEXT NOT NULL,
    summary TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    alert_count INTEGER NOT NULL,
    resolved_alert_count INTEGER NOT NULL,
    sample_alert_ids TEXT NOT NULL,
    transitions TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    rules TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS incidents_by_key ON incidents (incident_key, opened_at_ms);
CREATE INDEX IF NOT EXISTS incidents_by_status ON incidents (status, last_seen_ms);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    incident_id TEXT,
    revision INTEGER NOT NULL,
    status TEXT NOT NULL,
    detected_at_ms INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts (incident_id, detected_at_ms);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    revision INTEGER NOT NULL,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    alert_id TEXT,
    who TEXT,
    note TEXT,
    prev_hash TEXT,
    hash TEXT
);
CREATE TABLE IF NOT EXISTS sinks (
    name TEXT PRIMARY KEY,
    active INTEGER NOT NULL,
    registered_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    item_id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    done_at_ms INTEGER,
    last_error TEXT,
    UNIQUE (sink, incident_id, revision)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sink, state, item_id);
CREATE TABLE IF NOT EXISTS erasures (
    event_id TEXT PRIMARY KEY,
    subject_digest TEXT NOT NULL,
    erased_at_ms INTEGER NOT NULL,
    applied_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS erasures_by_subject ON erasures (subject_digest, erased_at_ms);
"""

INCIDENT_COLUMNS = (
    "incident_id, incident_key, rule_id, rule_source, severity, controller, campaign_id, "
    "purpose_used, channel, summary, status, opened_at_ms, last_seen_ms, alert_count, "
    "resolved_alert_count, sample_alert_ids, transitions, revision, updated_at_ms, rules"
)


class Database:
    """One SQLite connection, shared by threads under one lock."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            found = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if found is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(found[0]) > SCHEMA_VERSION:
                raise IncidentError(
                    f"{self.path} was written by a newer consentinel (schema {found[0]}, this "
                    f"one reads {SCHEMA_VERSION}); upgrade consentinel or point "
                    f"CONSENTINEL_HOME elsewhere"
                )
            else:
                if int(found[0]) < 2:
                    self._to_version_2(self._db)
                if int(found[0]) < 3:
                    self._to_version_3(self._db)
                if int(found[0]) < 4:  # the erasures table: created above
                    self._db.execute("UPDATE meta SET value=? WHERE key='schema'", ("4",))

    @staticmethod
    def _to_version_2(db: sqlite3.Connection) -> None:
        """Adds ``incidents.rules``; a version-1 incident has one rule: its own."""
        columns = {r["name"] for r in db.execute("PRAGMA table_info(incidents)")}
        if "rules" not in columns:
            db.execute("ALTER TABLE incidents ADD COLUMN rules TEXT NOT NULL DEFAULT '[]'")
        db.execute(
            "UPDATE incidents SET rules=json_array(json_object('rule_id', rule_id, "
            "'rule_source', rule_source, 'severity', severity, 'alerts', alert_count, "
            "'resolved_alerts', resolved_alert_count)) WHERE rules='[]'"
        )
        db.execute("UPDATE meta SET value='2' WHERE key='schema'")

    @staticmethod
    def _to_version_3(db: sqlite3.Connection) -> None:
        """Adds the chain's columns to ``changes`` and chains the rows already there."""
        from .chain import backfill

        columns = {r["name"] for r in db.execute("PRAGMA table_info(changes)")}
        for name in ("note", "prev_hash", "hash"):
            if name not in columns:
                db.execute(f"ALTER TABLE changes ADD COLUMN {name} TEXT")
        backfill(db)
        db.execute("UPDATE meta SET value='3' WHERE key='schema'")

    def verify_chain(self) -> ChainReport:
        """Walk the hash chain over the changes (``chain``); raises ``ChainBroken``."""
        from .chain import verify

        with self._lock:
            return verify(self._db)

    def alerts_of_subject(self, subject_key: str, limit: int = 1000) -> list[tuple[str, Alert]]:
        """(incident id or "", alert) for every alert about one subject, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT incident_id, body FROM alerts WHERE json_extract(body, '$.subject_key')=?"
                " ORDER BY detected_at_ms, alert_id LIMIT ?",
                (subject_key, limit),
            ).fetchall()
        return [(r["incident_id"] or "", codec.decode(Alert, r["body"])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- incident rows -------------------------------------------------------------------

    @staticmethod
    def _get(db: sqlite3.Connection, incident_id: str) -> Incident | None:
        row = db.execute(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE incident_id=?", (incident_id,)
        ).fetchone()
        return None if row is None else incident_from_row(row)

    @staticmethod
    def _insert(db: sqlite3.Connection, inc: Incident) -> None:
        values = incident_row(inc)
        db.execute(
            f"INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
            values,
        )

    @staticmethod
    def _update(db: sqlite3.Connection, inc: Incident) -> None:
        names = [c.strip() for c in INCIDENT_COLUMNS.split(",")][1:]
        values = incident_row(inc)
        db.execute(
            f"UPDATE incidents SET {', '.join(f'{n}=?' for n in names)} WHERE incident_id=?",
            (*values[1:], values[0]),
        )


def incident_row(inc: Incident) -> tuple[Any, ...]:
    return (
        inc.incident_id,
        inc.incident_key,
        inc.rule_id,
        inc.rule_source,
        inc.severity,
        inc.controller,
        inc.campaign_id,
        inc.purpose_used,
        inc.channel,
        inc.summary,
        inc.status.value,
        inc.opened_at_ms,
        inc.last_seen_ms,
        inc.alert_count,
        inc.resolved_alert_count,
        codec.dumps(list(inc.sample_alert_ids)).decode(),
        codec.dumps(inc.transitions).decode(),
        inc.revision,
        inc.updated_at_ms,
        codec.dumps(inc.rules).decode(),
    )


def incident_from_row(row: sqlite3.Row) -> Incident:
    return Incident(
        incident_id=row["incident_id"],
        incident_key=row["incident_key"],
        rule_id=row["rule_id"],
        rule_source=row["rule_source"],
        severity=row["severity"],
        controller=row["controller"],
        campaign_id=row["campaign_id"],
        purpose_used=row["purpose_used"],
        channel=row["channel"],
        summary=row["summary"],
        status=IncidentStatus(row["status"]),
        opened_at_ms=row["opened_at_ms"],
        last_seen_ms=row["last_seen_ms"],
        alert_count=row["alert_count"],
        resolved_alert_count=row["resolved_alert_count"],
        sample_alert_ids=tuple(codec.loads(row["sample_alert_ids"])),
        transitions=tuple(codec.from_obj(Transition, t) for t in codec.loads(row["transitions"])),
        revision=row["revision"],
        updated_at_ms=row["updated_at_ms"],
        rules=tuple(codec.from_obj(RuleCount, r) for r in codec.loads(row["rules"])),
    )
