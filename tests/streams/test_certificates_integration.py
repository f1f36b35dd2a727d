"""R23 on the real broker: purchased leads posted with TrustedForm certificates (a lead file
through the ``lead_post`` connector), the buyer's e-mails to them held by a ``consentinel
worker`` subprocess while the certificates are only claimed, then the certificate service
(``certificates verify --once``'s ``run``) asking a local fake certificate API: the lead
whose certificate names the buyer gets an allowed verdict, the one whose disclosure does
not gets R23 (critical); a third lead carries a Jornaya LeadiD token, which a local fake
LeadiD API says is authentic: allowed. The results are ``verify`` events on the consent
topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import privacy
import pytest
import worker_harness as h
from consentinel.streams.certificates.by_shape import ByShape
from consentinel.streams.certificates.command import run as run_certificates
from consentinel.streams.certificates.leadid import LeadidVerifier
from consentinel.streams.certificates.trustedform import TrustedFormVerifier
from consentinel.streams.events import codec, ids, topics
from consentinel.streams.events.records import CertificateStatus, ConsentAction, ConsentEvent
from consentinel.streams.events.settings import Secret, Settings
from fake_leadid import ACCOUNT, FakeLeadid
from fake_trustedform import KEY, FakeTrustedForm
from kafka import KafkaConsumer

pytestmark = pytest.mark.integration

GRACE_S = 2
WAIT_S = 600  # the certificate wait: far longer than the test, so only a result decides
TIMEOUT_S = 120
HOUR = 3_600_000
BUYER = "isolation-plus"
GOOD, BAD = "a" * 40, "b" * 40
LEADID = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
LEADS = ((1, GOOD), (2, BAD), (3, LEADID))


def _certificate(token: str) -> dict[str, str]:
    if token == LEADID:
        return {"leadid_token": token}
    return {"trustedform_cert_url": f"https://cert.trustedform.com/{token}"}


REGISTRY = f"""\
declarations:
  - campaign: leads-spring
    controller: {BUYER}
    purpose: marketing.direct
    channel: email
    sourcing: purchased
"""

CONNECTORS = """\
- name: leadgen
  type: lead_post
  controller: leadgen-sa
  purpose_map: {marketing: marketing.direct}
  secrets: {signing_secret: env:LEAD_SECRET}
"""


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, make_settings, tmp_path: Path) -> Settings:
    s: Settings = make_settings(
        topic_prefix=topic_prefix,
        bootstrap_servers=kafka_bootstrap,
        partitions=3,
        grace_seconds=GRACE_S,
        certificate_wait_seconds=WAIT_S,
    )
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    return h.prepare(s, registry)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    with h.running_worker(settings, tmp_path / "worker.log") as proc:
        yield proc


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _import_leads(settings: Settings, path: Path) -> None:
    summary = h.import_file(
        settings, CONNECTORS, "leadgen", path, "jsonl", {"LEAD_SECRET": "s" * 24}
    )
    assert summary.taken == len(LEADS) and not summary.deadlettered


def _verify_events(settings: Settings) -> list[ConsentEvent]:
    consumer = KafkaConsumer(
        settings.topic(topics.CONSENT),
        bootstrap_servers=settings.bootstrap_servers.split(","),
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        events = [codec.decode(ConsentEvent, m.value) for m in consumer]
    finally:
        consumer.close()
    return [e for e in events if e.action is ConsentAction.VERIFY]


def test_claimed_leads_are_held_until_the_verifier_answers(
    settings: Settings, worker: Any, tmp_path: Path
) -> None:
    sc = h.Scenario(settings)
    optin = sc.t0
    leads = tmp_path / "leads.jsonl"
    leads.write_text(
        "".join(
            json.dumps(
                {
                    "lead_id": f"L-{i}",
                    "email": f"reader{i}@lequotidien-test.example",
                    "optin_time": _iso(optin),
                    "partners": BUYER,
                    "purposes": "marketing",
                    "channels": "email",
                    "source_url": "https://leadgen.example/isolation",
                    **_certificate(token),
                }
            )
            + "\n"
            for i, token in LEADS
        )
    )
    sends = {
        token: sc.use(i, controller=BUYER, campaign_id="leads-spring", at=optin + HOUR)
        for i, token in LEADS
    }
    outputs = h.Outputs(settings)
    producer = h.Producer(settings)
    try:
        worker.wait_judging()
        _import_leads(settings, leads)
        producer.send(sends.values())
        # held: past the grace period, still no verdict (the certificates are only claimed)
        time.sleep(GRACE_S + 6)
        outputs.poll()
        assert not {u.event_id for u in sends.values()} & set(outputs.first_verdicts())

        with FakeTrustedForm() as fake, FakeLeadid() as leadid:
            fake.answers = {GOOD: "verified", BAD: "mismatch"}
            fake.created_at = _iso(optin)
            leadid.answers = {LEADID: "authentic"}
            verifier = ByShape(
                TrustedFormVerifier(Secret(KEY.encode()), endpoint=fake.endpoint, timeout_s=5),
                LeadidVerifier(ACCOUNT, endpoint=leadid.endpoint, timeout_s=5),
            )
            assert run_certificates(settings, verifier, once=True) == len(LEADS)
            # a second run resumes after its committed offsets: nothing to verify again
            assert run_certificates(settings, verifier, once=True) == 0
            assert sorted(r["path"] for r in fake.requests) == [f"/{GOOD}", f"/{BAD}"]
            assert [r["query"]["id"] for r in leadid.requests] == [LEADID]

        def decided() -> bool:
            outputs.poll()
            return all(u.event_id in outputs.first_verdicts() for u in sends.values())

        h.wait_for(
            decided,
            TIMEOUT_S,
            "a verdict on both sends once their certificates were verified",
            explain=lambda: f"{outputs.first_verdicts()}\n{worker.log()[-3000:]}",
        )
    finally:
        producer.close()
    verdicts = outputs.first_verdicts()
    good, bad = verdicts[sends[GOOD].event_id], verdicts[sends[BAD].event_id]
    assert good.decision == "allowed" and good.rule_ids == [], good
    by_leadid = verdicts[sends[LEADID].event_id]
    assert by_leadid.decision == "allowed" and by_leadid.rule_ids == [], by_leadid
    assert bad.decision == "violation" and bad.rule_ids == ["R23"], bad
    (alert,) = [a for a in outputs.poll().alerts if a.usage_event_id == sends[BAD].event_id]
    assert alert.alert_id == ids.alert_id(sends[BAD].event_id, "R23")
    assert alert.severity == "critical" and "does not name" in alert.summary
    results = {e.certificate_status for e in _verify_events(settings)}
    assert results == {CertificateStatus.VERIFIED, CertificateStatus.MISMATCH}
    assert privacy.raw_addresses(b"\n".join(outputs.raw)) == []
    outputs.close()
