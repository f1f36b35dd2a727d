"""The incident store: grouping, dedupe, lifecycle, corrections, change feed, outbox."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alerting import HOUR, T0, alert
from consentinel.streams.alerts.model import (
    BY_CORRECTION,
    BY_REFIRE,
    ChangeKind,
    IncidentError,
    IncidentStatus,
    InvalidTransition,
    UnknownIncident,
)
from consentinel.streams.alerts.store import DAY_MS, IncidentStore, incident_id_for
from consentinel.streams.events import codec
from consentinel.streams.events.records import AlertStatus, Severity

FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED


# -- grouping ------------------------------------------------------------------------------


def test_alerts_of_one_key_within_the_window_make_one_incident(store: IncidentStore) -> None:
    first = store.ingest(alert("e1"), now_ms=1)
    second = store.ingest(alert("e2", at=T0 + 5 * HOUR), now_ms=2)
    assert first is not None and first.kind is ChangeKind.OPENED
    assert second is not None and second.kind is ChangeKind.ALERT_ADDED
    assert second.incident_id == first.incident_id
    (inc,) = store.list_incidents()
    assert inc.alert_count == 2
    assert inc.opened_at_ms == T0 and inc.last_seen_ms == T0 + 5 * HOUR
    assert inc.sample_alert_ids == (alert("e1").alert_id, alert("e2").alert_id)
    assert inc.incident_id == incident_id_for(inc.incident_key, T0, alert("e1").alert_id)
    assert (inc.rule_id, inc.severity, inc.controller, inc.campaign_id) == (
        "R2",
        "critical",
        "broker-lists",
        "politics-27",
    )
    assert inc.purpose_used == "political.communication"
    assert inc.revision == 2


def test_the_window_counts_from_the_last_alert(store: IncidentStore) -> None:
    store.ingest(alert("e1"), 1)
    store.ingest(alert("e2", at=T0 + 20 * HOUR), 2)
    store.ingest(alert("e3", at=T0 + 40 * HOUR), 3)  # 20 h after the last: same incident
    late = store.ingest(alert("e4", at=T0 + 40 * HOUR + DAY_MS + 1), 4)  # > 24 h later
    assert late is not None and late.kind is ChangeKind.OPENED
    counts = sorted(i.alert_count for i in store.list_incidents())
    assert counts == [1, 3]


def test_the_window_is_configurable(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db", window_ms=HOUR) as s:
        s.ingest(alert("e1"), 1)
        change = s.ingest(alert("e2", at=T0 + 2 * HOUR), 2)
        assert change is not None and change.kind is ChangeKind.OPENED
        assert len(s.list_incidents()) == 2


def test_other_controller_campaign_or_rule_is_another_incident(store: IncidentStore) -> None:
    store.ingest(alert("e1"), 1)
    store.ingest(alert("e1", rule="R13"), 1)
    store.ingest(alert("e2", controller="other"), 1)
    store.ingest(alert("e3", campaign=None), 1)
    keys = sorted(i.incident_key for i in store.list_incidents())
    assert keys == [
        "broker-lists|-|R2",
        "broker-lists|politics-27|R13",
        "broker-lists|politics-27|R2",
        "other|politics-27|R2",
    ]


def test_sample_alert_ids_are_capped(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db", max_samples=3) as s:
        for i in range(7):
            s.ingest(alert(f"e{i}", at=T0 + i), i)
        (inc,) = s.list_incidents()
        assert inc.alert_count == 7
        assert inc.sample_alert_ids == tuple(alert(f"e{i}").alert_id for i in range(3))
        assert len(s.alerts_of(inc.incident_id)) == 7


def test_a_new_alert_after_a_person_resolved_opens_a_new_incident(store: IncidentStore) -> None:
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    store.resolve(opened.incident_id, "dpo", "campaign stopped", now_ms=5)
    again = store.ingest(alert("e2", at=T0 + 60_000), 6)
    assert again is not None and again.kind is ChangeKind.OPENED
    assert again.incident_id != opened.incident_id
    assert [i.status for i in store.list_incidents()] == [
        IncidentStatus.OPEN,
        IncidentStatus.RESOLVED,
    ]


def test_incident_ids_are_deterministic_across_stores(tmp_path: Path) -> None:
    batch = [alert("e1"), alert("e2", at=T0 + 1), alert("e3", rule="R13")]
    ids = []
    for name in ("a.db", "b.db"):
        with IncidentStore(tmp_path / name, group_by=("controller", "campaign", "rule")) as s:
            s.ingest_many(batch, now_ms=123 if name == "a.db" else 456)
            ids.append(sorted(i.incident_id for i in s.list_incidents()))
    assert ids[0] == ids[1] and len(ids[0]) == 2


# -- dedupe and corrections ------------------------------------------------------------------


def test_a_replayed_alert_changes_nothing(store: IncidentStore) -> None:
    assert store.ingest(alert("e1"), 1) is not None
    before = store.list_incidents()
    assert store.ingest(alert("e1"), 2) is None
    assert store.ingest_many([alert("e1"), alert("e1")], 3) == []
    assert store.list_incidents() == before
    assert len(store.changes_since(0)) == 1


def test_an_older_revision_is_ignored(store: IncidentStore) -> None:
    store.ingest(alert("e1", revision=2), 1)
    assert store.ingest(alert("e1", revision=1), 2) is None
    (inc,) = store.list_incidents()
    assert store.alerts_of(inc.incident_id)[0].revision == 2


def test_corrections_resolve_alerts_then_the_incident(store: IncidentStore) -> None:
    store.ingest_many([alert("e1"), alert("e2", at=T0 + 1)], 1)
    one = store.ingest(alert("e1", status=RESOLVED, revision=2, correction_reason="x"), 2)
    assert one is not None and one.kind is ChangeKind.ALERT_RESOLVED
    assert one.status is IncidentStatus.OPEN
    two = store.ingest(
        alert("e2", at=T0 + 1, status=RESOLVED, revision=2, correction_reason="consent arrived"),
        3,
    )
    assert two is not None and two.kind is ChangeKind.RESOLVED and two.who == BY_CORRECTION
    inc = store.get_incident(two.incident_id)
    assert inc is not None and inc.status is IncidentStatus.RESOLVED
    assert inc.resolved_alert_count == 2
    last = inc.transitions[-1]
    assert (last.who, last.status, last.at_ms, last.note) == (
        BY_CORRECTION,
        IncidentStatus.RESOLVED,
        3,
        "consent arrived",
    )
    assert [a.status for a in store.alerts_of(inc.incident_id)] == [RESOLVED, RESOLVED]


def test_a_correction_replayed_is_ignored(store: IncidentStore) -> None:
    store.ingest(alert("e1"), 1)
    assert store.ingest(alert("e1", status=RESOLVED, revision=2), 2) is not None
    assert store.ingest(alert("e1", status=RESOLVED, revision=2), 3) is None


def test_an_alert_firing_again_reopens_a_correction_resolved_incident(
    store: IncidentStore,
) -> None:
    store.ingest(alert("e1"), 1)
    store.ingest(alert("e1", status=RESOLVED, revision=2), 2)
    back = store.ingest(alert("e1", status=FIRING, revision=3), 3)
    assert back is not None and back.kind is ChangeKind.REOPENED and back.who == BY_REFIRE
    inc = store.get_incident(back.incident_id)
    assert inc is not None and inc.status is IncidentStatus.OPEN
    assert inc.resolved_alert_count == 0


def test_a_person_resolved_incident_stays_closed_when_an_alert_fires_again(
    store: IncidentStore,
) -> None:
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    store.ingest(alert("e2", at=T0 + 1), 2)
    store.ingest(alert("e1", status=RESOLVED, revision=2), 2)  # not every alert: stays open
    store.resolve(opened.incident_id, "dpo", now_ms=3)
    back = store.ingest(alert("e1", status=FIRING, revision=3), 4)
    assert back is not None and back.kind is ChangeKind.ALERT_UPDATED
    inc = store.get_incident(opened.incident_id)
    assert inc is not None and inc.status is IncidentStatus.RESOLVED


def test_a_correction_of_an_unseen_alert_opens_nothing_and_outdates_it(
    store: IncidentStore,
) -> None:
    assert store.ingest(alert("e1", status=RESOLVED, revision=2), 1) is None
    assert store.list_incidents() == []
    assert store.ingest(alert("e1", revision=1), 2) is None  # the late, older firing
    assert store.list_incidents() == []


# -- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_open_acknowledged_resolved(store: IncidentStore) -> None:
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    iid = opened.incident_id
    acked = store.acknowledge(iid, "ana (dpo)", "looking", now_ms=10)
    assert acked.status is IncidentStatus.ACKNOWLEDGED and acked.revision == 2
    done = store.resolve(iid, "ana (dpo)", "broker told to stop", now_ms=20)
    assert done.status is IncidentStatus.RESOLVED and done.revision == 3
    assert [(t.who, t.status.value, t.at_ms, t.note) for t in done.transitions] == [
        ("consentinel", "open", 1, "first alert"),
        ("ana (dpo)", "acknowledged", 10, "looking"),
        ("ana (dpo)", "resolved", 20, "broker told to stop"),
    ]
    assert store.get_incident(iid) == done
    kinds = [(c.kind, c.who) for c in store.changes_since(0)]
    assert kinds == [
        (ChangeKind.OPENED, None),
        (ChangeKind.ACKNOWLEDGED, "ana (dpo)"),
        (ChangeKind.RESOLVED, "ana (dpo)"),
    ]


def test_invalid_transitions_raise_a_clear_error(store: IncidentStore) -> None:
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    iid = opened.incident_id
    store.acknowledge(iid, "ana")
    with pytest.raises(InvalidTransition, match="already acknowledged by ana") as err:
        store.acknowledge(iid, "bob")
    assert err.value.current is IncidentStatus.ACKNOWLEDGED
    store.resolve(iid, "ana")
    with pytest.raises(InvalidTransition, match=r"already resolved by ana.*stays closed"):
        store.resolve(iid, "bob")
    with pytest.raises(InvalidTransition):
        store.acknowledge(iid, "bob")
    inc = store.get_incident(iid)
    assert inc is not None and inc.revision == 3  # failed steps changed nothing


def test_open_can_be_resolved_directly(store: IncidentStore) -> None:
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    assert store.resolve(opened.incident_id, "bob").status is IncidentStatus.RESOLVED


def test_unknown_incident_and_missing_name(store: IncidentStore) -> None:
    with pytest.raises(UnknownIncident, match="no incident 'in-nope'"):
        store.acknowledge("in-nope", "ana")
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    with pytest.raises(IncidentError, match="say who acknowledges"):
        store.acknowledge(opened.incident_id, "  ")
    assert store.get_incident("in-nope") is None


def test_list_filters_by_status(store: IncidentStore) -> None:
    a = store.ingest(alert("e1"), 1)
    b = store.ingest(alert("e2", rule="R13", at=T0 + 1), 1)
    c = store.ingest(alert("e3", rule="R5", at=T0 + 2), 1)
    assert a and b and c
    store.acknowledge(b.incident_id, "ana")
    store.resolve(c.incident_id, "ana")
    assert [i.incident_id for i in store.list_incidents("open")] == [a.incident_id]
    assert [i.incident_id for i in store.list_incidents("acknowledged")] == [b.incident_id]
    assert [i.incident_id for i in store.list_incidents("resolved")] == [c.incident_id]
    assert {i.incident_id for i in store.list_incidents("active")} == {
        a.incident_id,
        b.incident_id,
    }
    assert len(store.list_incidents(limit=2)) == 2
    with pytest.raises(IncidentError, match="unknown incident status 'closed'"):
        store.list_incidents("closed")


# -- reads ---------------------------------------------------------------------------------


def test_evidence_comes_back_whole(store: IncidentStore) -> None:
    original = alert("e1")
    store.ingest(original, 1)
    (inc,) = store.list_incidents()
    (back,) = store.alerts_of(inc.incident_id)
    assert back == original
    assert back.consent is not None and back.consent.proof is not None
    assert back.consent.proof.method == "double_opt_in"
    assert back.hint == "a***@e***.org"


def test_changes_since_is_a_monotonic_feed(store: IncidentStore) -> None:
    for i in range(5):
        store.ingest(alert(f"e{i}", at=T0 + i), i)
    feed = store.changes_since(0)
    assert [c.seq for c in feed] == sorted({c.seq for c in feed}) and len(feed) == 5
    assert store.changes_since(feed[2].seq) == feed[3:]
    assert store.changes_since(feed[0].seq, limit=2) == feed[1:3]
    assert store.changes_since(feed[-1].seq) == []


def test_stats(store: IncidentStore) -> None:
    a = store.ingest(alert("e1"), 1)
    store.ingest(alert("e2", at=T0 + 1), 1)
    store.ingest(alert("e3", rule="R9", severity=Severity.WARNING), 1)
    assert a is not None
    store.acknowledge(a.incident_id, "ana")
    st = store.stats()
    assert st.by_status == {"open": 1, "acknowledged": 1, "resolved": 0}
    assert st.by_rule == {"R2": {"acknowledged": 1}, "R9": {"open": 1}}
    assert st.by_severity == {"critical": {"acknowledged": 1}, "warning": {"open": 1}}
    assert st.alerts == 3
    assert store.open_counts() == {("R2", "critical"): 1, ("R9", "warning"): 1}
    assert codec.loads(codec.dumps(st))["by_status"]["open"] == 1  # serves as JSON


# -- durability and the second process -------------------------------------------------------


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "incidents.db"
    with IncidentStore(path) as s:
        s.register_sinks(["am"])
        c = s.ingest(alert("e1"), 1)
        assert c is not None
        s.acknowledge(c.incident_id, "ana", now_ms=2)
        before = (s.list_incidents(), s.changes_since(0), s.pending("am"))
    with IncidentStore(path) as s:
        assert (s.list_incidents(), s.changes_since(0), s.pending("am")) == before
        assert s.ingest(alert("e1"), 3) is None  # dedupe survives too


def test_a_second_connection_acknowledges_while_the_first_ingests(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    router, console = IncidentStore(path), IncidentStore(path)
    try:
        router.register_sinks(["hook"])
        opened = router.ingest(alert("e0"), 1)
        assert opened is not None
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                for i in range(1, 200):
                    router.ingest(alert(f"e{i}", at=T0 + i), i)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=feed)
        t.start()
        console.acknowledge(opened.incident_id, "ana")
        t.join()
        assert errors == []
        inc = router.get_incident(opened.incident_id)
        assert inc is not None
        assert inc.status is IncidentStatus.ACKNOWLEDGED and inc.alert_count == 200
        assert {i.kind for i in router.pending("hook")} >= {
            ChangeKind.OPENED,
            ChangeKind.ACKNOWLEDGED,
        }
    finally:
        router.close()
        console.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    IncidentStore(path).close()
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.commit()
    db.close()
    with pytest.raises(IncidentError, match="newer consentinel"):
        IncidentStore(path)


# -- outbox --------------------------------------------------------------------------------


def test_outbox_rows_are_written_with_the_change(store: IncidentStore) -> None:
    store.register_sinks(["am", "hook"])
    opened = store.ingest(alert("e1"), 1)
    assert opened is not None
    for i in range(2, 10):
        store.ingest(alert(f"e{i}", at=T0 + i), i)  # alerts 2..9: no page each
    assert [i.kind for i in store.pending("am")] == [ChangeKind.OPENED]
    store.ingest(alert("e10", at=T0 + 10), 10)  # the 10th alert: one "growing" notice
    items = store.pending("am")
    assert [(i.kind, i.incident.alert_count) for i in items] == [
        (ChangeKind.OPENED, 1),
        (ChangeKind.ALERT_ADDED, 10),
    ]
    assert items[0].idempotency_key == f"{opened.incident_id}:1"
    store.acknowledge(opened.incident_id, "ana")
    store.resolve(opened.incident_id, "ana")
    kinds = [i.kind for i in store.pending("hook")]
    assert kinds == [
        ChangeKind.OPENED,
        ChangeKind.ALERT_ADDED,
        ChangeKind.ACKNOWLEDGED,
        ChangeKind.RESOLVED,
    ]
    assert store.backlog() == {"am": 4, "hook": 4}


def test_outbox_bookkeeping(store: IncidentStore) -> None:
    store.register_sinks(["am"])
    a = store.ingest(alert("e1"), 1)
    b = store.ingest(alert("e2", rule="R13"), 1)
    assert a and b
    first, second = store.pending("am")
    store.mark_retry(first.item_id, 5_000, "down")
    head = store.pending("am")[0]
    assert (head.item_id, head.attempts, head.next_attempt_ms) == (first.item_id, 1, 5_000)
    store.mark_delivered(first.item_id, 6_000)
    store.mark_failed(second.item_id, 6_000, "refused")
    assert store.pending("am") == [] and store.backlog() == {"am": 0}
    assert store.stats().backlog == {"am": 0}
    assert store.prune(older_than_ms=7_000) == 1  # the delivered row; the failed one stays


def test_sinks_removed_keep_their_rows_until_they_return(store: IncidentStore) -> None:
    store.register_sinks(["am", "old"])
    store.ingest(alert("e1"), 1)
    store.register_sinks(["am"])
    store.ingest(alert("e2", rule="R13"), 2)
    assert store.backlog() == {"am": 2}
    assert len(store.pending("old")) == 1
    store.register_sinks(["am", "old"])
    assert store.backlog() == {"am": 2, "old": 1}


def test_no_sinks_means_no_outbox_rows(store: IncidentStore) -> None:
    store.ingest(alert("e1"), 1)
    assert store.backlog() == {}
    assert store.stats().by_status["open"] == 1
