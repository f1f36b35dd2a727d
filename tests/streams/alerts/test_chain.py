"""The hash chain over the incident store's changes: edits found, old stores migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alerting import alert
from consentinel.streams.alerts.chain import GENESIS, ChainBroken
from consentinel.streams.alerts.store import IncidentStore


def _busy(store: IncidentStore) -> str:
    store.ingest(alert("e1"), now_ms=1)
    store.ingest(alert("e2"), now_ms=2)
    (inc,) = store.list_incidents()
    store.acknowledge(inc.incident_id, "ana", "looking", now_ms=3)
    store.resolve(inc.incident_id, "ana", "list removed", now_ms=4)
    return inc.incident_id


def _edit(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


def test_an_untouched_store_verifies(store: IncidentStore) -> None:
    _busy(store)
    report = store.verify_chain()
    assert report.rows == 4 and report.head != GENESIS


@pytest.mark.parametrize(
    ("sql", "seq", "what"),
    [
        ("UPDATE changes SET who='bob' WHERE seq=3", 3, "content does not match"),
        ("UPDATE changes SET at_ms=99 WHERE seq=1", 1, "content does not match"),
        ("DELETE FROM changes WHERE seq=2", 3, "prev_hash"),
        ("UPDATE changes SET note='nothing to see' WHERE seq=4", 4, "content does not match"),
    ],
)
def test_an_edit_of_a_change_row_breaks_the_chain_there(
    tmp_path: Path, sql: str, seq: int, what: str
) -> None:
    path = tmp_path / "incidents.db"
    with IncidentStore(path) as store:
        _busy(store)
    _edit(path, sql)
    with IncidentStore(path) as store, pytest.raises(ChainBroken, match=what) as err:
        store.verify_chain()
    assert err.value.seq == seq


def test_an_edit_of_an_incidents_history_is_found(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    with IncidentStore(path) as store:
        _busy(store)
    _edit(path, "UPDATE incidents SET transitions=replace(transitions, 'ana', 'eve')")
    with IncidentStore(path) as store, pytest.raises(ChainBroken, match="'eve'"):
        store.verify_chain()


def test_a_version_2_store_is_migrated_and_chained(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    with IncidentStore(path) as store:
        _busy(store)
    db = sqlite3.connect(path)  # make it look like a store written before the chain
    for column in ("note", "prev_hash", "hash"):
        db.execute(f"ALTER TABLE changes DROP COLUMN {column}")
    db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    db.commit()
    db.close()
    with IncidentStore(path) as store:
        assert store.verify_chain().rows == 4
        store.ingest(alert("e3"), now_ms=5)
        assert store.verify_chain().rows == 5
    # migrated on to the current schema (4: erasures)
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone() == ("4",)
    _edit(path, "UPDATE changes SET who='x' WHERE seq=2")
    with IncidentStore(path) as store, pytest.raises(ChainBroken):
        store.verify_chain()
