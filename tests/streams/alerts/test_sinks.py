"""Each sink against a real local receiver: what it sends, and how it maps failures."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from alerting import T0, alert, privacy
from consentinel.streams.alerts.model import ChangeKind, Incident
from consentinel.streams.alerts.sinks import alertmanager, slack, smtp, webhook
from consentinel.streams.alerts.sinks.base import (
    Notification,
    PermanentDeliveryError,
    headline,
    incident_link,
)
from consentinel.streams.alerts.sinks.http import retry_after, safe_url
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.settings import Secret

SECRET = b"webhook-secret-0123456789"


@dataclass
class Receiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(url="")

    async def handle(request: web.Request) -> web.Response:
        rec.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=rec.status, text="ok", headers=rec.headers)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def _incidents(store: IncidentStore) -> tuple[Incident, Incident]:
    opened = store.ingest(alert("e1"), T0 + 5)
    store.ingest(alert("e2", at=T0 + 60_000), T0 + 60_005)
    assert opened is not None
    current = store.get_incident(opened.incident_id)
    resolved = store.resolve(opened.incident_id, "ana (dpo)", "stopped", now_ms=T0 + 120_000)
    assert current is not None
    return current, resolved


def _note(inc: Incident, kind: ChangeKind = ChangeKind.OPENED) -> Notification:
    return Notification(kind, inc, incident_link("http://127.0.0.1:8686", inc.incident_id), T0)


# -- webhook -------------------------------------------------------------------------------


async def test_webhook_is_signed_and_carries_the_idempotency_key(
    receiver: Receiver, store: IncidentStore
) -> None:
    inc, _ = _incidents(store)
    sink = webhook.WebhookSink("soc", receiver.url + "/hook", Secret(SECRET), clock_s=lambda: 1e9)
    note = _note(inc)
    await sink.deliver(note)
    await sink.deliver(note)  # a redelivery
    await sink.close()
    (h1, b1), (h2, b2) = receiver.requests
    assert b1 == b2  # byte for byte
    assert h1["Idempotency-Key"] == h2["Idempotency-Key"] == f"{inc.incident_id}:2"
    body = codec.loads(b1)
    assert body["idempotency_key"] == f"{inc.incident_id}:2"
    assert body["kind"] == "opened" and body["incident"]["alert_count"] == 2
    assert body["link"].endswith(f"/incidents/{inc.incident_id}")
    assert h1["X-Consentinel-Timestamp"] == "1000000000"
    assert h1["X-Consentinel-Signature"].startswith("sha256=")
    assert webhook.verify(SECRET, b1, "1000000000", h1["X-Consentinel-Signature"], now_s=1e9)
    assert privacy.raw_addresses(b1) == []


def test_signature_verification_refuses_tampering_and_stale_requests() -> None:
    body, ts = b'{"a":1}', "1000"
    sig = webhook.signature(SECRET, ts, body)
    assert webhook.verify(SECRET, body, ts, sig, now_s=1000)
    assert not webhook.verify(SECRET, b'{"a":2}', ts, sig, now_s=1000)  # body changed
    assert not webhook.verify(SECRET, body, "1001", sig, now_s=1001)  # timestamp changed
    assert not webhook.verify(b"another-secret-012345", body, ts, sig, now_s=1000)
    assert not webhook.verify(SECRET, body, ts, sig, now_s=1000 + 301)  # too old
    assert not webhook.verify(SECRET, body, "soon", sig, now_s=1000)
    # the documented construction, recomputed independently
    import hashlib
    import hmac

    assert sig == "sha256=" + hmac.new(SECRET, b"1000." + body, hashlib.sha256).hexdigest()


# -- Alertmanager --------------------------------------------------------------------------


async def test_alertmanager_payload(receiver: Receiver, store: IncidentStore) -> None:
    firing, resolved = _incidents(store)
    sink = alertmanager.AlertmanagerSink(
        "am", receiver.url, refresh_seconds=60, labels={"team": "dpo"}, clock_ms=lambda: T0 + 1000
    )
    await sink.deliver(_note(firing))
    await sink.deliver(_note(resolved, ChangeKind.RESOLVED))
    await sink.refresh([firing, resolved], "http://127.0.0.1:8686")
    await sink.close()
    paths = {h.get("Host") for h, _ in receiver.requests}
    assert len(paths) == 1
    (a1,), (a2,), refreshed = (codec.loads(b) for _, b in receiver.requests)
    assert a1["labels"] == {
        "alertname": "consentinel_R2",
        "rule": "R2",
        "severity": "critical",
        "controller": "broker-lists",
        "campaign": "politics-27",
        "incident_id": firing.incident_id,
        "team": "dpo",
    }
    assert a1["startsAt"] == "2025-10-09T08:53:20.000Z"
    assert a1["endsAt"] == "2025-10-09T08:58:21.000Z"  # now + max(4 x refresh, 5 min)
    ann = a1["annotations"]
    assert ann["summary"] == headline(ChangeKind.OPENED, firing)
    assert ann["incident_url"] == f"http://127.0.0.1:8686/incidents/{firing.incident_id}"
    assert ann["idempotency_key"] == f"{firing.incident_id}:2"
    assert "R2 [S6 art. 5(1)(b), 6(4)]" in ann["description"]
    assert a2["endsAt"] == "2025-10-09T08:55:20.000Z"  # when ana resolved it
    assert a2["annotations"]["status"] == "resolved"
    assert [a["labels"]["incident_id"] for a in refreshed] == [firing.incident_id]
    assert privacy.raw_addresses(b"".join(b for _, b in receiver.requests)) == []


# -- Slack ---------------------------------------------------------------------------------


async def test_slack_message(receiver: Receiver, store: IncidentStore) -> None:
    inc, _ = _incidents(store)
    sink = slack.SlackSink("chat", receiver.url + "/services/T0/B0/secret")
    await sink.deliver(_note(inc))
    await sink.close()
    ((_, raw),) = receiver.requests
    msg = codec.loads(raw)
    assert msg["text"].startswith(":rotating_light: [CRITICAL] R2 opened: broker-lists")
    kinds = [b["type"] for b in msg["blocks"]]
    assert kinds == ["header", "section", "section", "section", "actions", "context"]
    button = msg["blocks"][4]["elements"][0]
    assert button["url"] == f"http://127.0.0.1:8686/incidents/{inc.incident_id}"
    assert f"{inc.incident_id}:2" in msg["blocks"][5]["elements"][0]["text"]


# -- HTTP failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "error", "wait"),
    [
        (500, {}, RetriableError, 0.0),
        (503, {"Retry-After": "7"}, RetriableError, 7.0),
        (429, {"Retry-After": "12"}, RetriableError, 12.0),
        (404, {}, PermanentDeliveryError, None),
        (401, {}, PermanentDeliveryError, None),
    ],
)
async def test_http_status_mapping(
    receiver: Receiver,
    store: IncidentStore,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    wait: float | None,
) -> None:
    inc, _ = _incidents(store)
    receiver.status, receiver.headers = status, headers
    sink = slack.SlackSink("chat", receiver.url + "/services/T0/B0/secret-path")
    with pytest.raises(error) as err:
        await sink.deliver(_note(inc))
    await sink.close()
    assert str(status) in str(err.value)
    assert "secret-path" not in str(err.value)  # the URL's path is a secret
    if wait is not None:
        assert isinstance(err.value, RetriableError) and err.value.retry_after == wait


async def test_a_receiver_that_is_not_there_is_retriable(store: IncidentStore) -> None:
    inc, _ = _incidents(store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    sink = webhook.WebhookSink("soc", f"http://127.0.0.1:{port}/x", Secret(SECRET))
    with pytest.raises(RetriableError, match=f"cannot reach http://127.0.0.1:{port}"):
        await sink.deliver(_note(inc))
    await sink.close()


def test_retry_after_and_safe_url() -> None:
    assert retry_after("5", 1.0) == 5.0
    assert retry_after(None, 1.0) == 1.0
    assert retry_after("garbage", 2.0) == 2.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 3.0) == 0.0  # in the past
    assert safe_url("https://hooks.slack.com/services/T/B/xyz?a=1") == "https://hooks.slack.com"


# -- e-mail --------------------------------------------------------------------------------


class FakeSmtp:
    """A minimal SMTP server: enough of RFC 5321 for smtplib, with a scripted RCPT reply."""

    def __init__(self, rcpt_reply: str = "250 ok") -> None:
        self.rcpt_reply = rcpt_reply
        self.messages: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 fake ESMTP")
        while line := await reader.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250 fake")
            elif verb == "RCPT":
                say(self.rcpt_reply)
            elif verb == "DATA":
                say("354 go on")
                data = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    data += chunk
                self.messages.append(data)
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                break
            else:
                say("250 ok")
            await writer.drain()
        await writer.drain()
        writer.close()


def _mail_sink(port: int) -> smtp.EmailSink:
    return smtp.EmailSink(
        "mail",
        "127.0.0.1",
        port,
        "consentinel@monitor.test",
        ["dpo@company.test"],
        security="none",
    )


async def test_email_is_sent_with_a_stable_message_id(store: IncidentStore) -> None:
    inc, _ = _incidents(store)
    server = FakeSmtp()
    await server.start()
    try:
        await _mail_sink(server.port).deliver(_note(inc))
    finally:
        await server.stop()
    (raw,) = server.messages
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == headline(ChangeKind.OPENED, inc)
    assert msg["Message-ID"] == f"<{inc.incident_id}.2@consentinel>"
    assert msg["X-Consentinel-Idempotency-Key"] == f"{inc.incident_id}:2"
    body = msg.get_body().get_content()  # type: ignore[union-attr]
    assert f"http://127.0.0.1:8686/incidents/{inc.incident_id}" in body
    assert "acknowledge or resolve" in body and "Rule R2 [S6" in body
    assert privacy.raw_addresses(body.encode()) == []  # the evidence: hints only


@pytest.mark.parametrize(
    ("reply", "error"),
    [("550 no such user", PermanentDeliveryError), ("451 try later", RetriableError)],
)
async def test_email_failures(store: IncidentStore, reply: str, error: type[Exception]) -> None:
    inc, _ = _incidents(store)
    server = FakeSmtp(rcpt_reply=reply)
    await server.start()
    try:
        with pytest.raises(error) as err:
            await _mail_sink(server.port).deliver(_note(inc))
    finally:
        await server.stop()
    assert "dpo@company.test" not in str(err.value)  # recipients stay out of logs
    assert server.messages == []


async def test_email_server_down_is_retriable(store: IncidentStore) -> None:
    inc, _ = _incidents(store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetriableError, match=r"cannot talk to 127\.0\.0\.1"):
        await _mail_sink(port).deliver(_note(inc))


def test_sinks_keep_the_contract() -> None:
    from consentinel.streams.alerts.sinks.base import RefreshingSink, Sink

    made: list[Callable[[], object]] = [
        lambda: webhook.WebhookSink("a", "http://x", Secret(SECRET)),
        lambda: slack.SlackSink("b", "http://x"),
        lambda: _mail_sink(25),
        lambda: alertmanager.AlertmanagerSink("d", "http://x"),
    ]
    sinks = [m() for m in made]
    assert all(isinstance(s, Sink) for s in sinks)
    assert [isinstance(s, RefreshingSink) for s in sinks] == [False, False, False, True]
