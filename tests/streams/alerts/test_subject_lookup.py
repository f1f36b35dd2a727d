"""`consentinel subject show`: one subject's consent, uses, alerts, incidents (real broker)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from alerting import T0, alert
from consentinel.streams.alerts import subjects
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.casework import subject_lookup
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import (
    AuditEvent,
    Channel,
    ConsentAction,
    ConsentEvent,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.events.settings import Settings

pytestmark = pytest.mark.integration

ADDRESS = "Jeanne.Martin@Example.org"


def _send(settings: Settings, topic: str, records: list[tuple[str, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers.split(","), acks="all")
    for key, value in records:
        producer.send(settings.topic(topic), key=key.encode(), value=value).get(timeout=30)
    producer.close()


def _consent(key: str, n: int, action: ConsentAction) -> bytes:
    return codec.encode(ConsentEvent(
        event_id=f"c-{n}", occurred_at_ms=T0 + n, received_at_ms=T0 + n, source="form",
        processor="generic", subject_key=key, hint="j***@e***.org", controller="acme",
        action=action,
    ))  # fmt: skip


def _use(key: str, n: int) -> bytes:
    return codec.encode(UsageEvent(
        event_id=f"u-{n}", occurred_at_ms=T0 + n, received_at_ms=T0 + n, source="esp",
        processor="generic", channel=Channel.EMAIL, kind=UsageKind.SEND, subject_key=key,
        hint="j***@e***.org", controller="acme", campaign_id="spring",
    ))  # fmt: skip


def test_a_lookup_finds_only_that_subject_and_prints_no_address(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    key = subject_lookup.subject_key(kafka_settings, ADDRESS)
    assert key == subject_lookup.subject_key(kafka_settings, " jeanne.martin@example.org")
    other = subject_lookup.subject_key(kafka_settings, "paul@example.org")
    _send(kafka_settings, topics.CONSENT, [
        (key, _consent(key, 1, ConsentAction.GRANT)),
        (other, _consent(other, 2, ConsentAction.GRANT)),
        (key, _consent(key, 3, ConsentAction.WITHDRAW)),
    ])  # fmt: skip
    _send(kafka_settings, topics.USAGE, [(key, _use(key, 4)), (other, _use(other, 5))])
    with IncidentStore(tmp_path / "incidents.db") as store:
        store.ingest(dataclasses.replace(alert("e1"), subject_key=key), now_ms=1)
        store.ingest(alert("e2"), now_ms=2)  # another subject
        found = subject_lookup.look_up(kafka_settings, key, store)
    assert [c.event_id for c in found.consent] == ["c-1", "c-3"]
    assert [u.event_id for u in found.uses] == ["u-4"]
    assert [a.alert_id for a in found.alerts] == [alert("e1").alert_id]
    assert list(found.incidents.values()) == ["open"]
    lines: list[str] = []
    subject_lookup.render(found, ADDRESS, lines.append)
    text = "\n".join(lines)
    assert "withdraw" in text and "R2" in text
    assert text.lower().count("jeanne.martin@example.org") == 1  # the operator's own input


def test_a_lookup_is_written_to_the_audit_topic(kafka_settings: Settings) -> None:
    from kafka import KafkaConsumer, TopicPartition

    key = subject_lookup.subject_key(kafka_settings, ADDRESS)
    event = subject_lookup.audit(kafka_settings, key, "ana", "cli")
    tp = TopicPartition(kafka_settings.topic(topics.AUDIT), 0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings.bootstrap_servers, group_id=None)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = [m for batch in consumer.poll(timeout_ms=10_000).values() for m in batch]
    consumer.close()
    assert [codec.decode(AuditEvent, m.value) for m in got] == [event]
    assert b"@" not in got[0].value and got[0].key == key.encode()


def test_a_lookup_lists_the_uses_the_worker_holds(kafka_settings: Settings) -> None:
    """Held uses come from the worker's holds changelog, written here by the checker's own
    ``Holds`` encoding: the newest value of the subject's key counts (a tombstone empties
    it), and the allowed uses kept beside it (``k:`` key) are not held."""
    from consentinel.streams.checker.holds import Alerted, Held, Holds, RuleState, kept_key
    from consentinel.streams.events.partitioning import partition_for
    from consentinel.streams.events.records import AlertStatus, Decision
    from consentinel.streams.policy.engine import Evaluation
    from kafka.admin import KafkaAdminClient, NewTopic

    key = subject_lookup.subject_key(kafka_settings, ADDRESS)
    other = subject_lookup.subject_key(kafka_settings, "paul@example.org")
    changelog = subjects.holds_changelog(kafka_settings)
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers.split(","))
    admin.create_topics([NewTopic(changelog, kafka_settings.partitions, 1)])
    admin.close()
    use = codec.decode(UsageEvent, _use(key, 6))
    old = Holds(pending=[Held(codec.decode(UsageEvent, _use(key, 5)), T0 + 99)])
    evaluation = Evaluation(Decision.VIOLATION, [], None, None, "politics", "acme")
    now = Holds(
        pending=[Held(use, T0 + 600_000)],
        alerted=[Alerted(use, None, evaluation, T0 + 7, {"R2": RuleState(1, AlertStatus.FIRING)})],
    )
    kept = Holds()
    kept.kept.add(codec.decode(UsageEvent, _use(key, 8)), T0 + 9)
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers.split(","))
    part = partition_for(key.encode(), kafka_settings.partitions)
    for k, v in [
        (key.encode(), old.to_bytes()),
        (other.encode(), old.to_bytes()),
        (key.encode(), None),  # a tombstone: nothing held any more
        (key.encode(), now.to_bytes()),
        (kept_key(key.encode()), kept.kept.to_bytes()),
    ]:
        producer.send(changelog, key=k, value=v, partition=part).get(timeout=30)
    producer.close()
    with IncidentStore(kafka_settings.state_dir / "incidents.db") as store:
        found = subject_lookup.look_up(kafka_settings, key, store)
    assert [(h.state, h.usage.event_id, h.until_ms) for h in found.holds] == [
        ("pending", "u-6", T0 + 600_000),
        ("alerted", "u-6", T0 + 7),
    ]
    assert found.holds[1].rules == {"R2": "firing"}
    lines: list[str] = []
    subject_lookup.render(found, ADDRESS, lines.append)
    text = "\n".join(lines)
    assert "held uses (2):" in text and "waiting for consent until" in text and "R2 firing" in text
