"""A broker of a 3-node cluster SIGKILLed in the middle of ingest and checking, then restarted:
no event answered 2xx is lost, and no alert is lost.

The cluster is started by this test through ``deploy/kafka.sh cluster`` (ports from
CONSENTINEL_TEST_CLUSTER_PORT, default 19092-19094; never the shared broker) and deleted at
the end. Topics have replication factor 3 and the brokers min.insync.replicas 2, so the
ingest server's acks=all still completes with one broker of three down: that is the
property under test. An ingest server and a worker run as subprocesses on the cluster; a
signed load (tests/soak/soak_harness.py) posts through the real connectors throughout, and
retries a 503 as platforms do.

Waits are condition-based with generous timeouts; nothing asserts on time.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from consentinel.streams.events import topics
from consentinel.streams.events.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_PORT = int(os.environ.get("CONSENTINEL_TEST_CLUSTER_PORT", "19092"))
REPLICAS = 3


import soak_harness as H  # noqa: E402  (tests/soak is on pytest's pythonpath)
from topicnames import fresh_prefix  # noqa: E402


def _cluster(*args: str) -> str:
    env = {**os.environ, "KAFKA_CLUSTER_PORT": str(CLUSTER_PORT)}
    done = subprocess.run(
        ["bash", str(H.KAFKA_SH), "cluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(
            f"deploy/kafka.sh cluster {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def _describe(bootstrap: str, name: str) -> list[dict[str, Any]]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=30_000)
    try:
        (meta,) = admin.describe_topics([name])
        return list(meta["partitions"])
    finally:
        admin.close()


def _field(partition: dict[str, Any], name: str) -> Any:
    """A partition's ``leader``, ``replicas`` or ``isr`` (kafka-python names them
    ``leader_id``, ``replica_nodes``, ``isr_nodes`` in newer versions)."""
    alias = {"leader": "leader_id", "replicas": "replica_nodes", "isr": "isr_nodes"}[name]
    return partition[alias] if alias in partition else partition[name]


def _brokers(bootstrap: str) -> int:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=30_000)
    try:
        return len(admin.describe_cluster()["brokers"])
    finally:
        admin.close()


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str) -> Iterator[str]:
    """A 3-node KRaft cluster of our own; its data is deleted afterwards."""
    shared = {int(s.rpartition(":")[2]) for s in kafka_bootstrap.split(",")}
    assert not shared & set(range(CLUSTER_PORT, CLUSTER_PORT + REPLICAS)), (
        "the test cluster must not use the shared broker's port"
    )
    _cluster("start")
    try:
        bootstrap = _cluster("bootstrap").strip()
        H.wait_for(lambda: _brokers(bootstrap) == REPLICAS, 120, "3 brokers in the metadata")
        yield bootstrap
    finally:
        _cluster("reset")


def test_broker_sigkill_during_ingest_loses_no_event_and_no_alert(
    cluster: str, make_settings: Any, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    settings: Settings = make_settings(
        topic_prefix=fresh_prefix("cf"),
        bootstrap_servers=cluster,
        partitions=3,
        grace_seconds=30,
        app_id=f"consentinel-cf{run}",
    )
    H.create_topics(settings, REPLICAS)
    usage_topic = settings.topic(topics.USAGE)
    parts = _describe(cluster, usage_topic)
    assert parts and all(len(_field(p, "replicas")) == REPLICAS for p in parts), parts

    worker = H.worker(settings, tmp_path, REPLICAS)
    ingest, url = H.ingest(settings, tmp_path)
    worker.start()
    ingest.start()
    load = None
    try:
        H.wait_for(lambda: H.worker_judging(worker), 180, "the worker to read the registry")
        H.wait_for(lambda: H.ingest_listening(ingest), 60, "the ingest server to listen")
        load = H.Load(settings, url, run)
        load.start(threads=2, pace_s=0.02)
        H.wait_for(lambda: load.readers_done >= 15, 120, "the load to get going")

        # the leader of usage partition 0 (node ids are 1-3, as kafka.sh cluster numbers them)
        victim = str(_field(_describe(cluster, usage_topic)[0], "leader"))
        _cluster("kill", victim)
        killed_at = load.accepted()
        H.wait_for(
            lambda: load.accepted() >= killed_at + 60,
            120,
            "events to be accepted (2xx after acks=all) with one broker of three down",
        )
        _cluster("restart", victim)
        restarted_at = load.accepted()
        H.wait_for(lambda: load.accepted() >= restarted_at + 30, 120, "ingest after the restart")
        load.stop()
        assert worker.alive() and ingest.alive(), "a process of the stack died"
        H.wait_for(
            lambda: all(len(_field(p, "isr")) == REPLICAS for p in _describe(cluster, usage_topic)),
            120,
            "the restarted broker to rejoin every in-sync replica set",
        )

        exp = H.expected(settings, load)
        assert exp.alert_ids and exp.verdict_ids, "the scenario must owe verdicts and alerts"
        found = H.Found.read(settings)

        def complete() -> bool:
            nonlocal found
            found = H.Found.read(settings)
            return exp.verdict_ids <= set(found.verdicts) and exp.alert_ids <= set(found.alerts)

        try:
            H.wait_for(complete, 180, "every verdict and alert the accepted events owe", 3.0)
        finally:
            print(f"\nbroker {victim} of {REPLICAS} SIGKILLed at {killed_at} accepted events")
            print(f"requests: {dict(load.tally.requests)}, retries {load.tally.retries}")
            H.report(exp, found)

        assert exp.usage_ids <= set(found.usage), "usage events answered 2xx are missing"
        assert exp.consent_ids <= set(found.consent), "consent events answered 2xx are missing"
        assert load.tally.gave_up == 0, f"requests never accepted: {load.tally.requests}"
    finally:
        if load is not None:
            load.stop()
        ingest.stop()
        worker.stop()
