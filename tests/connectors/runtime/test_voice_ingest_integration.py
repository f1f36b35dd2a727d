"""The voice connectors and the Meta lead retriever in the ingest server, on the real
broker: a Twilio call's end, a refusal heard in a call, a Vonage call's end, and a Meta
leadgen notification fetched from a local fake Graph API (a real aiohttp server)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from consentinel.connectors import config
from consentinel.connectors.builtin import meta_leads, twilio_voice, vonage_voice
from consentinel.connectors.contract import Request
from consentinel.connectors.runtime.producer import EventProducer
from consentinel.connectors.runtime.server import IngestServer
from consentinel.connectors.testkit import instance
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import ConsentEvent, UsageEvent

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parents[1] / "builtin" / "samples"
PUBLIC = "https://hooks.acme.example/hooks"
ENV = {
    "TW_TOKEN": "test_auth_token_0000000000000000",
    "VG_SECRET": "sig_secret_synthetic",
    "META_SECRET": "app_secret_synthetic",
    "META_VERIFY": "verify-token-synthetic",
    "META_PAGE": "page-token-synthetic-0123456789",
}


def _config(graph_url: str) -> str:
    return f"""\
- name: twilio-calls
  type: twilio_voice
  controller: acme-sas
  public_url: {PUBLIC}/twilio-calls
  secrets: {{auth_token: env:TW_TOKEN}}
- name: vonage-calls
  type: vonage_voice
  controller: acme-sas
  secrets: {{signature_secret: env:VG_SECRET}}
- name: meta-leads
  type: meta_lead_retriever
  controller: acme-sas
  purpose_map: {{newsletter_optin: marketing}}
  options: {{graph_url: "{graph_url}", fetch_timeout_s: 5}}
  secrets: {{app_secret: env:META_SECRET, verify_token: env:META_VERIFY, page_token: env:META_PAGE}}
"""


def _sample(folder: str, name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((SAMPLES / folder / f"{name}.json").read_text("utf-8"))
    return data


def _signed(sign, connector: str, url: str, body: bytes, secrets: dict[str, str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    request = Request("POST", url, "/", {}, {}, body)
    return dict(sign(request, instance(connector, secrets=secrets)).headers)


async def _fake_graph() -> TestServer:
    lead = codec.loads((SAMPLES / "meta_leads" / "lead.json").read_bytes())

    async def get(request: web.Request) -> web.Response:
        if request.query.get("access_token") != ENV["META_PAGE"]:
            return web.json_response({"error": {"code": 190}}, status=400)
        return web.json_response(lead)

    app = web.Application()
    app.router.add_get("/v21.0/{lead}", get)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_calls_refusals_and_fetched_leads_land_on_the_broker(  # type: ignore[no-untyped-def]
    kafka_settings, topic_reader
) -> None:
    graph = await _fake_graph()
    cfg = config.load_text(_config(str(graph.make_url(""))), kafka_settings, environ=ENV)
    server = IngestServer(kafka_settings, cfg, EventProducer(kafka_settings))
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    form = {"content-type": "application/x-www-form-urlencoded"}
    try:
        query = "?campaign=renov-2026&attempt=2"
        token = {"auth_token": ENV["TW_TOKEN"]}
        for name in ("completed", "gather_speech"):
            body = urlencode(_sample("twilio_voice", name)).encode()
            url = f"{PUBLIC}/twilio-calls{query}"
            headers = _signed(twilio_voice.sign, "twilio_voice", url, body, token)
            resp = await client.post(
                f"/hooks/twilio-calls{query}", data=body, headers={**form, **headers}
            )
            assert resp.status == 200, await resp.text()

        body = codec.dumps(_sample("vonage_voice", "completed"))
        secret = {"signature_secret": ENV["VG_SECRET"]}
        headers = _signed(vonage_voice.sign, "vonage_voice", "http://x/", body, secret)
        resp = await client.post("/hooks/vonage-calls", data=body, headers=headers)
        assert resp.status == 200, await resp.text()

        body = (SAMPLES / "meta_leads" / "notification.json").read_bytes().strip()
        secret = {"app_secret": ENV["META_SECRET"]}
        headers = _signed(meta_leads.sign, "meta_lead_ads", "http://x/", body, secret)
        resp = await client.post("/hooks/meta-leads", data=body, headers=headers)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["usage"] == 2  # the fetched lead: its e-mail and phone
    finally:
        await client.close()
        await graph.close()

    usage = [codec.decode(UsageEvent, v) for _, v, _ in topic_reader(kafka_settings, topics.USAGE)]
    consent = [
        codec.decode(ConsentEvent, v) for _, v, _ in topic_reader(kafka_settings, topics.CONSENT)
    ]
    calls = [u for u in usage if u.kind == "call"]
    assert sorted(u.source for u in calls) == ["twilio-calls", "vonage-calls"]
    twilio_call = next(u for u in calls if u.source == "twilio-calls")
    assert twilio_call.attributes["attempt"] == 2 and twilio_call.campaign_id == "renov-2026"
    refusals = [c for c in consent if c.action == "refuse" and c.source == "twilio-calls"]
    assert len(refusals) == 1 and refusals[0].subject_key == twilio_call.subject_key
    assert [u.kind for u in usage if u.source == "meta-leads"] == ["lead_delivered"] * 2
    for event in [*usage, *consent]:
        raw = codec.dumps(event)
        assert b"612345678" not in raw and b"ana.lima" not in raw
