"""Erasure in the incident store: the subject's evidence redacted, the fact and time kept,
the redaction chained; late alerts redacted as they are taken in (no broker)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from alerting import T0, alert, store_text
from consentinel.streams.alerts.erasure import ERASED_HINT, Erasure, erasure_of
from consentinel.streams.alerts.model import BY_ERASURE, ChangeKind
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events.records import AlertStatus, AuditEvent

KEY = "sk-erased-subject-0123456789abcdef"
HINT = "j***@m***.org"
USE = "newsletter-x:jeanne-1"


def _theirs(event: str, at: int = T0):
    return dataclasses.replace(
        alert(event, at=at),
        subject_key=KEY,
        hint=HINT,
        summary=f"political e-mail to a newsletter reader ({HINT})",
        usage_event_id=f"{USE}:{event}",
    )


def _erasure(at: int = T0 + 10_000) -> Erasure:
    return Erasure(KEY, at, f"erase:dpo:{at}:{KEY[:16]}")


def test_only_erasure_audit_records_are_erasures() -> None:
    lookup = AuditEvent("l-1", T0, "ana", "subject_lookup", "cli", KEY)
    erase = dataclasses.replace(lookup, event_id="e-1", action="subject_erase")
    assert erasure_of(lookup) is None
    assert erasure_of(erase) == Erasure(KEY, T0, "e-1")


def test_an_erasure_redacts_the_subject_and_keeps_the_fact_and_the_time(tmp_path: Path) -> None:
    path = tmp_path / "incidents.db"
    with IncidentStore(path) as store:
        store.register_sinks(["hook"], now_ms=1)
        store.ingest(_theirs("e1"), now_ms=1)  # opens the incident: its summary is theirs
        store.ingest(alert("e2", at=T0 + 1), now_ms=2)  # someone else, same incident
        store.ingest(_theirs("e3", at=T0 + 2), now_ms=3)
        (before,) = store.list_incidents()
        changes = store.erase_subject(_erasure(), now_ms=4)

        assert [(c.kind, c.who) for c in changes] == [(ChangeKind.REDACTED, BY_ERASURE)]
        assert store.alerts_of_subject(KEY) == []
        (inc,) = store.list_incidents()
        assert inc.revision == before.revision + 1 and inc.alert_count == 3
        assert inc.rules == before.rules and inc.status is before.status
        assert HINT not in inc.summary and "erased on request" in inc.summary
        kept = {a.alert_id: a for a in store.alerts_of(inc.incident_id)}
        for original in (_theirs("e1"), _theirs("e3", at=T0 + 2)):
            a = kept[original.alert_id]
            assert (a.subject_key, a.hint, a.usage_event_id, a.consent) == (
                "",
                ERASED_HINT,
                "",
                None,
            )
            # the fact and the time
            assert (a.rule_id, a.controller, a.campaign_id, a.status) == (
                original.rule_id, original.controller, original.campaign_id, original.status
            )  # fmt: skip
            assert (a.occurred_at_ms, a.detected_at_ms) == (
                original.occurred_at_ms,
                original.detected_at_ms,
            )
        assert kept[alert("e2").alert_id] == alert("e2", at=T0 + 1)  # the other person: whole
        assert store.verify_chain().rows == 4
        # the queued notification (the incident as it opened) says nothing of them either
        assert all(HINT not in item.incident.summary for item in store.pending("hook"))
        assert store.erase_subject(_erasure(), now_ms=5) == []  # twice: nothing more
        assert store.verify_chain().rows == 4
    text = store_text(path)
    assert KEY not in text and HINT not in text and USE not in text
    assert "cmp:abc" in text  # the other person's consent evidence is still there


def test_alerts_of_an_erased_subject_arriving_later_are_redacted(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "incidents.db") as store:
        store.ingest(_theirs("e1"), now_ms=1)
        store.erase_subject(_erasure(T0 + 10_000), now_ms=2)
        # the core's correction of the erased use, after the erasure
        corrected = dataclasses.replace(
            _theirs("e1"), status=AlertStatus.RESOLVED, revision=2, correction_reason="erased"
        )
        store.ingest(corrected, now_ms=3)
        # a use before the erasure, alerted late; a use AFTER the erasure: new evidence
        store.ingest(_theirs("e4", at=T0 + 5_000), now_ms=4)
        after = _theirs("e5", at=T0 + 60_000)
        store.ingest(after, now_ms=5)
        # the correction resolved the first incident; the later alerts opened another
        incidents = store.list_incidents()
        assert len(incidents) == 2
        stored = {a.alert_id: a for i in incidents for a in store.alerts_of(i.incident_id)}
        first = stored[corrected.alert_id]
        assert first.status is AlertStatus.RESOLVED and first.revision == 2
        assert first.subject_key == "" and first.correction_reason is None
        assert stored[_theirs("e4").alert_id].hint == ERASED_HINT
        assert stored[after.alert_id] == after
        assert [a.alert_id for _, a in store.alerts_of_subject(KEY)] == [after.alert_id]
        store.verify_chain()
