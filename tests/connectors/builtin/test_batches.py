"""Batch connectors refuse a bad item alone: it becomes an ItemRejected with its index and
reason, the other items become events (the ingest dead-letters the refused item and
answers 2xx, so a platform retrying whole batches does not drop the good ones)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from consentinel.connectors import registry
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import instance, make_edge
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

GOOD: dict[str, dict[str, Any]] = {
    "sendgrid": {
        "event": "open",
        "email": "jean@example.org",
        "timestamp": 1767225600,
        "sg_event_id": "ev-1",
    },
    "mandrill": {
        "event": "open",
        "ts": 1767225600,
        "_id": "msg-1",
        "msg": {"email": "jean@example.org", "_id": "msg-1", "ts": 1767225600},
    },
    "mailjet": {
        "event": "open",
        "time": 1767225600,
        "email": "jean@example.org",
        "MessageID": 19421777835146490,
    },
    "brevo": {
        "event": "opened",
        "email": "jean@example.org",
        "ts_epoch": 1767608102000,
        "message-id": "<m1@example.org>",
    },
}
#: SendGrid's verification key is checked when the connector starts: a real one (public)
SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsHuGGiympyRMrWvmJISN+fAeHMEGxB7aOostM7jMHjhApbhvZ53A3"
    "CinW67+eqLRbwehwyCh8OU5Oarwp62MtA=="
)


def _bad(item: dict[str, Any]) -> dict[str, Any]:
    if "msg" in item:
        return {**item, "msg": {**item["msg"], "email": "nobody"}}
    return {**item, "email": "nobody"}


def _map(name: str, items: list[Any]) -> Any:
    cls = registry.get(name)
    secret_names = {
        f.name: "s3cret-0123456789" for f in cls.config_schema if f.required and f.secret
    }
    if name == "sendgrid":
        secret_names["verification_key"] = SENDGRID_KEY
    options = {f.name: "x" for f in cls.config_schema if f.required and not f.secret}
    inst = instance(name, secrets=secret_names, options=options)
    body = codec.dumps(items)
    if name == "mandrill":
        body = urlencode({"mandrill_events": body.decode("utf-8")}).encode("utf-8")
    request = Request("POST", "https://hooks.example/h", "/", {}, {}, body, received_at_ms=1)
    return cls(inst, make_edge()).map_request(request)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_bad_item_is_refused_alone(name: str) -> None:
    good = GOOD[name]
    second = {**good, **({"sg_event_id": "ev-2"} if name == "sendgrid" else {})}
    out = _map(name, [good, _bad(good), second, 7])
    assert len(out.usage) == 2, "the good items must still become events"
    assert [(r.index, r.code) for r in out.rejected] == [(1, "bad_email"), (3, "malformed_json")]
    assert codec.loads(out.rejected[0].raw) == _bad(good)
    for rejected in out.rejected:
        assert "nobody" not in rejected.message and rejected.message


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_batch_with_nothing_good_is_refused_whole(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        _map(name, [_bad(GOOD[name])])
    assert info.value.code == "bad_email"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_body_that_is_no_batch_is_refused_whole(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        _map(name, "not a batch")  # type: ignore[arg-type]
    assert info.value.code == "malformed_json"
