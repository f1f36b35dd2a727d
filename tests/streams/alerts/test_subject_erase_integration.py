"""`consentinel subject erase` end to end on the real broker: a subject with a consent history,
alerts and an incident; the router (its own process) redacts the evidence; the store read
back holds nothing of the subject beyond the fact and the time, and its chain verifies."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from alerting import (
    RouterProcess,
    alert,
    audit_records,
    eventually,
    produce,
    store_text,
    topic_records,
)
from consentinel.streams.alerts import subjects
from consentinel.streams.alerts.erasure import ERASED_HINT
from consentinel.streams.alerts.model import BY_ERASURE, ChangeKind
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.records import (
    ConsentAction,
    ConsentEvent,
)
from consentinel.streams.events.settings import Settings

pytestmark = pytest.mark.integration

ADDRESS = "Jeanne.Martin@Example.org"


def _cli(settings: Settings, router: RouterProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consentinel.streams.cli", "subject", *args],
        env=router.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_an_erased_subject_leaves_only_the_fact_and_the_time(
    router_settings: Settings, tmp_path: Path
) -> None:
    settings = router_settings
    key = subjects.subject_key(settings, ADDRESS)
    hint = subjects.hint(settings, ADDRESS)
    grant = ConsentEvent(
        event_id="cmp:grant-1", occurred_at_ms=now_ms() - 86_400_000, received_at_ms=now_ms(),
        source="news-cmp", processor="generic", subject_key=key, hint=hint,
        controller="newsletter-x", action=ConsentAction.GRANT, purposes=["editorial.newsletter"],
    )  # fmt: skip
    subjects.produce(settings, topics.CONSENT, [(key, codec.encode(grant))], "the grant")
    t = now_ms() - 3_600_000  # the uses happened an hour ago
    theirs = [
        dataclasses.replace(
            alert(f"jm-{n}", at=t + n, rule=rule),
            subject_key=key,
            hint=hint,
            summary=f"political e-mail to a newsletter reader ({hint})",
            usage_event_id=f"newsletter-x:jeanne-{n}",
        )
        for n, rule in ((1, "R2"), (2, "R17"))
    ]
    someone_else = alert("paul-1", at=t + 3)
    await produce(settings, [*theirs, someone_else])

    router = RouterProcess(settings, tmp_path / "router.log")
    router.start()
    try:

        def stored() -> int:
            with IncidentStore.open(settings) as store:
                return store.stats().alerts

        await eventually(
            lambda: stored() == 3, "the router stored the 3 alerts", explain=router.tail
        )
        with IncidentStore.open(settings) as store:
            (incident,) = store.list_incidents()
            assert len(store.alerts_of_subject(key)) == 2
            assert hint in incident.summary  # their alert opened the incident

        done = _cli(settings, router, "erase", ADDRESS)
        assert done.returncode == 0, done.stderr
        assert ADDRESS.lower() not in (done.stdout + done.stderr).lower()
        assert "erasure events for: broker-lists, newsletter-x" in done.stdout

        def redacted() -> bool:
            with IncidentStore.open(settings) as store:
                return any(c.kind is ChangeKind.REDACTED for c in store.changes_since(0))

        await eventually(redacted, "the router redacted the evidence", explain=router.tail)
        assert router.stop() == 0
    finally:
        if router.alive():
            router.kill()

    path = settings.state_dir / "incidents.db"
    with IncidentStore.open(settings) as store:
        report = store.verify_chain()
        (after,) = store.list_incidents()
        alerts = {a.alert_id: a for a in store.alerts_of(after.incident_id)}
        assert store.alerts_of_subject(key) == []
        (change,) = [c for c in store.changes_since(0) if c.kind is ChangeKind.REDACTED]
    assert report.rows == 4  # opened, 2 alerts added, redacted
    assert change.who == BY_ERASURE and change.incident_id == incident.incident_id
    # the fact and the time: the incident, its rules and counts, each alert's rule and times
    assert (after.alert_count, after.rule_ids, after.status) == (3, ("R2", "R17"), incident.status)
    for original in theirs:
        kept = alerts[original.alert_id]
        assert (kept.rule_id, kept.controller, kept.occurred_at_ms, kept.detected_at_ms) == (
            original.rule_id, original.controller, original.occurred_at_ms,
            original.detected_at_ms,
        )  # fmt: skip
        assert (kept.subject_key, kept.hint, kept.consent) == ("", ERASED_HINT, None)
    assert alerts[someone_else.alert_id] == someone_else
    text = store_text(path)
    for trace in (key, hint, "jeanne"):
        assert trace not in text, f"{trace!r} is still in the incident store"

    # The ledger's side: one erasure per controller, on the subject's key; the audit record.
    erasures = [
        (m.key, codec.decode(ConsentEvent, m.value))
        for m in topic_records(settings, topics.CONSENT)
        if codec.decode(ConsentEvent, m.value).action is ConsentAction.ERASE
    ]
    assert sorted(e.controller for _, e in erasures) == ["broker-lists", "newsletter-x"]
    assert {k for k, _ in erasures} == {key.encode()}
    audits = audit_records(settings)
    (audit,) = [a for a in audits if a.action == "subject_erase"]
    assert audit.subject_key == key and audit.via == "cli"
    assert {e.occurred_at_ms for _, e in erasures} == {audit.at_ms}
    raw = b"".join(
        m.value
        for m in topic_records(settings, topics.AUDIT) + topic_records(settings, topics.CONSENT)
    )
    assert ADDRESS.lower().encode() not in raw.lower()

    # A lookup afterwards finds no alert of theirs (and says so, audited like any other).
    shown = _cli(settings, router, "show", ADDRESS)
    assert shown.returncode == 0, shown.stderr
    assert "alerts (0):" in shown.stdout and "incidents (0):" in shown.stdout
