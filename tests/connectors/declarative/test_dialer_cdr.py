"""The dialer CDR example mapping: one CALL use per attempt, refusals as phone objections;
a CSV export imported row by row, and the conformance suite like any connector."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from consentinel.connectors import testkit as kit
from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.contract import Instance, Output, Request
from consentinel.connectors.declarative import EXAMPLES
from consentinel.connectors.runtime.rows import read_records
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples"

INST = kit.instance(
    "declarative",
    name="dialer-test",
    secrets={"username": "dialer", "password": "cdr-secret-0123456789"},
    options={"mapping": str(EXAMPLES / "dialer_cdr.yaml")},
)


def sign(request: Request, inst: Instance) -> Request:
    user, password = inst.secret("username").decode(), inst.secret("password").decode()
    headers = {**request.headers, "authorization": basic_auth_header(user, password)}
    return dataclasses.replace(request, headers=headers)


def request(name: str) -> Request:
    body = (SAMPLES / name).read_bytes()
    base = Request(
        "POST",
        "https://hooks.example.test/hooks/dialer-test",
        "/",
        {},
        {"content-type": "application/json", "content-length": str(len(body))},
        body,
        received_at_ms=1_767_800_000_000,
    )
    return sign(base, INST)


def csv_rows() -> list[dict[str, str]]:
    return [dict(r.row) for r in read_records(SAMPLES / "dialer_cdr.csv", "csv")]


def imported() -> Output:
    connector = kit.build_connector(CASE)
    out = Output()
    for row in csv_rows():
        out.extend(connector.map_row(row))
    return out


def test_csv_export_gives_one_call_use_per_attempt_and_refusals() -> None:
    out = imported()
    assert [u.kind for u in out.usage] == [UsageKind.CALL] * 4  # the `test` row is ignored
    assert all(u.channel is Channel.PHONE for u in out.usage)
    assert [u.attributes.get("attempt") for u in out.usage] == ["1", "3", "1", "2"]
    assert [u.attributes.get("call_status") for u in out.usage] == [
        "answered",
        "no_answer",
        "dnc",
        "refused",
    ]
    assert out.usage[0].attributes["duration_s"] == "95"
    assert out.usage[0].campaign_id == "renov-2026"
    assert out.usage[3].attributes["tz"] == "America/Martinique"
    # 2026-01-05 19:59:00 in Paris (UTC+1) is 18:59:00Z
    assert out.usage[2].occurred_at_ms == 1_767_639_540_000
    refusals = out.consent
    assert [c.action for c in refusals] == [ConsentAction.REFUSE] * 2
    assert all(c.channels == [Channel.PHONE] and c.purposes == [] for c in refusals)
    edge = kit.make_edge()
    assert refusals[0].subject_key == edge.address("0612345670", "phone").key
    assert refusals[1].subject_key == edge.address("+596696123456", "phone").key


def test_reimporting_the_file_gives_the_same_ids() -> None:
    first, again = imported(), imported()
    assert [u.event_id for u in first.usage] == [u.event_id for u in again.usage]
    assert len({u.event_id for u in first.usage}) == 4


CASE = kit.ConnectorCase(
    connector="dialer_cdr",
    instance=INST,
    samples=(
        kit.Sample("refused", request("dialer_cdr_refused.json"), usage=1, consent=1),
        kit.Sample("batch", request("dialer_cdr_batch.json"), usage=2),
    ),
    sign=sign,
    malformed=(
        b'{"call_id":"x","started_at":"2026-01-07 10:30:00","disposition":"busy"}',
        b'{"call_id":"x","phone":"+33612345678","disposition":"busy"}',
        b'{"call_id":"x","phone":"+33612345678","started_at":"2026-01-07 10:30:00",'
        b'"disposition":"teleported"}',
        b'{"call_id":"x","phone":"+33612345678","started_at":"07/01/2026","disposition":"busy"}',
    ),
    signed_parts=(),
    rows=tuple(r for r in csv_rows() if r["disposition"] != "test"),
)

TestDialerCdrConformance = kit.conformance_suite(CASE)
