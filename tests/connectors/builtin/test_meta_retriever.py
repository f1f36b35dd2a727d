"""Meta lead retriever: leadgen notifications fetched from a local fake Graph API (a real
aiohttp server on 127.0.0.1), the Leads Center CSV export, the conformance kit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from consentinel.connectors import testkit as kit
from consentinel.connectors.builtin import meta_retriever
from consentinel.connectors.builtin.meta_leads import sign
from consentinel.connectors.builtin.meta_retriever import (
    GraphUnavailable,
    LeadRetriever,
    MetaLeadRetriever,
)
from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.runtime.rows import read_records
from consentinel.streams.events import codec
from consentinel.streams.events.records import ConsentAction, UsageKind

HERE = Path(__file__).parent / "samples"
RECEIVED = 1_767_225_700_000
SECRET = "app_secret_synthetic"
TOKEN = "page-token-synthetic-0123456789"
LEAD = codec.loads((HERE / "meta_leads" / "lead.json").read_bytes())  # connectors.md §3.1


class FakeGraph:
    """GET /<version>/<lead id>: the lead with the right token and proof; Graph errors
    otherwise (code 100 for an unknown lead, 190 for a bad token, 500 for lead ...500)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # the port is known before the server runs
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[tuple[str, Mapping[str, str]]] = []
        self.leads = {LEAD["id"]: LEAD}
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None

    async def lead(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        query = request.query
        proof = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
        if query.get("access_token") != TOKEN or query.get("appsecret_proof") != proof:
            return _graph_error(400, 190, "OAuthException")
        lead_id = request.match_info["lead"]
        if lead_id.endswith("500"):
            return web.Response(status=500, text="oops")
        if lead_id.endswith("999"):
            await asyncio.sleep(2)  # slower than the instance's fetch timeout
        if lead_id not in self.leads:
            return _graph_error(400, 100, "GraphMethodException")
        wanted = set(query.get("fields", "").split(","))
        return web.json_response({k: v for k, v in self.leads[lead_id].items() if k in wanted})

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v21.0/{lead}", self.lead)
        threading.Thread(target=self.loop.run_forever, name="fake-graph", daemon=True).start()

        async def up() -> None:
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.SockSite(self.runner, self.sock).start()

        asyncio.run_coroutine_threadsafe(up(), self.loop).result(10)

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _graph_error(status: int, code: int, kind: str) -> web.Response:
    error = {"message": "synthetic", "type": kind, "code": code, "fbtrace_id": "AbCdEf"}
    return web.json_response({"error": error}, status=status)


GRAPH = FakeGraph()


@pytest.fixture(scope="module", autouse=True)
def fake_graph() -> Iterator[FakeGraph]:
    GRAPH.start()
    yield GRAPH
    GRAPH.stop()


def inst(**options: Any) -> Instance:
    return kit.instance(
        "meta_lead_retriever",
        name="meta-retriever-acme",
        controller="acme-shop",
        secrets={"app_secret": SECRET, "verify_token": "verify-token", "page_token": TOKEN},
        purpose_map={
            "newsletter_optin": "editorial.newsletter",
            "partner_share": "marketing.partner_transfer",
        },
        options={"graph_url": GRAPH.url, "fetch_timeout_s": 5, **options},
    )


INST = inst()


def signed(raw: bytes, instance_: Instance = INST) -> Request:
    url = "https://hooks.example.test/hooks/meta-retriever-acme"
    request = Request(
        "POST",
        url,
        urlsplit(url).path,
        {},
        {"content-type": "application/json"},
        raw,
        received_at_ms=RECEIVED,
    )
    return sign(request, instance_)


def notification(*lead_ids: str) -> bytes:
    changes = [
        {"field": "leadgen", "value": {"leadgen_id": i, "page_id": "100000000000001"}}
        for i in lead_ids
    ]
    return codec.dumps({"object": "page", "entry": [{"id": "100000000000001", "changes": changes}]})


def mapped(raw: bytes, instance_: Instance = INST) -> Any:
    connector = MetaLeadRetriever(instance_, kit.make_edge())
    request = signed(raw, instance_)
    connector.verify(request)
    return connector.map_request(request)


def test_a_notification_becomes_the_fetched_lead_events() -> None:
    before = len(GRAPH.requests)
    out = mapped((HERE / "meta_leads" / "notification.json").read_bytes().strip())
    assert [u.kind for u in out.usage] == [UsageKind.LEAD_DELIVERED] * 2  # email and phone
    assert (
        sorted(c.action for c in out.consent)
        == [ConsentAction.GRANT] * 2 + [ConsentAction.REFUSE] * 2
    )
    path, query = GRAPH.requests[before]
    assert path == "/v21.0/200000000000001"
    assert query["access_token"] == TOKEN and "field_data" in query["fields"]
    email = kit.make_edge().address("ana.lima@example.org", "email").key
    assert email in {u.subject_key for u in out.usage}


def test_fetched_and_posted_lead_give_the_same_ids() -> None:
    fetched = mapped(notification("200000000000001"))
    posted = mapped(codec.dumps(LEAD))
    assert [e.event_id for e in fetched.usage] == [e.event_id for e in posted.usage]
    assert [e.event_id for e in fetched.consent] == [e.event_id for e in posted.consent]


def test_an_unavailable_lead_is_refused_alone() -> None:
    out = mapped((HERE / "meta_retriever" / "notification_two.json").read_bytes())
    assert len(out.usage) == 2
    (rejected,) = out.rejected
    assert (rejected.index, rejected.code) == (1, "lead_unavailable")
    assert b"200000000000404" in rejected.raw and b"@" not in rejected.raw
    assert "100" in rejected.message


def test_graph_outage_and_bad_token_are_retriable() -> None:
    with pytest.raises(GraphUnavailable) as err:
        mapped(notification("200000000000001", "200000000000500"))
    assert str(err.value).endswith("now (500)")
    connector = MetaLeadRetriever(INST, kit.make_edge())
    http = meta_retriever.AiohttpGraphHttp()
    connector.retriever = LeadRetriever(
        http,
        token=b"wrong-token",
        app_secret=SECRET.encode(),
        base_url=GRAPH.url,
    )
    with pytest.raises(GraphUnavailable) as err:
        connector.map_request(signed(notification("200000000000001")))
    assert str(err.value).endswith("(400, Graph error code 190)")
    assert "wrong-token" not in str(err.value)
    meta_retriever._LOOP.run(http.close(), 5)


def test_unreachable_graph_is_retriable_without_the_token_in_the_message() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there
    with pytest.raises(GraphUnavailable) as err:
        mapped(notification("200000000000001"), inst(graph_url=url))
    assert TOKEN not in str(err.value)


def test_a_slow_graph_is_retriable() -> None:
    with pytest.raises(GraphUnavailable) as err:
        mapped(notification("200000000000999"), inst(fetch_timeout_s=0.2))
    assert "did not answer" in str(err.value) and "TimeoutError" in str(err.value)


class RecordingHttp:
    """A plugged-in client: answers from memory, remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get_json(
        self, url: str, params: Mapping[str, str], timeout_s: float
    ) -> tuple[int, Any]:
        self.asked.append(url)
        return 200, LEAD


def test_the_http_client_is_pluggable() -> None:
    http = RecordingHttp()
    connector = MetaLeadRetriever(INST, kit.make_edge(), http=http)
    out = connector.map_request(signed(notification("200000000000001")))
    assert http.asked == [f"{GRAPH.url}/v21.0/200000000000001"]
    assert len(out.usage) == 2


def test_other_page_fields_fetch_nothing() -> None:
    before = len(GRAPH.requests)
    feed = {"object": "page", "entry": [{"id": "1", "changes": [{"field": "feed", "value": {}}]}]}
    assert len(mapped(codec.dumps(feed))) == 0
    assert len(GRAPH.requests) == before


# -- the CSV export -----------------------------------------------------------------------


def export_rows() -> list[dict[str, Any]]:
    return [
        dict(r.row or {}) for r in read_records(HERE / "meta_retriever" / "leads_export.csv", "csv")
    ]


def test_export_rows_map_like_leads() -> None:
    connector = MetaLeadRetriever(INST, kit.make_edge())
    first, second = (connector.map_row(row) for row in export_rows())
    edge = kit.make_edge()
    assert {u.subject_key for u in first.usage} == {
        edge.address("bruno.costa@example.org", "email").key,
        edge.address("+33612345601", "phone").key,
    }
    assert first.usage[0].attributes["lead_id"] == "200000000000011"  # prefix l: dropped
    assert first.usage[0].campaign_id == "500000000000001"
    newsletter = [c for c in first.consent if c.purposes == ["editorial.newsletter"]]
    assert {c.action for c in newsletter} == {ConsentAction.GRANT}
    partner = [c for c in second.consent if c.purposes == ["marketing.partner_transfer"]]
    assert {c.action for c in partner} == {ConsentAction.GRANT}


def test_an_exported_lead_has_the_ids_of_the_same_lead_fetched() -> None:
    row: dict[str, Any] = {k: str(LEAD[k]) for k in ("created_time", "platform")}
    row |= {key: f"{prefix}:{LEAD[key]}" for key, prefix in (("id", "l"), ("form_id", "f"))}
    row |= {item["name"]: item["values"][0] for item in LEAD["field_data"]}  # email, phone, name
    row |= {"is_organic": "false", "newsletter_optin": "1", "partner_share": ""}
    exported = MetaLeadRetriever(INST, kit.make_edge()).map_row(row)
    fetched = mapped(notification("200000000000001"))
    assert [e.event_id for e in exported.usage] == [e.event_id for e in fetched.usage]
    assert [e.event_id for e in exported.consent] == [e.event_id for e in fetched.consent]
    assert [c.action for c in exported.consent] == [c.action for c in fetched.consent]


def test_export_checkbox_columns_can_be_listed() -> None:
    connector = MetaLeadRetriever(inst(export_consent_columns=["partner_share"]), kit.make_edge())
    out = connector.map_row(export_rows()[0])
    assert {tuple(c.purposes) for c in out.consent} == {("marketing.partner_transfer",)}
    assert {c.action for c in out.consent} == {ConsentAction.REFUSE}


# -- conformance --------------------------------------------------------------------------

CASE = kit.ConnectorCase(
    connector="meta_lead_retriever",
    instance=INST,
    samples=(
        kit.Sample("notification", signed(notification("200000000000001")), usage=2, consent=4),
        kit.Sample("lead", signed((HERE / "meta_leads" / "lead_boolean.json").read_bytes()), 1, 3),
    ),
    sign=sign,
    malformed=(
        b'{"object":"page","entry":[{"id":"1","changes":[{"field":"leadgen","value":{}}]}]}',
        b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"x/y"}}]}]}',
    ),
    signed_parts=("body",),
    signature="header:x-hub-signature-256",
    rows=tuple(export_rows()),
)

TestMetaRetrieverConformance = kit.conformance_suite(CASE)
