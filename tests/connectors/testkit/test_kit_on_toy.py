"""The conformance kit run on a small toy connector, and its checks shown to bite."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from consentinel.connectors import registry
from consentinel.connectors.contract import (
    AuthenticationFailed,
    ConfigField,
    Connector,
    Output,
    Request,
)
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    assert_no_raw_address,
    conformance_suite,
    instance,
    locate_signature,
    make_edge,
    tamper,
)
from consentinel.streams.events import codec, ids
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    UsageEvent,
    UsageKind,
)


class ToyConnector(Connector):
    name = "kit_toy"
    title = "Toy platform for the kit's own tests"
    produces = "usage+consent"
    auth = "HMAC-SHA256 of the body, hex, in X-Toy-Signature"
    config_schema = (ConfigField("secret", "signing secret", required=True, secret=True),)

    def verify(self, request: Request) -> None:
        got = request.header("x-toy-signature")
        if not got:
            raise AuthenticationFailed("missing_signature", "no signature", scheme="toy")
        want = hmac.new(self.instance.secret("secret"), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, got):
            raise AuthenticationFailed("bad_signature", "signature differs", scheme="toy")

    def map_request(self, request: Request) -> Output:
        data = codec.loads(request.body)
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise InvalidInput("no_events", "expected an object with an `events` array")
        out = Output()
        for item in data["events"]:
            if not isinstance(item, dict):
                raise InvalidInput("bad_event", "an event is not an object")
            email, kind, ts, eid = (
                item.get("email"),
                item.get("event"),
                item.get("ts"),
                item.get("id"),
            )
            if not isinstance(email, str) or not isinstance(ts, int) or not isinstance(eid, str):
                raise InvalidInput("missing_field", "email, id and ts are required")
            if kind not in ("send", "unsub"):
                raise InvalidInput("unknown_event", "event must be send or unsub")
            addr = self.edge.address(email, "email")
            common: dict[str, Any] = dict(
                event_id=ids.event_id(self.instance.name, eid, kind),
                occurred_at_ms=ts * 1000,
                received_at_ms=1_767_225_600_000,
                source=self.instance.name,
                processor=self.name,
                subject_key=addr.key,
                hint=addr.hint,
                controller=self.instance.controller,
            )
            if kind == "send":
                out.usage.append(
                    UsageEvent(
                        **common,
                        channel=Channel.EMAIL,
                        kind=UsageKind.SEND,
                        sender=item["from"].rpartition("@")[2]
                        if isinstance(item.get("from"), str)
                        else None,
                    )
                )
            else:
                out.usage.append(
                    UsageEvent(**common, channel=Channel.EMAIL, kind=UsageKind.UNSUBSCRIBE_LINK)
                )
                out.consent.append(ConsentEvent(**common, action=ConsentAction.WITHDRAW))
        return out


registry.register(ToyConnector)


def _sign(request: Request, inst: Any) -> Request:
    sig = hmac.new(inst.secret("secret"), request.body, hashlib.sha256).hexdigest()
    return Request(
        **{
            **{f: getattr(request, f) for f in request.__slots__},
            "headers": {**request.headers, "x-toy-signature": sig},
        }
    )  # type: ignore[attr-defined]


def _request(body: bytes, inst: Any) -> Request:
    base = Request(
        "POST",
        "https://hooks.example.test/toy",
        "/",
        {},
        {"content-type": "application/json"},
        body,
    )
    return _sign(base, inst)


INST = instance("kit_toy", secrets={"secret": "toy-secret-0000"})
SEND = (
    b'{"events":[{"id":"m1","event":"send","ts":1767225600,'
    b'"email":"Ana.Lima@Example.org","from":"news@shop.example.com"}]}'
)
UNSUB = b'{"events":[{"id":"m1","event":"unsub","ts":1767225700,"email":"ana.lima@example.org"}]}'

CASE = ConnectorCase(
    connector="kit_toy",
    instance=INST,
    samples=(
        Sample("send", _request(SEND, INST), usage=1),
        Sample("unsub", _request(UNSUB, INST), usage=1, consent=1),
    ),
    sign=_sign,
    malformed=(b'{"events":[{"id":"x"}]}',),
)

TestToyConformance = conformance_suite(CASE)


def test_signature_located_in_header() -> None:
    assert locate_signature(CASE.samples[0].request) == "header:x-toy-signature"


def test_tamper_changes_exactly_one_character() -> None:
    req = CASE.samples[0].request
    forged = tamper(req, "body")
    assert len(forged.body) == len(req.body)
    assert sum(a != b for a, b in zip(forged.body, req.body, strict=True)) == 1


def test_raw_address_check_bites() -> None:
    addr = make_edge().address("ana@example.org", "email")
    leaky = UsageEvent(
        "e1",
        1_767_225_600_000,
        1_767_225_600_000,
        "s",
        "p",
        Channel.EMAIL,
        UsageKind.SEND,
        addr.key,
        addr.hint,
        "c",
        attributes={"to": "ANA@example.org"},
    )
    with pytest.raises(AssertionError, match="raw address"):
        assert_no_raw_address([leaky], {"ana@example.org"})


def test_sender_of_a_keyed_address_bites() -> None:
    addr = make_edge().address("ana@example.org", "email")
    leaky = UsageEvent(
        "e1",
        1_767_225_600_000,
        1_767_225_600_000,
        "s",
        "p",
        Channel.EMAIL,
        UsageKind.SEND,
        addr.key,
        addr.hint,
        "c",
        sender="ana@example.org",
    )
    with pytest.raises(AssertionError, match="sender"):
        assert_no_raw_address([leaky], {"ana@example.org"}, keyed={"ana@example.org"})


class _Lax(ToyConnector):
    """Verifies nothing and crashes on odd input: the kit must catch both."""

    name = "kit_toy_lax"

    def verify(self, request: Request) -> None:
        return None

    def map_request(self, request: Request) -> Output:
        data = codec.loads(request.body)
        item = data["events"][0]  # KeyError / TypeError on malformed input
        return super().map_request(codec.dumps({"events": [item]}) and request)


registry.register(_Lax)
LAX = conformance_suite(
    ConnectorCase(
        "kit_toy_lax",
        instance("kit_toy_lax", secrets={"secret": "toy-secret-0000"}),
        CASE.samples,
        _sign,
    )
)


def test_kit_catches_a_connector_that_does_not_verify() -> None:
    with pytest.raises(pytest.fail.Exception):
        LAX().test_tampering_fails_verification("body", False)


def test_kit_catches_a_crash_on_malformed_input() -> None:
    with pytest.raises(AssertionError, match=r"KeyError|TypeError"):
        LAX().test_malformed_input_is_refused_cleanly("send", "empty_object", b"{}", False)
