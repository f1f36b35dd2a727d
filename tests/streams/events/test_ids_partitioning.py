from __future__ import annotations

import os

from consentinel.streams.events import ids
from consentinel.streams.events.partitioning import murmur2, partition_for, subject_message_key
from kafka.partitioner.default import murmur2 as kafka_python_murmur2


def test_murmur2_matches_kafka_python_on_random_keys() -> None:
    rng = os.urandom
    for i in range(3000):
        key = rng(i % 97)
        assert murmur2(key) == kafka_python_murmur2(key)


def test_known_java_vectors() -> None:
    # Values from Kafka's own UtilsTest (Java), as unsigned 32-bit ints.
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == (-985981536) & 0xFFFFFFFF


def test_partition_spread() -> None:
    seen = {partition_for(subject_message_key(f"{i:064x}"), 6) for i in range(200)}
    assert seen == set(range(6))


def test_event_ids_are_deterministic_and_source_scoped() -> None:
    a = ids.event_id("mandrill-prod", "synthetic0001", "open", 1767225600)
    assert a == ids.event_id("mandrill-prod", "synthetic0001", "open", 1767225600)
    assert a.startswith("mandrill-prod:")
    assert a != ids.event_id("mandrill-eu", "synthetic0001", "open", 1767225600)
    assert a != ids.event_id("mandrill-prod", "synthetic0001", "click", 1767225600)
    # parts are hashed: an address used as a dedupe part never shows in the id
    assert "ana@example.org" not in ids.event_id("x", "ana@example.org")


def test_alert_ids() -> None:
    assert ids.alert_id("u:1", "R2") == ids.alert_id("u:1", "R2")
    assert ids.alert_id("u:1", "R2") != ids.alert_id("u:1", "R5")
    assert ids.incident_key("acme", None, "R2") == "acme|-|R2"
