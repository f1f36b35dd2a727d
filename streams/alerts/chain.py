"""The append-only hash chain over the incident store's changes (its transitions).

Every row of ``changes`` carries ``prev_hash`` (the ``hash`` of the row before it, by
``seq``; 64 zeros for the first) and ``hash`` = SHA-256 over ``prev_hash`` and the codec
bytes of the row's content (seq, incident, kind, revision, status, time, alert, who,
note). Editing, deleting or reordering any row after the fact breaks the chain from that
row on; ``verify`` finds the first broken row. It also checks each incident's lifecycle
steps (who moved it where, when, why) against the chain, so an edit of the ``incidents``
table's history is found too.

``append`` runs inside the writer's transaction (the store's write lock), so two writers
never chain onto the same row. ``backfill`` chains the rows of a store made before the
chain existed (the schema-3 migration); the chain proves nothing about edits made before
that migration.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import ConsentinelError

from .store_db import incident_from_row

GENESIS = "0" * 64
_CONTENT = "seq, incident_id, kind, revision, status, at_ms, alert_id, who, note"


class ChainBroken(ConsentinelError):
    """The store was edited after the fact; ``seq`` is the first row that does not chain."""

    def __init__(self, seq: int | None, what: str) -> None:
        self.seq = seq
        where = f"change #{seq}" if seq is not None else "the incidents table"
        super().__init__(f"the incident store's hash chain is broken at {where}: {what}")


@dataclass(frozen=True)
class ChainReport:
    rows: int
    head: str  # the hash of the last row: write it down to detect a truncation later


def row_hash(prev_hash: str, row: sqlite3.Row | tuple[Any, ...]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + codec.dumps(list(row))).hexdigest()


def _head(db: sqlite3.Connection) -> str:
    found = db.execute(
        "SELECT hash FROM changes WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return GENESIS if found is None else str(found[0])


def append(
    db: sqlite3.Connection,
    incident_id: str,
    kind: str,
    revision: int,
    status: str,
    at_ms: int,
    alert_id: str | None,
    who: str | None,
    note: str | None,
) -> int:
    """Insert one change row chained onto the last; its ``seq``. Call inside a write txn."""
    prev = _head(db)
    cur = db.execute(
        "INSERT INTO changes (incident_id, kind, revision, status, at_ms, alert_id, who, note, "
        "prev_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (incident_id, kind, revision, status, at_ms, alert_id, who, note, prev),
    )
    seq = int(cur.lastrowid or 0)
    row = db.execute(f"SELECT {_CONTENT} FROM changes WHERE seq=?", (seq,)).fetchone()
    db.execute("UPDATE changes SET hash=? WHERE seq=?", (row_hash(prev, row), seq))
    return seq


def backfill(db: sqlite3.Connection) -> int:
    """Chain every row that has no hash yet, in ``seq`` order; how many were chained."""
    prev, done = GENESIS, 0
    for row in db.execute(f"SELECT {_CONTENT}, hash FROM changes ORDER BY seq").fetchall():
        if row["hash"] is None:
            content = tuple(row)[:-1]
            h = row_hash(prev, content)
            db.execute("UPDATE changes SET prev_hash=?, hash=? WHERE seq=?", (prev, h, row["seq"]))
            prev, done = h, done + 1
        else:
            prev = row["hash"]
    return done


def verify(db: sqlite3.Connection) -> ChainReport:
    """Walk the chain; raises :class:`ChainBroken` at the first row that does not chain."""
    prev, count = GENESIS, 0
    rows = db.execute(f"SELECT {_CONTENT}, prev_hash, hash FROM changes ORDER BY seq")
    steps: dict[tuple[str, str, int], list[tuple[str | None, str | None]]] = {}
    for row in rows.fetchall():
        seq = int(row["seq"])
        if row["prev_hash"] != prev:
            raise ChainBroken(seq, "its prev_hash is not the hash of the row before it "
                              "(a row was deleted, inserted or reordered)")  # fmt: skip
        if row["hash"] != row_hash(prev, tuple(row)[:-2]):
            raise ChainBroken(seq, "its content does not match its hash (the row was edited)")
        prev, count = row["hash"], count + 1
        where = (row["incident_id"], row["status"], row["at_ms"])
        steps.setdefault(where, []).append((row["who"], row["note"]))
    for inc_row in db.execute("SELECT * FROM incidents").fetchall():
        inc = incident_from_row(inc_row)
        for t in inc.transitions:
            # rows the router writes carry no who/note: those match on status and time
            found = steps.get((inc.incident_id, t.status.value, t.at_ms), [])
            if not any(w in (t.who, None) and n in (t.note, None) for w, n in found):
                raise ChainBroken(
                    None,
                    f"incident {inc.incident_id}'s step to {t.status.value} by {t.who!r} at "
                    f"{t.at_ms} is not in the chain (its history was edited)",
                )
    return ChainReport(rows=count, head=prev)
