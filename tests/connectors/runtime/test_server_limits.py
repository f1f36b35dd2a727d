"""The ingest server under bad luck and hostile clients, with a fake batch connector and a
recording producer: per-item dead letters, sizes, the spool and busy answers, verify off
the event loop, slow clients, protocol errors that log nothing of the request."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.config import ConnectorsConfig
from consentinel.connectors.contract import Connector, Instance, ItemRejected, Output, Request
from consentinel.connectors.runtime.deadletters import DeadLetters
from consentinel.connectors.runtime.limits import Limits, body_limit
from consentinel.connectors.runtime.producer import EventProducer, Record, record_size
from consentinel.connectors.runtime.server import IngestServer
from consentinel.connectors.runtime.spool import Spool
from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.records import DeadLetter, UsageEvent
from consentinel.streams.events.sealing import Sealer

TOKEN = {"x-token": "ok"}


class Batchy(Connector):
    """A batch platform: a JSON array of {"email", "id", "pad"}; the bad items refused."""

    name = "batchy"
    title = "test batch connector"
    produces = "usage"
    auth = "x-token header"
    busy_status = 429
    verifying = threading.Event()
    release = threading.Event()

    def verify(self, request: Request) -> None:
        if request.body.startswith(b"slow"):  # a large form whose checks take a while
            Batchy.verifying.set()
            Batchy.release.wait(20)
            Batchy.verifying.clear()
        if request.header("x-token") != "ok":
            raise AuthenticationFailed("bad_signature", "no token", scheme="test")

    def map_request(self, request: Request) -> Output:
        if request.method == "GET":  # a platform's check that the URL answers
            return Output()
        items = codec.loads(request.body)
        if not isinstance(items, list):
            raise InvalidInput("not_an_array", "the body is not a JSON array")
        out = Output()
        for i, item in enumerate(items):
            if "email" not in item:
                out.rejected.append(
                    ItemRejected(i, "missing_email", "item has no email", codec.dumps(item))
                )
                continue
            addr = self.edge.address(item["email"], "email")
            out.usage.append(
                UsageEvent(
                    event_id=f"batchy-{item['id']}",
                    occurred_at_ms=1_700_000_000_000,
                    received_at_ms=request.received_at_ms,
                    source=self.instance.name,
                    processor="batchy",
                    channel="email",  # type: ignore[arg-type]
                    kind="send",  # type: ignore[arg-type]
                    subject_key=addr.key,
                    hint=addr.hint,
                    controller=self.instance.controller,
                    campaign_id=item.get("pad", "") * item.get("repeat", 1) or None,
                )
            )
        return out


class RecordingProducer(EventProducer):
    def __init__(self, settings, max_request_size: int = 1024 * 1024) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings, max_request_size=max_request_size)
        self.records: list[Record] = []
        self.down = False

    async def start(self) -> None:
        return None

    async def send_records(self, records: Iterable[Record]) -> int:
        if self.down:
            raise RetriableError("broker down (test)", retry_after=2.5)
        batch = list(records)
        for _, key, value in batch:  # what Kafka would do with a record too large
            assert self.fits(key, value), f"a {len(value)}-byte record reached the producer"
        self.records.extend(batch)
        return len(batch)

    async def stop(self) -> None:
        return None


async def _serve(
    make_settings: Any, tmp_path: Path, *, spool: bool = False, **limits: Any
) -> tuple[TestClient, RecordingProducer, IngestServer]:
    settings = make_settings(topic_prefix="unit.")
    inst = Instance(name="batchy-main", type="batchy", controller="acme-sas")
    cfg = ConnectorsConfig("test", {"batchy-main": inst}, {"batchy-main": Batchy})
    producer = RecordingProducer(settings, limits.pop("max_record", 1024 * 1024))
    spooler = None
    if spool:
        spooler = Spool(tmp_path / "spool", Sealer(settings.pepper.reveal()), max_bytes=4096)
        spooler.open()
    lim = Limits.for_record(producer.max_request_size, **limits) if limits else None
    server = IngestServer(settings, cfg, producer, limits=lim, spool=spooler)
    test_server = TestServer(server.app())
    # the options `consentinel ingest` runs with (logs, timeouts): given to the runner
    await test_server.start_server(loop=asyncio.get_running_loop(), **server.runner_kwargs())
    client = TestClient(test_server)
    await client.start_server()
    return client, producer, server


@pytest.fixture
async def ingest(
    make_settings, tmp_path
) -> AsyncIterator[tuple[TestClient, RecordingProducer, IngestServer]]:  # type: ignore[no-untyped-def]
    client, producer, server = await _serve(make_settings, tmp_path)
    try:
        yield client, producer, server
    finally:
        await client.close()


def _letters(producer: RecordingProducer) -> list[DeadLetter]:
    return [
        codec.decode(DeadLetter, v) for t, _, v in producer.records if t.endswith(topics.DEADLETTER)
    ]


async def test_bad_items_are_dead_lettered_one_by_one_and_the_rest_accepted(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, server = ingest
    batch = [
        {"email": "a@example.org", "id": "1"},
        {"id": "2", "note": "no address here"},
        {"email": "b@example.org", "id": "3"},
    ]
    resp = await client.post("/hooks/batchy-main", data=codec.dumps(batch), headers=TOKEN)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    usage = [codec.decode(UsageEvent, v) for t, _, v in producer.records if t.endswith("usage.v1")]
    assert [u.event_id for u in usage] == ["batchy-1", "batchy-3"]
    (letter,) = _letters(producer)
    assert (letter.reason_code, letter.attributes["index"]) == ("missing_email", 1)
    sealer = Sealer(server.settings.pepper.reveal())
    assert codec.loads(sealer.open_(letter.sealed_payload)) == batch[1]


async def test_an_event_too_large_to_write_is_a_dead_letter_not_a_503(
    make_settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    client, producer, _ = await _serve(make_settings, tmp_path, max_record=64 * 1024)
    try:
        # a body within the limit whose event is not (a form's `"` becomes `\"` in JSON;
        # here the connector repeats a field): the event is dead-lettered, cut to fit
        batch = [
            {"email": "a@example.org", "id": "1", "pad": "c" * 30_000, "repeat": 3},
            {"email": "b@example.org", "id": "2"},
        ]
        resp = await client.post("/hooks/batchy-main", data=codec.dumps(batch), headers=TOKEN)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["rejected"] == 1
        (letter,) = _letters(producer)
        assert letter.reason_code == "usage_too_large" and letter.attributes["truncated"] is True
        usage = [k for t, k, _ in producer.records if t.endswith("usage.v1")]
        assert len(usage) == 1, "the other event of the batch is produced"
        assert all(record_size(k, v) <= 64 * 1024 for _, k, v in producer.records)
    finally:
        await client.close()


async def test_body_limit_derives_from_the_record_size(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, server = ingest
    assert server.max_body == body_limit(1024 * 1024) < 1024 * 1024
    too_big = b"[" + b" " * server.max_body + b"]"
    resp = await client.post("/hooks/batchy-main", data=too_big, headers=TOKEN)
    assert resp.status == 413
    # the largest accepted body that cannot be parsed still fits in its dead letter
    garbage = b"{" * server.max_body
    resp = await client.post("/hooks/batchy-main", data=garbage, headers=TOKEN)
    assert resp.status == 400, await resp.text()
    (letter,) = _letters(producer)
    assert "truncated" not in letter.attributes
    assert all(record_size(k, v) <= 1024 * 1024 for _, k, v in producer.records)


def test_a_dead_letter_too_large_is_cut_with_size_and_digest(make_settings) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    letters = DeadLetters(make_settings(), max_record=8 * 1024)
    payload = bytes(range(256)) * 100  # 25,600 bytes
    letter = letters.letter("src", InvalidInput("bad", "bad input"), payload, stage="ingest")
    assert record_size(b"src", codec.encode(letter)) <= 8 * 1024
    assert letter.attributes["truncated"] is True
    assert letter.attributes["original_bytes"] == len(payload)
    assert letter.attributes["original_sha256"] == hashlib.sha256(payload).hexdigest()
    kept = letters.open_(letter)
    assert 0 < len(kept) < len(payload) and payload.startswith(kept)
    assert (letter.reason_code, letter.reason) == ("bad", "bad input")


async def test_kafka_away_spools_and_answers_2xx_then_busy_status_when_full(
    make_settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    client, producer, server = await _serve(make_settings, tmp_path, spool=True)
    try:
        producer.down = True
        item = [{"email": "a@example.org", "id": "1"}]
        resp = await client.post("/hooks/batchy-main", data=codec.dumps(item), headers=TOKEN)
        assert resp.status == 200 and (await resp.json())["spooled"] is True
        assert server.spool is not None and server.spool.events == 1
        pad = [{"email": "a@example.org", "id": "2", "pad": "x" * 5000}]
        resp = await client.post("/hooks/batchy-main", data=codec.dumps(pad), headers=TOKEN)
        assert resp.status == 429, "the spool is full: the platform's retried status"
        assert int(resp.headers["Retry-After"]) >= 1
        producer.down = False
        for _ in range(100):
            if server.spool.empty:
                break
            await asyncio.sleep(0.1)
        assert [codec.decode(UsageEvent, v).event_id for _, _, v in producer.records] == [
            "batchy-1"
        ]
    finally:
        await client.close()
        if server.spool is not None:
            server.spool.close()


async def test_no_spool_answers_the_connectors_busy_status(ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, _ = ingest
    producer.down = True
    item = [{"email": "a@example.org", "id": "1"}]
    resp = await client.post("/hooks/batchy-main", data=codec.dumps(item), headers=TOKEN)
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"


async def test_healthz_answers_while_a_large_unsigned_form_is_verified(ingest) -> None:  # type: ignore[no-untyped-def]
    client, _, server = ingest
    Batchy.release.clear()
    form = b"slow=1&" + b"Body=" + b"x" * (server.max_body - 20)
    post = asyncio.ensure_future(client.post("/hooks/batchy-main", data=form))
    try:
        for _ in range(200):  # wait until the check has started (not a timing assertion)
            if Batchy.verifying.is_set():
                break
            await asyncio.sleep(0.05)
        assert Batchy.verifying.is_set(), "verify never started, or it ran on the event loop"
        health = await asyncio.wait_for(client.get("/healthz"), timeout=15)
        assert health.status == 200
        assert Batchy.verifying.is_set(), "/healthz answered only after verify had finished"
    finally:
        Batchy.release.set()
    assert (await post).status == 401


async def test_bodies_held_at_once_are_bounded(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _, server = await _serve(
        make_settings, tmp_path, max_body=10_000, inflight_bytes=10_000, busy_wait_s=0.2
    )
    try:
        assert await server.budget.acquire(10_000, 1.0)  # a request in progress holds it all
        item = codec.dumps([{"email": "a@example.org", "id": "1"}])
        resp = await client.post("/hooks/batchy-main", data=item, headers=TOKEN)
        assert resp.status == 429 and "Retry-After" in resp.headers
        resp = await client.get("/hooks/batchy-main", headers=TOKEN)
        assert resp.status == 200, "a request without a body holds no bytes: it never waits"
        await server.budget.release(10_000)
        resp = await client.post("/hooks/batchy-main", data=item, headers=TOKEN)
        assert resp.status == 200
    finally:
        await client.close()


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            while await reader.read(1024):
                pass
        return True
    except TimeoutError:
        return False


async def test_slow_headers_and_slow_bodies_are_cut_off(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = await _serve(make_settings, tmp_path, header_timeout_s=1.0, body_timeout_s=1.0)
    try:
        port = client.server.port
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(b"POST /hooks/batchy-main HTTP/1.1\r\nHost: x\r\nX-Tok")  # never finished
        await w1.drain()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(
            b"POST /hooks/batchy-main HTTP/1.1\r\nHost: x\r\nx-token: ok\r\n"
            b"Content-Length: 1000\r\n\r\n[{"
        )
        await w2.drain()
        assert await _closed_by_server(r1, 30), "a connection that never sent its headers stayed"
        assert await _closed_by_server(r2, 30), "a connection that never sent its body stayed"
        w1.close()
        w2.close()
    finally:
        await client.close()


async def test_protocol_errors_log_no_request_line_or_body(ingest, caplog) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = ingest
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"CONNECT secret.example.org:443 HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n"
        b"victim.person@example.org\n"
    )
    await writer.drain()
    await _closed_by_server(reader, 10)
    writer.close()
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer2.write(b"GET /hooks/x?to=victim.person@example.org HTTP/1.1\r\nHost: \x01bad\r\n\r\n")
    await writer2.drain()
    await _closed_by_server(reader2, 10)
    writer2.close()
    text = caplog.text
    assert "victim.person" not in text and "secret.example.org" not in text
