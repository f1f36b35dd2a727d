"""Didomi's OAuth client credentials through the ingest server: the token endpoint answers
4xx (never 5xx) to bad input, logs no secret, and the webhook then needs its bearer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from consentinel.connectors import config
from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.runtime.server import IngestServer
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import ConsentEvent

SAMPLES = Path(__file__).parents[1] / "builtin" / "samples" / "didomi"
CLIENT_ID = "didomi-webhooks"
CLIENT_SECRET = "didomi-cc-secret-0123456789abcdef"
CONFIG = """\
instances:
  - name: didomi-acme
    type: didomi
    controller: acme-sa
    purpose_map: {email_marketing: marketing.direct, sms_marketing: marketing.direct}
    options: {auth: oauth, client_id: didomi-webhooks, token_ttl: 600}
    secrets: {client_secret: env:DIDOMI_CLIENT_SECRET}
"""
ENV = {"DIDOMI_CLIENT_SECRET": CLIENT_SECRET}
TOKEN_URL = "/hooks/didomi-acme/token"


class RecordingProducer(EventProducer):
    """Kafka's stand-in: keeps what would be produced."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.records: list[Record] = []

    async def start(self) -> None:
        return None

    @property
    def connected(self) -> bool:
        return True

    async def send_records(self, records: Iterable[Record]) -> int:
        batch = list(records)
        self.records.extend(batch)
        return len(batch)

    async def stop(self) -> None:
        return None


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def ingest(make_settings) -> AsyncIterator[tuple[TestClient, RecordingProducer]]:  # type: ignore[no-untyped-def]
    settings = make_settings(topic_prefix="unit.")
    cfg = config.load_text(CONFIG, settings, environ=ENV)
    producer = RecordingProducer(settings)
    server = IngestServer(settings, cfg, producer, max_body=64 * 1024)
    test_server = TestServer(server.app())
    await test_server.start_server(loop=asyncio.get_running_loop(), **server.runner_kwargs())
    client = TestClient(test_server)
    await client.start_server()
    try:
        yield client, producer
    finally:
        await client.close()


async def _token(client: TestClient) -> str:
    resp = await client.post(
        TOKEN_URL,
        data=b"grant_type=client_credentials",
        headers={**FORM, "Authorization": basic_auth_header(CLIENT_ID, CLIENT_SECRET)},
    )
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    answer = await resp.json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 600
    token: str = answer["access_token"]
    return token


async def test_token_then_webhook_with_its_bearer(ingest, caplog) -> None:  # type: ignore[no-untyped-def]
    client, producer = ingest
    caplog.set_level(logging.DEBUG)
    token = await _token(client)
    body = (SAMPLES / "event_created.json").read_bytes()
    resp = await client.post(
        "/hooks/didomi-acme",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200, await resp.text()
    consents = [codec.decode(ConsentEvent, v) for t, _, v in producer.records]
    assert consents and all(t == "unit." + topics.CONSENT for t, _, _ in producer.records)
    for refused in ({}, {"Authorization": f"Bearer {token[:-3]}AAA"}):
        resp = await client.post(
            "/hooks/didomi-acme", data=body, headers={"Content-Type": "application/json", **refused}
        )
        assert resp.status == 401
    assert CLIENT_SECRET not in caplog.text and token not in caplog.text


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"grant_type=client_credentials", FORM),  # no client credentials
        (
            b"grant_type=client_credentials",
            {**FORM, "Authorization": basic_auth_header(CLIENT_ID, "not-the-secret")},
        ),
        (
            b"grant_type=password",
            {**FORM, "Authorization": basic_auth_header(CLIENT_ID, CLIENT_SECRET)},
        ),
        (b"grant_type=client_credentials", {**FORM, "Authorization": "Basic \xff\xfe"}),
        (b"\xff\xfe\x00" * 10, FORM),
        (b"&" * 3000, FORM),
        (b"x" * 5000, FORM),
        (b"{" * 2000, {"Content-Type": "application/json"}),
        (b"client_id=" + CLIENT_ID.encode() + b"&client_secret=" + CLIENT_SECRET.encode(), FORM),
    ],
)
async def test_bad_token_requests_are_4xx_and_log_no_secret(  # type: ignore[no-untyped-def]
    ingest, caplog, body: bytes, headers: dict[str, str]
) -> None:
    client, producer = ingest
    caplog.set_level(logging.DEBUG)
    resp = await client.post(TOKEN_URL, data=body, headers=headers)
    assert 400 <= resp.status < 500, (resp.status, await resp.text())
    answer = await resp.json()
    assert "access_token" not in answer
    assert CLIENT_SECRET not in caplog.text and CLIENT_SECRET not in await resp.text()
    assert producer.records == [], "a token request is never an event"


async def test_token_endpoint_takes_post_only_and_bounds_its_body(ingest) -> None:  # type: ignore[no-untyped-def]
    client, _ = ingest
    resp = await client.get(TOKEN_URL)
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_request"
    resp = await client.post(TOKEN_URL, data=b"a" * (70 * 1024), headers=FORM)
    assert resp.status == 413
