"""The guide's worked example (connectors/README.md) passes the conformance suite."""

from __future__ import annotations

from pathlib import Path

from consentinel.connectors import example, registry
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import ConnectorCase, Sample, conformance_suite, instance

README = Path(__file__).resolve().parents[2] / "connectors" / "README.md"
INST = instance("pingmail", secrets={"token": "pingmail-token-0123456789"})
registry.register(example.PingmailConnector)


def _request(body: bytes) -> Request:
    base = Request(
        "POST",
        "https://hooks.example/hooks/pingmail",
        "/",
        {},
        {"content-type": "application/json"},
        body,
        received_at_ms=1_767_230_000_000,
    )
    return example.sign(base, INST)


DELIVERED = b'[{"id":"ev-1","type":"delivered","at":1767225600,"to":"Ana.Lima@Example.org"}]'
UNSUB = b'[{"id":"ev-2","type":"unsubscribed","at":1767225700,"to":"ana.lima@example.org"}]'

TestPingmailConformance = conformance_suite(
    ConnectorCase(
        connector="pingmail",
        instance=INST,
        samples=(
            Sample("delivered", _request(DELIVERED), usage=1),
            Sample("unsubscribed", _request(UNSUB), consent=1),
        ),
        sign=example.sign,
        signed_parts=(),  # a bearer token signs nothing: only the token is checked
        signature="header:authorization",
    )
)


def test_the_guide_shows_the_example_as_it_is() -> None:
    code = (Path(example.__file__)).read_text(encoding="utf-8")
    guide = README.read_text(encoding="utf-8")
    start = code.index("class PingmailConnector")
    assert code[start:].strip() in guide, "connectors/README.md: paste connectors/example.py"
