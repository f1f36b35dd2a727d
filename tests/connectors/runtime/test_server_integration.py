"""The ingest server against the real broker: what lands, what does not, outages."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from consentinel.connectors import config
from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.declarative import EXAMPLES
from consentinel.connectors.runtime.producer import EventProducer
from consentinel.connectors.runtime.server import IngestServer
from consentinel.streams.events import codec, topics
from consentinel.streams.events.partitioning import partition_for
from consentinel.streams.events.records import ConsentEvent, DeadLetter, UsageEvent

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parents[1] / "declarative" / "samples"
AUTH = {"Authorization": basic_auth_header("postmark", "pm-secret-0123456789")}
ENV = {"PM_USER": "postmark", "PM_PASSWORD": "pm-secret-0123456789"}
CONFIG = f"""\
- name: postmark-main
  type: declarative
  mapping: {EXAMPLES / "postmark.yaml"}
  controller: acme-sas
  secrets: {{username: env:PM_USER, password: env:PM_PASSWORD}}
"""
ALL = (topics.USAGE, topics.CONSENT, topics.DEADLETTER)


async def _client(settings, ack_timeout: float = 10.0) -> tuple[TestClient, IngestServer]:  # type: ignore[no-untyped-def]
    cfg = config.load_text(CONFIG, settings, environ=ENV)
    producer = EventProducer(settings, ack_timeout=ack_timeout)
    server = IngestServer(settings, cfg, producer)
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    return client, server


async def test_valid_bad_and_malformed_posts(kafka_settings, topic_reader) -> None:  # type: ignore[no-untyped-def]
    client, _ = await _client(kafka_settings)
    try:
        spam = (SAMPLES / "postmark_spam.json").read_bytes()
        resp = await client.post("/hooks/postmark-main", data=spam, headers=AUTH)
        assert resp.status == 200, await resp.text()

        bad = {"Authorization": basic_auth_header("postmark", "not-the-password")}
        opened = (SAMPLES / "postmark_open.json").read_bytes()
        assert (await client.post("/hooks/postmark-main", data=opened, headers=bad)).status == 401

        broken = b'{"RecordType":"Open","MessageID":"m","Recipient":"x@example.org","ReceivedAt":1}'
        resp = await client.post("/hooks/postmark-main", data=broken, headers=AUTH)
        assert resp.status == 422 and (await resp.json())["error"] == "bad_time"
    finally:
        await client.close()

    usage = topic_reader(kafka_settings, topics.USAGE)
    consent = topic_reader(kafka_settings, topics.CONSENT)
    dead = topic_reader(kafka_settings, topics.DEADLETTER)
    assert len(usage) == 1 and len(consent) == 1, "exactly the spam complaint's two events"
    u = codec.decode(UsageEvent, usage[0][1])
    c = codec.decode(ConsentEvent, consent[0][1])
    assert u.kind == "complaint" and c.action == "withdraw" and u.subject_key == c.subject_key
    assert usage[0][0] == u.subject_key.encode() == consent[0][0]
    assert usage[0][2] == partition_for(usage[0][0], kafka_settings.partitions) == consent[0][2]
    assert len(dead) == 1
    letter = codec.decode(DeadLetter, dead[0][1])
    assert (letter.source, letter.reason_code) == ("postmark-main", "bad_time")
    for _, value, _ in usage + consent + dead:
        assert b"ben.ode" not in value and b"x@example.org" not in value


async def _post_until(client, body: bytes, status: int, deadline: float) -> int:  # type: ignore[no-untyped-def]
    last = 0
    while time.monotonic() < deadline:
        resp = await client.post("/hooks/postmark-main", data=body, headers=AUTH)
        last = resp.status
        if last == status:
            return last
        await asyncio.sleep(1.0)
    return last


async def test_broker_outage_503_then_retry_lands_once(
    second_broker, make_settings, topic_reader
) -> None:  # type: ignore[no-untyped-def]
    from consentinel.streams import topics_admin

    prefix = f"outage{int(time.time())}."
    settings = make_settings(topic_prefix=prefix, bootstrap_servers=second_broker.bootstrap)
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    client, _ = await _client(settings, ack_timeout=3.0)
    try:
        delivered = (SAMPLES / "postmark_delivery.json").read_bytes()
        assert (
            await client.post("/hooks/postmark-main", data=delivered, headers=AUTH)
        ).status == 200

        second_broker.stop()
        opened = (SAMPLES / "postmark_open.json").read_bytes()
        resp = await client.post("/hooks/postmark-main", data=opened, headers=AUTH)
        assert resp.status == 503
        assert int(resp.headers["Retry-After"]) >= 1

        second_broker.start()
        # the platform retries until it gets a 2xx
        assert await _post_until(client, opened, 200, time.monotonic() + 90) == 200
    finally:
        await client.close()
    usage = [codec.decode(UsageEvent, v) for _, v, _ in topic_reader(settings, topics.USAGE)]
    opens = {e.event_id for e in usage if e.kind == "open"}
    delivers = {e.event_id for e in usage if e.kind == "deliver"}
    assert len(opens) == 1, "the retried open lands as exactly one event id"
    assert len(delivers) == 1
