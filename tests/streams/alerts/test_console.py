"""The console's handlers on a store filled with synthetic alerts: access, lifecycle, live
feed, exports (exactly the evidence, never a raw address) and the metrics panels."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import console_support as support  # tests/streams/alerts is on pytest's pythonpath
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from consentinel.streams.alerts import console
from consentinel.streams.alerts.console_evidence import FIELDS, scrub
from consentinel.streams.alerts.console_metrics import parse, quantile, summarize
from consentinel.streams.alerts.store import IncidentStore
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

privacy = support.privacy

TOKEN = "test-token-0123456789abcdef"


def _no_raw(data: bytes, what: str) -> None:
    found = privacy.raw_addresses(data)
    assert not found, f"{what} holds raw addresses: {found[:3]}"
    for raw in support.RAW_ALL:
        assert raw.encode() not in data, f"{what} holds {raw!r}"


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    s = IncidentStore(tmp_path / "incidents.db")
    support.fill(s, [*support.campaign_alerts(), support.sms_after_stop_alert()])
    yield s
    s.close()


async def _metrics_server() -> TestServer:
    """A /metrics endpoint with catalog metrics, as a worker exposes them."""
    reg = CollectorRegistry()
    consumed = Counter(
        "consentinel_events_consumed", "", ("topic", "source", "channel"), registry=reg
    )
    consumed.labels("consentinel.usage.v1", "mailchimp-broker", "email").inc(40)
    consumed.labels("consentinel.consent.v1", "news-cmp", "email").inc(25)
    verdicts = Counter("consentinel_verdicts", "", ("decision", "rule"), registry=reg)
    verdicts.labels("allowed", "").inc(30)
    verdicts.labels("violation", "R2").inc(10)
    verdicts.labels("pending", "").inc(5)
    Gauge("consentinel_consumer_lag", "", ("topic",), registry=reg).labels(
        "consentinel.usage.v1"
    ).set(7)
    Gauge("consentinel_pending_usages", "", registry=reg).set(3)
    h = Histogram(
        "consentinel_event_to_verdict_seconds", "", registry=reg, buckets=(0.1, 1.0, 10.0)
    )
    for v in (0.05, 0.05, 0.5, 5.0):
        h.observe(v)
    Counter("consentinel_ingest_auth_failures", "", ("instance", "reason"), registry=reg).labels(
        "mailchimp-broker", "bad_signature"
    ).inc(2)
    body = generate_latest(reg)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def client(store: IncidentStore, make_settings) -> AsyncIterator[TestClient]:
    metrics = await _metrics_server()
    urls = [str(metrics.make_url("/metrics")), "http://127.0.0.1:9/metrics"]  # 2nd: down
    app = console.make_app(make_settings(), store, urls, poll_s=0.05)
    async with TestClient(TestServer(app)) as c:
        yield c
    await metrics.close()


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def _incidents(client: TestClient, status: str = "") -> list[dict]:
    resp = await client.get(f"/api/incidents?status={status}", headers=_bearer())
    assert resp.status == 200
    return (await resp.json())["incidents"]


async def _campaign_incident(client: TestClient) -> dict:
    found = [i for i in await _incidents(client) if i["controller"] == "campaign-x"]
    assert len(found) == 1
    return found[0]


# -- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/incidents/in-x", "/static/app.js", "/api/incidents", "/api/feed", "/api/panels",
     "/api/stats", "/api/incidents/in-x/evidence.csv"],
)  # fmt: skip
async def test_every_route_needs_the_token(client: TestClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}):
        resp = await client.get(path, headers=headers, allow_redirects=False)
        assert resp.status == 401, (path, headers)
        assert "token" in await resp.text()
    resp = await client.get(path + "?token=nope", allow_redirects=False)
    assert resp.status == 401


async def test_post_needs_the_token(client: TestClient) -> None:
    inc = await _campaign_incident(client)
    resp = await client.post(f"/api/incidents/{inc['incident_id']}/acknowledge", json={"who": "x"})
    assert resp.status == 401


async def test_token_in_the_address_once_then_a_cookie(client: TestClient) -> None:
    resp = await client.get(f"/?token={TOKEN}&x=1", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/?x=1"  # the token leaves the address bar
    cookie = resp.cookies[console.COOKIE]
    assert cookie.value and TOKEN not in cookie.value
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await client.get("/")  # the client keeps the cookie
    assert page.status == 200
    html = await page.text()
    assert "consentinel" in html and TOKEN not in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    for url in ("http://", "https://", "//"):
        assert f'src="{url}' not in html and f'href="{url}' not in html  # nothing from outside
    csrf = html.split('name="csrf" content="')[1].split('"')[0]
    inc = await _campaign_incident(client)
    url = f"/api/incidents/{inc['incident_id']}/acknowledge"
    refused = await client.post(url, json={"who": "Jane"})  # cookie alone: no
    assert refused.status == 401
    done = await client.post(url, json={"who": "Jane"}, headers={console.CSRF_HEADER: csrf})
    assert done.status == 200


# -- lifecycle -----------------------------------------------------------------------------------


async def test_acknowledge_then_resolve(client: TestClient, store: IncidentStore) -> None:
    inc = await _campaign_incident(client)
    assert inc["status"] == "open" and inc["alert_count"] == 3
    url = f"/api/incidents/{inc['incident_id']}"
    ack = await client.post(f"{url}/acknowledge", json={"who": " Jane Martin ", "note": "on it"},
                            headers=_bearer())  # fmt: skip
    assert ack.status == 200
    assert (await ack.json())["incident"]["status"] == "acknowledged"
    again = await client.post(f"{url}/acknowledge", json={"who": "Jane"}, headers=_bearer())
    assert again.status == 409
    assert "already acknowledged by Jane Martin" in (await again.json())["error"]
    res = await client.post(f"{url}/resolve", json={"who": "Omar", "note": "campaign paused"},
                            headers=_bearer())  # fmt: skip
    assert res.status == 200
    stored = store.get_incident(inc["incident_id"])
    assert stored is not None and stored.status.value == "resolved"
    assert [(t.who, t.status.value, t.note) for t in stored.transitions[1:]] == [
        ("Jane Martin", "acknowledged", "on it"),
        ("Omar", "resolved", "campaign paused"),
    ]
    assert [i["incident_id"] for i in await _incidents(client, "resolved")] == [inc["incident_id"]]
    closed = await client.post(f"{url}/resolve", json={"who": "Omar"}, headers=_bearer())
    assert closed.status == 409


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"who": ""}, 400, "say who you are"),
        ({"note": "x"}, 400, "say who you are"),
        ({"who": "jane.martin@corp.example.com"}, 400, "stores no addresses"),
        ({"who": "Jane", "note": "called +33 6 12 34 56 78"}, 400, "stores no addresses"),
        ({"who": "J" * 101}, 400, "too long"),
        ({"who": 5}, 400, "must be text"),
    ],
)
async def test_lifecycle_refuses_bad_input(
    client: TestClient, body: dict, status: int, needle: str
) -> None:
    inc = await _campaign_incident(client)
    resp = await client.post(f"/api/incidents/{inc['incident_id']}/acknowledge", json=body,
                             headers=_bearer())  # fmt: skip
    assert resp.status == status
    assert needle in (await resp.json())["error"]
    assert (await _campaign_incident(client))["status"] == "open"


async def test_unknown_incident(client: TestClient) -> None:
    for path in ("/api/incidents/in-nope", "/api/incidents/in-nope/evidence.json"):
        resp = await client.get(path, headers=_bearer())
        assert resp.status == 404
        assert "no incident 'in-nope'" in (await resp.json())["error"]
    resp = await client.post("/api/incidents/in-nope/resolve", json={"who": "x"}, headers=_bearer())
    assert resp.status == 404


# -- evidence ------------------------------------------------------------------------------------


async def test_detail_holds_the_evidence(client: TestClient) -> None:
    inc = await _campaign_incident(client)
    resp = await client.get(f"/api/incidents/{inc['incident_id']}", headers=_bearer())
    raw = await resp.read()
    _no_raw(raw, "the incident detail")
    body = json.loads(raw)
    assert body["evidence_count"] == 3
    first = body["evidence"][0]
    assert first["hint"] == "a***@e***.org"
    assert first["controller"] == "campaign-x"
    assert first["purpose_used"] == "political_campaigning"
    assert first["consent_state"] == "given"
    assert first["consent_purposes"] == ["newsletter_editorial"]
    assert first["proof_method"] == "double_opt_in"
    assert first["rule_id"] == "R2" and first["rule_source"] == support.R2_SOURCE
    assert (
        first["proof_collection_point"] == "https://news.example.org/subscribe?email=a***@e***.org"
    )
    assert len(first["subject_ref"]) == 13  # a short prefix, not the subject key


async def test_exports_hold_exactly_the_evidence(client: TestClient, store: IncidentStore) -> None:
    inc = await _campaign_incident(client)
    alerts = store.alerts_of(inc["incident_id"])
    base = f"/api/incidents/{inc['incident_id']}/evidence"

    resp = await client.get(base + ".json", headers=_bearer())
    assert resp.status == 200
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    _no_raw(raw, "the JSON export")
    doc = json.loads(raw)
    assert doc["incident"]["incident_id"] == inc["incident_id"]
    assert [e["alert_id"] for e in doc["evidence"]] == [a.alert_id for a in alerts]
    assert [e["hint"] for e in doc["evidence"]] == [a.hint for a in alerts]
    assert all(set(e) == set(FIELDS) for e in doc["evidence"])
    for e, a in zip(doc["evidence"], alerts, strict=True):
        assert a.subject_key.startswith(e["subject_ref"].rstrip("…"))
        assert a.subject_key not in raw.decode()  # never the whole key

    resp = await client.get(base + ".csv", headers=_bearer())
    assert resp.status == 200 and resp.content_type == "text/csv"
    raw = await resp.read()
    _no_raw(raw, "the CSV export")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    assert [r["alert_id"] for r in rows] == [a.alert_id for a in alerts]
    assert list(rows[0]) == list(FIELDS)
    assert rows[0]["consent_purposes"] == "newsletter_editorial"
    assert rows[0]["rule_source"] == support.R2_SOURCE
    assert {r["controller"] for r in rows} == {"campaign-x"}


def test_scrub_masks_addresses_and_keeps_hints() -> None:
    assert scrub("mail ana.lopez@example.org now") == "mail a***@e***.org now"
    assert scrub("call +33 6 12 34 56 78") == "call +33 6** ** ** 78"
    assert scrub("a***@e***.org and +33 6** ** ** 12") == "a***@e***.org and +33 6** ** ** 12"


# -- live feed -----------------------------------------------------------------------------------


async def _next_event(resp, kind: str) -> dict:
    buf = b""
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, f"no {kind!r} event on the feed within 60 s"
        line = await asyncio.wait_for(resp.content.readline(), timeout=30)
        assert line, "the feed closed"
        if line.strip():
            buf += line
            continue
        fields = dict(
            ln.split(": ", 1) for ln in buf.decode().splitlines() if not ln.startswith(":")
        )
        buf = b""
        if fields.get("event") == kind:
            return json.loads(fields["data"])


async def test_live_feed_streams_new_alerts_and_steps(
    client: TestClient, store: IncidentStore
) -> None:
    listing = await client.get("/api/incidents", headers=_bearer())
    since = (await listing.json())["last_seq"]
    assert since >= 4
    resp = await client.get(f"/api/feed?since={since}", headers=_bearer())
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert await _next_event(resp, "hello") == since

    extra = support._alert("dora@example.com", support.Channel.EMAIL, rule="R2",
                           source=support.R2_SOURCE, controller="campaign-x",
                           campaign="cmp-2026-spring", n=9, consent=None)  # fmt: skip
    await asyncio.to_thread(support.fill, store, [extra])
    change = await _next_event(resp, "change")
    assert change["kind"] == "alert_added"
    assert change["incident"]["alert_count"] == 4
    assert change["seq"] > since

    inc_id = change["incident_id"]
    await client.post(
        f"/api/incidents/{inc_id}/acknowledge", json={"who": "Jane"}, headers=_bearer()
    )
    change = await _next_event(resp, "change")
    assert (change["kind"], change["status"], change["who"]) == (
        "acknowledged",
        "acknowledged",
        "Jane",
    )
    resp.close()


async def test_feed_after_a_reconnect_resumes_from_last_event_id(client: TestClient) -> None:
    resp = await client.get("/api/feed", headers={**_bearer(), "Last-Event-ID": "1"})
    assert await _next_event(resp, "hello") == 1
    seqs = [(await _next_event(resp, "change"))["seq"] for _ in range(3)]
    assert seqs == [2, 3, 4]  # the missed changes, from the store, in order
    resp.close()


# -- panels ------------------------------------------------------------------------------------


async def test_panels_read_the_metrics_endpoints(client: TestClient) -> None:
    resp = await client.get("/api/panels", headers=_bearer())
    assert resp.status == 200
    p = await resp.json()
    up = [e for e in p["endpoints"] if e["ok"]]
    down = [e for e in p["endpoints"] if not e["ok"]]
    assert len(up) == 1 and up[0]["series"] > 0
    assert len(down) == 1 and "not reachable" in down[0]["error"]
    assert {"kind": "usage", "source": "mailchimp-broker", "channel": "email", "count": 40.0} in p[
        "flows"
    ]["consumed"]
    assert p["coverage"]["verdicts"] == {"allowed": 30.0, "violation": 10.0, "pending": 5.0}
    assert p["coverage"]["share_with_consent"] == pytest.approx(0.75)
    assert p["health"]["consumer_lag"] == {"consentinel.usage.v1": 7.0}
    assert p["health"]["pending"] == 3.0
    assert p["health"]["auth_failures"][0]["reason"] == "bad_signature"
    assert p["incidents"]["by_status"]["open"] == 2
    assert p["coverage"]["open_by_controller"] == [
        {"controller": "campaign-x", "count": 1, "uses": 3},
        {"controller": "shop-sas", "count": 1, "uses": 1},
    ]


def test_quantiles_follow_prometheus() -> None:
    samples: dict = {}
    parse(
        "# TYPE x histogram\n"
        'x_bucket{le="0.1"} 2\nx_bucket{le="1.0"} 3\nx_bucket{le="10.0"} 4\nx_bucket{le="+Inf"} 4\n'
        "x_count 4\nx_sum 5.6\n",
        samples,
    )
    assert quantile(samples, "x", 0.5) == pytest.approx(0.1)
    assert quantile(samples, "x", 0.75) == pytest.approx(1.0)
    assert quantile(samples, "x", 0.99) == pytest.approx(1.0 + 9.0 * 0.96)
    assert summarize({})["coverage"]["share_with_consent"] is None


async def test_the_signed_evidence_pack_downloads_and_verifies(
    store: IncidentStore, make_settings, tmp_path: Path
) -> None:
    from consentinel.streams.alerts import evidence_pack

    seed = tmp_path / "evidence.key"
    pub = evidence_pack.keygen(seed)
    settings = make_settings(evidence_key=f"file:{seed}")
    async with TestClient(TestServer(console.make_app(settings, store, []))) as c:
        inc = await _campaign_incident(c)
        path = f"/api/incidents/{inc['incident_id']}/evidence-pack"
        assert (await c.get(f"{path}?case=X")).status == 401  # behind the token
        assert (await c.get(path, headers=_bearer())).status == 400  # no case reference
        resp = await c.get(f"{path}?case=CNIL-42", headers=_bearer())
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        data = await resp.read()
    _no_raw(data, "the evidence pack")
    ok = evidence_pack.verify(data, pub)
    assert (ok.case_ref, ok.incident_id) == ("CNIL-42", inc["incident_id"])


async def test_the_pack_says_how_to_configure_a_missing_key(client: TestClient) -> None:
    inc = await _campaign_incident(client)
    resp = await client.get(
        f"/api/incidents/{inc['incident_id']}/evidence-pack?case=A", headers=_bearer()
    )
    assert resp.status == 503
    assert "consentinel evidence keygen" in (await resp.json())["error"]
