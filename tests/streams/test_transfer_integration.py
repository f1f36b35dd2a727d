"""A list rental on the real broker: a broker's manifest imported through the
``rental_manifest`` connector, then the political campaign's messages, judged by a
``consentinel worker`` subprocess.

The readers consented to the newspaper's newsletter; one of them also ticked "opt-in
partenaires" naming the broker, without any proof kept. The transfer to the campaign is
judged when it happens, before any message: R16 (no auditable upstream proof). Then each
reader gets two messages from the campaign, whose declaration says they do not name the
source: R17 on every message, R18 on the first message to each reader only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import privacy
import pytest
import worker_harness as h
from consentinel.streams.events import ids
from consentinel.streams.events.records import Proof
from consentinel.streams.events.settings import Settings

pytestmark = pytest.mark.integration

GRACE_S = 3
TIMEOUT_S = 120
HOUR = 3_600_000
BROKER = "listbroker"
CAMPAIGN = "campagne-2027"
FILE = "quotidien-readers-2027"
READERS = (1, 2)

REGISTRY = f"""\
declarations:
  - list: lequotidien-morning
    controller: le-quotidien
    purpose: editorial.newsletter
    channel: email
  - list: {FILE}
    controller: {CAMPAIGN}
    purpose: political.communication
    channel: email
    sourcing: rented
    acquired_from: [{BROKER}]
  - campaign: printemps-2027
    controller: {CAMPAIGN}
    purpose: political.communication
    channel: email
    sourcing: rented
    acquired_from: [{BROKER}]
    data_sources: [{FILE}]
    names_source: false
    opt_out_in_message: true
"""

CONNECTORS = f"""\
- name: broker-manifests
  type: rental_manifest
  controller: {BROKER}
  purpose_map: {{political: political.communication}}
  secrets: {{signing_secret: env:RENTAL_SECRET}}
"""


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, make_settings, tmp_path: Path) -> Settings:
    s: Settings = make_settings(
        topic_prefix=topic_prefix,
        bootstrap_servers=kafka_bootstrap,
        partitions=3,
        grace_seconds=GRACE_S,
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


def _import_manifest(settings: Settings, path: Path) -> None:
    summary = h.import_file(
        settings, CONNECTORS, "broker-manifests", path, "csv", {"RENTAL_SECRET": "s" * 24}
    )
    assert summary.taken == len(READERS) and not summary.deadlettered


def test_a_rental_then_the_campaigns_first_messages(
    settings: Settings, worker: Any, tmp_path: Path
) -> None:
    sc = h.Scenario(settings)
    t0 = sc.t0
    for i in READERS:
        sc.consent(i, at=t0)  # the newsletter, with full proof
    # reader 1 also ticked "opt-in partenaires" naming the broker; nobody kept the proof
    sc.consent(
        1,
        at=t0,
        purposes=("marketing.partner_transfer",),
        proof=Proof(method="checkbox"),
    )
    sc.consents[-1] = dataclasses.replace(sc.consents[-1], recipients=[BROKER])
    manifest = tmp_path / "manifest.csv"
    rows = ["transfer_id,sender,recipient,purpose,file,sent_at,email,kind"]
    rows += [
        f"ORD-1,{BROKER},{CAMPAIGN},political,{FILE},{_iso(t0 + HOUR)},"
        f"reader{i}@lequotidien-test.example,rental"
        for i in READERS
    ]
    manifest.write_text("\n".join(rows) + "\n")
    firsts = [
        sc.use(i, controller="mailer-account", campaign_id="printemps-2027", at=t0 + 2 * HOUR)
        for i in READERS
    ]
    seconds = [
        sc.use(i, controller="mailer-account", campaign_id="printemps-2027", at=t0 + 3 * HOUR)
        for i in READERS
    ]
    keys = {sc.person(i)[0] for i in READERS}

    outputs = h.Outputs(settings)
    producer = h.Producer(settings)
    try:
        worker.wait_judging()
        producer.send(sc.consents)
        _import_manifest(settings, manifest)
        producer.send([*firsts, *seconds])

        def transfers() -> list[Any]:
            return [
                v
                for v in outputs.first_verdicts().values()
                if v.subject_key in keys
                and v.usage_event_id not in {u.event_id for u in [*firsts, *seconds]}
            ]

        def judged() -> bool:
            outputs.poll()
            seen = outputs.first_verdicts()
            return len(transfers()) == len(READERS) and all(
                u.event_id in seen for u in [*firsts, *seconds]
            )

        h.wait_for(
            judged,
            TIMEOUT_S,
            "a verdict on every transfer and every message",
            explain=lambda: f"{outputs.first_verdicts()}\n{worker.log()[-3000:]}",
        )
    finally:
        producer.close()
    verdicts = outputs.first_verdicts()
    for v in transfers():
        assert v.controller == CAMPAIGN and v.purpose == "political.communication"
        assert "R16" in v.rule_ids, v
        assert "R17" not in v.rule_ids and "R18" not in v.rule_ids and "R1" not in v.rule_ids
    for u in firsts:
        rules = verdicts[u.event_id].rule_ids
        assert "R17" in rules and "R18" in rules, rules
    for u in seconds:
        rules = verdicts[u.event_id].rule_ids
        assert "R17" in rules and "R18" not in rules, rules
    # the alerts say so too: R16 on each transfer, R18 on the first messages only
    alerts = {(a.usage_event_id, a.rule_id) for a in outputs.poll().alerts}
    assert {(v.usage_event_id, "R16") for v in transfers()} <= alerts
    assert {(u.event_id, "R18") for u in firsts} <= alerts
    assert not {(u.event_id, "R18") for u in seconds} & alerts
    r18 = [a for a in outputs.alerts if a.rule_id == "R18"]
    assert {a.alert_id for a in r18} == {ids.alert_id(u.event_id, "R18") for u in firsts}
    assert all("where the address came from" in a.summary for a in r18)
    assert privacy.raw_addresses(b"\n".join(outputs.raw)) == []
    outputs.close()
