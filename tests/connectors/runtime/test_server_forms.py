"""A form-signed platform (Twilio) through the real server: checks run on the thread pool,
a large unsigned form is refused while /healthz keeps answering, a signed one is taken in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from consentinel.connectors import config
from consentinel.connectors.builtin import twilio
from consentinel.connectors.contract import Request
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.runtime.server import IngestServer
from consentinel.streams.events import codec
from consentinel.streams.events.records import UsageEvent

URL = "https://hooks.example.test/twilio"
CONFIG = f"""\
- name: twilio-acme
  type: twilio
  controller: acme-sa
  public_url: {URL}
  secrets: {{auth_token: env:TW_TOKEN}}
"""
ENV = {"TW_TOKEN": "test_auth_token_0000000000000000"}
FORM = "application/x-www-form-urlencoded"


class Recording(EventProducer):
    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.records: list[Record] = []

    async def start(self) -> None:
        return None

    async def send_records(self, records: Iterable[Record]) -> int:
        batch = list(records)
        self.records.extend(batch)
        return len(batch)

    async def stop(self) -> None:
        return None


@pytest.fixture
async def twilio_ingest(make_settings) -> AsyncIterator[tuple[TestClient, Recording, IngestServer]]:  # type: ignore[no-untyped-def]
    settings = make_settings(topic_prefix="unit.")
    cfg = config.load_text(CONFIG, settings, environ=ENV)
    producer = Recording(settings)
    server = IngestServer(settings, cfg, producer)
    test_server = TestServer(server.app())
    await test_server.start_server(loop=asyncio.get_running_loop(), **server.runner_kwargs())
    client = TestClient(test_server)
    await client.start_server()
    try:
        yield client, producer, server
    finally:
        await client.close()


async def test_a_large_unsigned_form_is_refused_and_health_answers(twilio_ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, server = twilio_ingest
    pairs = [(f"P{i}", "x" * 40) for i in range(server.max_body // 50)]
    body = urlencode(pairs).encode()[: server.max_body]
    headers = {"content-type": FORM, "x-twilio-signature": "Zm9yZ2VkLXNpZ25hdHVyZQ=="}
    posts = [
        asyncio.ensure_future(client.post("/hooks/twilio-acme", data=body, headers=headers))
        for _ in range(3)
    ]
    health = [await asyncio.wait_for(client.get("/healthz"), timeout=30) for _ in range(5)]
    assert [h.status for h in health] == [200] * 5
    assert [(await p).status for p in posts] == [401, 401, 401]
    assert producer.records == []


async def test_a_signed_form_is_taken_in(twilio_ingest) -> None:  # type: ignore[no-untyped-def]
    client, producer, server = twilio_ingest
    fields = {
        "MessageSid": "SM44444444444444444444444444444444",
        "MessageStatus": "delivered",
        "To": "+33612345678",
        "From": "+33700000000",
        "AccountSid": "AC00000000000000000000000000000000",
    }
    body = urlencode(fields).encode()
    inst = server.connectors["twilio-acme"].instance
    unsigned = Request("POST", URL, "/", {}, {"content-type": FORM}, body)
    signed = twilio.sign(unsigned, inst)
    headers = {"content-type": FORM, "x-twilio-signature": signed.headers["x-twilio-signature"]}
    resp = await client.post("/hooks/twilio-acme", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    (record,) = producer.records
    event = codec.decode(UsageEvent, record[2])
    assert event.source == "twilio-acme" and b"612345678" not in record[2]
