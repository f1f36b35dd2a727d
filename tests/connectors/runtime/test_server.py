"""The ingest server without a broker: a recording producer stands in for Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from consentinel.connectors import config
from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.declarative import EXAMPLES
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.runtime.server import IngestServer
from consentinel.streams.events import codec, metrics, topics
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.records import DeadLetter, UsageEvent
from consentinel.streams.events.sealing import Sealer

SAMPLES = Path(__file__).parents[1] / "declarative" / "samples"
AUTH = {"Authorization": basic_auth_header("postmark", "pm-secret-0123456789")}
CONFIG = f"""\
instances:
  - name: postmark-main
    type: declarative
    mapping: {EXAMPLES / "postmark.yaml"}
    controller: acme-sas
    public_url: https://hooks.acme.example/postmark
    purpose_map: {{newsletter: marketing}}
    secrets: {{username: env:PM_USER, password: env:PM_PASSWORD}}
"""
ENV = {"PM_USER": "postmark", "PM_PASSWORD": "pm-secret-0123456789"}


class RecordingProducer(EventProducer):
    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.records: list[Record] = []
        self.down = False

    async def start(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return not self.down

    async def send_records(self, records: Iterable[Record]) -> int:
        if self.down:
            raise RetriableError("broker down (test)", retry_after=2.5)
        batch = list(records)
        self.records.extend(batch)
        return len(batch)

    async def stop(self) -> None:
        return None


@pytest.fixture
async def ingest(
    make_settings,
) -> AsyncIterator[tuple[TestClient, RecordingProducer, IngestServer]]:  # type: ignore[no-untyped-def]
    settings = make_settings(topic_prefix="unit.")
    cfg = config.load_text(CONFIG, settings, environ=ENV)
    producer = RecordingProducer(settings)
    server = IngestServer(settings, cfg, producer, max_body=64 * 1024)
    test_server = TestServer(server.app())
    # the options `consentinel ingest` runs with (logs, timeouts): given to the runner
    await test_server.start_server(loop=asyncio.get_running_loop(), **server.runner_kwargs())
    client = TestClient(test_server)
    await client.start_server()
    try:
        yield client, producer, server
    finally:
        await client.close()


def _value(metric, **labels) -> float:  # type: ignore[no-untyped-def]
    return metric.labels(**labels)._value.get()


async def test_valid_post_produces_after_ack(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, _ = ingest
    before = _value(metrics.INGEST_REQUESTS, instance="postmark-main", outcome="accepted")
    body = (SAMPLES / "postmark_spam.json").read_bytes()
    resp = await client.post("/hooks/postmark-main", data=body, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {
        "accepted": 2,
        "usage": 1,
        "consent": 1,
        "rejected": 0,
        "spooled": False,
    }
    assert [r[0] for r in producer.records] == ["unit." + topics.USAGE, "unit." + topics.CONSENT]
    usage = codec.decode(UsageEvent, producer.records[0][2])
    assert producer.records[0][1] == usage.subject_key.encode()
    assert usage.source == "postmark-main" and usage.declared_purpose == "marketing"
    assert (
        _value(metrics.INGEST_REQUESTS, instance="postmark-main", outcome="accepted") == before + 1
    )


async def test_bad_credentials_401_nothing_produced(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, _ = ingest
    before = _value(metrics.AUTH_FAILURES, instance="postmark-main", reason="bad_credentials")
    bad = {"Authorization": basic_auth_header("postmark", "wrong")}
    body = (SAMPLES / "postmark_open.json").read_bytes()
    resp = await client.post("/hooks/postmark-main", data=body, headers=bad)
    assert resp.status == 401
    assert (await resp.json())["reason"] == "bad_credentials"
    resp = await client.post("/hooks/postmark-main", data=body)
    assert resp.status == 401
    assert producer.records == []
    assert (
        _value(metrics.AUTH_FAILURES, instance="postmark-main", reason="bad_credentials")
        == before + 1
    )


async def test_malformed_is_deadlettered_sealed(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, server = ingest
    body = b'{"RecordType":"Delivery","MessageID":"m","Recipient":"x@example.org"}'
    resp = await client.post("/hooks/postmark-main", data=body, headers=AUTH)
    assert resp.status == 422
    answer = await resp.json()
    assert answer["error"] == "missing_time" and answer["deadlettered"] is True
    assert len(producer.records) == 1
    topic, key, value = producer.records[0]
    assert topic == "unit." + topics.DEADLETTER and key == b"postmark-main"
    letter = codec.decode(DeadLetter, value)
    assert letter.reason_code == "missing_time" and letter.stage == "ingest"
    assert b"x@example.org" not in value
    sealer = Sealer(server.settings.pepper.reveal())
    assert sealer.open_(letter.sealed_payload) == body
    resp = await client.post("/hooks/postmark-main", data=b"{not json", headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"] == "malformed_json"


async def test_broker_down_is_503_with_retry_after(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, _ = ingest
    producer.down = True
    body = (SAMPLES / "postmark_open.json").read_bytes()
    resp = await client.post("/hooks/postmark-main", data=body, headers=AUTH)
    assert resp.status == 503 and resp.headers["Retry-After"] == "3"
    bad = b'{"RecordType":"Nope"}'
    resp = await client.post("/hooks/postmark-main", data=bad, headers=AUTH)
    assert resp.status == 503, "without a spool, a dead letter that cannot be written is a 503"


async def test_url_rebuilt_from_public_url_and_tail(ingest) -> None:  # type: ignore[no-untyped-def]
    client, _, server = ingest
    seen = []
    connector = server.connectors["postmark-main"]
    original = connector.verify

    def spy(req):  # type: ignore[no-untyped-def]
        seen.append(req)
        return original(req)

    connector.verify = spy  # type: ignore[method-assign]
    body = (SAMPLES / "postmark_open.json").read_bytes()
    await client.post("/hooks/postmark-main/extra/part?token=a&b=", data=body, headers=AUTH)
    req = seen[0]
    assert req.url == "https://hooks.acme.example/postmark/extra/part?token=a&b="
    assert req.path == "/extra/part" and req.query == {"token": ["a"], "b": [""]}
    assert req.body == body and req.header("AUTHORIZATION") == AUTH["Authorization"]


async def test_unknown_instance_and_too_large(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, _ = ingest
    assert (await client.post("/hooks/nope", data=b"{}")).status == 404
    resp = await client.post("/hooks/postmark-main", data=b"x" * (65 * 1024), headers=AUTH)
    assert resp.status == 413
    assert producer.records == []


async def test_health_and_metrics_on_loopback(ingest) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = ingest
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["kafka"] == "connected"
    text = await (await client.get("/metrics")).text()
    assert "consentinel_ingest_requests_total" in text


async def test_logs_carry_no_address_or_body(ingest, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    client, _, _ = ingest
    caplog.set_level(logging.DEBUG)
    spam = (SAMPLES / "postmark_spam.json").read_bytes()
    await client.post("/hooks/postmark-main", data=spam, headers=AUTH)
    await client.post(
        "/hooks/postmark-main", data=b'{"RecordType":"X","Email":"q@example.org"}', headers=AUTH
    )
    await client.post("/hooks/postmark-main", data=spam)
    text = caplog.text
    assert "outcome=accepted" in text and "outcome=deadlettered" in text
    assert "outcome=unauthorized" in text
    assert "ben.ode" not in text and "q@example.org" not in text and "RecordType" not in text
