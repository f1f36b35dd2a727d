"""The console's data-subject lookup (``POST /api/subjects/lookup``) on the real broker: behind
the token, the address in the body only, audited before anything is shown (via console,
with the operator's name), no raw address in the answer."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import privacy
import pytest
from aiohttp.test_utils import TestClient, TestServer
from alerting import alert, audit_records
from consentinel.streams.alerts import console, subjects
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec
from consentinel.streams.events.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789abcdef"  # make_settings' token
ADDRESS = "Jeanne.Martin@Example.org"
PATH = "/api/subjects/lookup"


async def _client(settings: Settings, store: IncidentStore) -> TestClient:
    app = console.make_app(settings, store, [], poll_s=0.05)
    return TestClient(TestServer(app))


@pytest.fixture
async def client(kafka_settings: Settings, tmp_path: Path) -> AsyncIterator[TestClient]:
    key = subjects.subject_key(kafka_settings, ADDRESS)
    hint = subjects.hint(kafka_settings, ADDRESS)
    with IncidentStore(tmp_path / "incidents.db") as store:
        store.ingest(dataclasses.replace(alert("jm-1"), subject_key=key, hint=hint), 1)
        store.ingest(alert("paul-1"), 2)
        async with await _client(kafka_settings, store) as c:
            yield c


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def test_a_lookup_is_audited_then_shown_without_the_address(
    client: TestClient, kafka_settings: Settings
) -> None:
    resp = await client.post(
        PATH, json={"address": ADDRESS, "who": "Jane Martin"}, headers=_bearer()
    )
    assert resp.status == 200, await resp.text()
    data = await resp.read()
    body = codec.loads(data)
    key = subjects.subject_key(kafka_settings, ADDRESS)
    assert body["subject_ref"] == key[:12] + "…"
    assert [a["rule_id"] for a in body["alerts"]] == ["R2"]
    assert [i["status"] for i in body["incidents"]] == ["open"]
    assert body["consent"] == [] and body["uses"] == [] and body["holds"] == []
    assert b"jeanne" not in data.lower() and not privacy.raw_addresses(data)
    (audit,) = audit_records(kafka_settings)
    assert (audit.actor, audit.via, audit.action, audit.subject_key) == (
        "Jane Martin", "console", "subject_lookup", key,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "send JSON"),
        (b'{"who": "Jane"}', "send JSON"),
        (b'{"address": "jeanne@example.org"}', "say who you are"),
        (b'{"address": "jeanne@example.org", "who": "paul@example.org"}', "looks like"),
        (b'{"address": "not an address", "who": "Jane"}', "not an address"),
    ],
)
async def test_a_bad_request_is_refused_and_not_audited(
    client: TestClient, kafka_settings: Settings, body: bytes, says: str
) -> None:
    headers = {**_bearer(), "Content-Type": "application/json"}
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 400
    assert says in (await resp.json())["error"]
    assert audit_records(kafka_settings) == []


async def test_the_lookup_needs_the_token_and_the_csrf_value(client: TestClient) -> None:
    body = {"address": ADDRESS, "who": "Jane"}
    assert (await client.post(PATH, json=body)).status == 401
    resp = await client.get(f"/?token={TOKEN}", allow_redirects=False)  # the session cookie
    assert resp.status == 303
    assert (await client.post(PATH, json=body)).status == 401  # a cookie, no CSRF value


async def test_no_broker_no_lookup(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings(bootstrap_servers="127.0.0.1:9")
    with IncidentStore(tmp_path / "incidents.db") as store:
        async with await _client(settings, store) as c:
            resp = await c.post(PATH, json={"address": ADDRESS, "who": "Jane"}, headers=_bearer())
            assert resp.status == 503
            assert "nothing was shown" in (await resp.json())["error"]
