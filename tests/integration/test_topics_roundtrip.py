"""The event contract on the real broker: every topic round-trips, usage and consent are
co-partitioned, and nothing the tests wrote holds a raw address."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
import uuid
from pathlib import Path

import privacy  # tests/ is on pytest's pythonpath
import pytest
import topicread
from aiokafka import AIOKafkaProducer
from consentinel.streams import topics_admin
from consentinel.streams.events import codec, topics
from consentinel.streams.events.identity import Pseudonymizer, mask, normalize
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

pytestmark = pytest.mark.integration

SAMPLES_MODULE = Path(__file__).parents[1] / "streams" / "events" / "test_codec.py"


def _samples() -> list[object]:
    import test_codec  # tests/streams/events is on pytest's pythonpath

    return list(test_codec.samples())


def _drain(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        enable_auto_commit=False,
    )
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            out.extend(batch)
    consumer.close()
    return out


def test_topics_create_is_idempotent(kafka_settings) -> None:
    out = io.StringIO()
    created = topics_admin.create(kafka_settings, out=out)
    assert created == []
    assert "nothing to change" in out.getvalue()
    assert topics_admin.check(kafka_settings, out=io.StringIO()) == []


def test_topics_cli_twice_says_nothing_changed(kafka_bootstrap, topic_prefix, tmp_path) -> None:
    env = {
        "CONSENTINEL_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CONSENTINEL_TOPIC_PREFIX": topic_prefix,
        "CONSENTINEL_HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    exe = Path(sys.executable).parent / "consentinel"
    first = subprocess.run(
        [exe, "topics", "create"], env=env, capture_output=True, text=True, timeout=120
    )
    second = subprocess.run(
        [exe, "topics", "create"], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout.count("created ") == 7  # the six of DESIGN.md and the audit topic
    assert "created " not in second.stdout
    assert "nothing to change" in second.stdout


def test_partition_mismatch_is_fatal_and_says_how_to_fix(
    kafka_bootstrap, topic_prefix, make_settings
) -> None:
    settings = make_settings(topic_prefix=topic_prefix, partitions=3)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics(
        {
            settings.topic(topics.CONSENT): {"num_partitions": 3, "replication_factor": 1},
            settings.topic(topics.USAGE): {"num_partitions": 2, "replication_factor": 1},
        }
    )
    admin.close()
    with pytest.raises(topics_admin.FatalConfigError) as err:
        topics_admin.create(settings, out=io.StringIO())
    text = str(err.value)
    assert "must be equal" in text and "--partitions 3" in text


def test_every_record_round_trips_through_its_topic(kafka_settings) -> None:
    samples = _samples()
    by_type = {
        "UsageEvent": topics.USAGE,
        "ConsentEvent": topics.CONSENT,
        "Declaration": topics.REGISTRY,
        "Verdict": topics.VERDICTS,
        "Alert": topics.ALERTS,
        "DeadLetter": topics.DEADLETTER,
    }
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    for record in samples:
        producer.send(
            kafka_settings.topic(by_type[type(record).__name__]),
            key=b"k",
            value=codec.encode(record),
        ).get(timeout=30)
    producer.close()
    for record in samples:
        got = _drain(
            kafka_settings.bootstrap_servers,
            kafka_settings.topic(by_type[type(record).__name__]),
            1,
        )
        assert len(got) == 1
        assert codec.decode(type(record), got[0].value) == record


def test_consent_and_usage_of_one_address_share_a_partition(kafka_settings) -> None:
    """Over addresses spread on every partition, with both Python clients we use."""
    pseudo = Pseudonymizer(kafka_settings.pepper.reveal())
    n = kafka_settings.partitions
    keys: dict[int, list[bytes]] = {p: [] for p in range(n)}
    i = 0
    while min(len(v) for v in keys.values()) < 5:
        address = normalize(f"reader{i}@example.org", "email")
        key = subject_message_key(pseudo.subject_key(address))
        keys[partition_for(key, n)].append(key)
        i += 1
    all_keys = [k for ks in keys.values() for k in ks]

    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    consent_parts = {
        k: producer.send(kafka_settings.topic(topics.CONSENT), key=k, value=b"{}").get(30).partition
        for k in all_keys
    }
    producer.close()

    async def usage_partitions() -> dict[bytes, int]:
        p = AIOKafkaProducer(
            bootstrap_servers=kafka_settings.bootstrap_servers, acks="all", enable_idempotence=True
        )
        await p.start()
        try:
            return {
                k: (
                    await p.send_and_wait(kafka_settings.topic(topics.USAGE), b"{}", key=k)
                ).partition
                for k in all_keys
            }
        finally:
            await p.stop()

    usage_parts = asyncio.run(usage_partitions())
    assert set(consent_parts.values()) == set(range(n))
    for key in all_keys:
        assert consent_parts[key] == usage_parts[key] == partition_for(key, n)


def test_hint_and_key_carry_no_address(kafka_settings) -> None:
    pseudo = Pseudonymizer(kafka_settings.pepper.reveal())
    for raw, channel in (("ana.lopez@example.org", "email"), ("+33 6 12 34 56 78", "sms")):
        normalized = normalize(raw, "email" if channel == "email" else "phone")
        blob = (pseudo.subject_key(normalized) + " " + mask(normalized, channel)).encode()
        assert privacy.raw_addresses(blob) == []
        assert privacy.raw_addresses(normalized.encode()) != []  # the scanner does see addresses


SCAN_WAIT_S = 600.0  # a bound, never reached by a healthy broker: the scan stops at the ends


def _partitions(admin: KafkaAdminClient, names: list[str]) -> list[tuple[str, int]]:
    """(topic, partition) of every partition of ``names``, in one metadata request."""
    return [
        (t["name"], p["partition_index"] if "partition_index" in p else p["partition"])
        for t in admin.describe_topics(names)
        for p in t["partitions"]
    ]


async def _scan_for_addresses(
    bootstrap: str, partitions: list[tuple[str, int]]
) -> tuple[int, list[tuple[str, bytes]]]:
    """(records scanned, (topic, first raw address) per record holding one) over every
    record of ``partitions``, each read once to its end offset (``topicread``)."""
    found: list[tuple[str, bytes]] = []
    scanned = 0
    client = {"client_id": f"scan-{uuid.uuid4().hex[:6]}"}
    batches = topicread.batches_to_end(bootstrap, partitions, SCAN_WAIT_S, "the scan", **client)
    async for tp, batch in batches:
        scanned += len(batch)
        # one regex pass over the whole batch; a record is looked at alone only when the
        # batch holds an address (no match can span the newline between records)
        blobs = [(r.key or b"") + b" " + (r.value or b"") for r in batch]
        if privacy.holds_address(b"\n".join(blobs)):
            for blob in blobs:
                hits = privacy.raw_addresses(blob)
                if hits:
                    found.append((tp.topic, hits[0]))
    return scanned, found


@pytest.mark.last
def test_no_raw_address_on_any_topic_the_tests_wrote(kafka_bootstrap, preexisting_topics) -> None:
    """Runs last: scans every topic this run created (whatever its prefix)."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    names = [
        t for t in admin.list_topics() if t not in preexisting_topics and not t.startswith("__")
    ]
    partitions = _partitions(admin, names)
    admin.close()
    dead = {t for t in names if t.endswith(topics.DEADLETTER)}  # sealed payloads only
    scanned, found = asyncio.run(_scan_for_addresses(kafka_bootstrap, partitions))
    assert scanned > 0
    assert not found, (
        f"raw addresses on topics: {found[:5]} (dead-letter topics: {sorted(dead)[:1]})"
    )
