"""Casework in the real console (its own process, on the real broker) driven in headless
Chromium: the operator looks a person up by address (audited with their name, the address
never shown back nor left in the page), opens the person's incident from the lookup, and
downloads its signed evidence pack for a case, which verifies."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cdp  # tests/streams/alerts is on pytest's pythonpath
import console_support as support
import pytest
from alerting import alert, audit_records
from consentinel.streams.alerts import evidence_pack, subjects
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import ConsentAction, ConsentEvent
from consentinel.streams.events.settings import Settings
from console_process import TOKEN, wait_ready

pytestmark = pytest.mark.integration

ADDRESS = "Jeanne.Martin@Example.org"
CASE = "CNIL-2026-0412"


@pytest.fixture
def signing_key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "evidence.key"
    return path, evidence_pack.keygen(path)


@pytest.fixture
def console_env(kafka_settings: Settings, signing_key: tuple[Path, str]) -> dict[str, str]:
    """The console on the test's topics, with its pepper, and a signing key for packs."""
    return {
        "CONSENTINEL_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "CONSENTINEL_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "CONSENTINEL_PEPPER": kafka_settings.pepper.reveal().decode(),
        "CONSENTINEL_EVIDENCE_KEY": f"file:{signing_key[0]}",
    }


async def test_operator_looks_a_person_up_and_downloads_the_signed_pack(
    console_proc, kafka_settings: Settings, signing_key: tuple[Path, str], tmp_path: Path
) -> None:
    base, db, _ = console_proc
    key = subjects.subject_key(kafka_settings, ADDRESS)
    hint = subjects.hint(kafka_settings, ADDRESS)
    grant = ConsentEvent(
        event_id="cmp:grant-1", occurred_at_ms=1, received_at_ms=1, source="news-cmp",
        processor="generic", subject_key=key, hint=hint, controller="newsletter-x",
        action=ConsentAction.GRANT, purposes=["editorial.newsletter"],
    )  # fmt: skip
    subjects.produce(kafka_settings, topics.CONSENT, [(key, codec.encode(grant))], "the grant")
    theirs = dataclasses.replace(alert("jm-1"), subject_key=key, hint=hint)
    with IncidentStore(db) as store:
        store.ingest(theirs, 1)
        store.ingest(alert("paul-1"), 2)
        (incident,) = store.list_incidents()
    await wait_ready(base, tmp_path / "console.log")
    downloads = tmp_path / "downloads"
    async with cdp.chromium(tmp_path / "profile") as browser:
        await browser.allow_downloads(downloads)
        page = await browser.new_page()
        await page.navigate(f"{base}/?token={TOKEN}")
        await page.wait_for("document.querySelector('#live').textContent === 'live'", "the feed")

        # The lookup asks for the operator's name first (the audit trail records it).
        await page.click('.tab[data-view="subjects"]')
        await page.type_into("#lookup-address", ADDRESS)
        await page.click("#lookup-go")
        await page.wait_for(
            "document.querySelector('#lookup-message').textContent.includes('Type your name')",
            "the request for a name",
        )
        assert audit_records(kafka_settings) == []
        await page.type_into("#operator", "Jane Martin")
        await page.click("#lookup-go")
        await page.wait_for(
            "!document.querySelector('#lookup-result').hidden", "the subject's file"
        )
        shown = await page.evaluate("document.querySelector('#lookup-result').innerText")
        assert key[:12] in shown and "newsletter-x" in shown and "grant" in shown
        assert "R2" in shown and incident.incident_id in shown
        assert "No use held by the worker." in shown
        assert await page.evaluate("document.querySelector('#lookup-address').value") == ""
        html = await page.evaluate("document.documentElement.outerHTML")
        assert "jeanne" not in html.lower() and not support.privacy.raw_addresses(html.encode())
        (audit,) = audit_records(kafka_settings)
        assert (audit.actor, audit.via, audit.subject_key) == ("Jane Martin", "console", key)
        await page.screenshot(tmp_path / "console-lookup.png")

        # From the lookup to the person's incident, then its signed pack for a case.
        await page.click(f'#lookup-incidents tr[data-id="{incident.incident_id}"]')
        await page.wait_for(
            f"document.querySelector('#detail-body').dataset.id === "
            f"{json.dumps(incident.incident_id)} && !document.querySelector('#view-incidents')"
            ".hidden",
            "the incident opened from the lookup",
        )
        await page.click("#dl-pack")
        await page.wait_for(
            "document.querySelector('#d-message').textContent.includes('case reference')",
            "the request for a case reference",
        )
        await page.type_into("#d-case", CASE)
        await page.click("#dl-pack")
        done = await browser.wait_event(
            "Browser.downloadProgress", lambda p: p.get("state") in ("completed", "canceled")
        )
        assert done["state"] == "completed"
    files = [p for p in downloads.iterdir() if p.suffix == ".json"]
    assert [f.name for f in files] == [f"consentinel-evidence-pack-{incident.incident_id}.json"]
    data = files[0].read_bytes()
    ok = evidence_pack.verify(data, signing_key[1])
    assert (ok.case_ref, ok.incident_id, ok.alert_count, ok.key_trusted) == (
        CASE, incident.incident_id, 2, True,
    )  # fmt: skip
    assert not support.privacy.raw_addresses(data)
