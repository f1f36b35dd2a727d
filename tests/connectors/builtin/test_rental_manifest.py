"""List-rental manifests: signed JSON posts and CSV/JSONL files, one list transfer per
address; the conformance kit, then what each field becomes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from consentinel.connectors import config
from consentinel.connectors.builtin.rental_manifest import RentalManifestConnector, sign
from consentinel.connectors.contract import AuthenticationFailed, Request
from consentinel.connectors.runtime.file_import import Importer
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, DeadLetter, UsageEvent, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "rental_manifest"
RECEIVED = 1_803_895_200_000  # 2027-03-01, shortly after the manifest's sent_at
SECRET = "rental-manifest-secret-synthetic"
PURPOSES = {"political": "political.communication", "partners": "marketing.partner_transfer"}

INSTANCE = instance(
    "rental_manifest",
    controller="listbroker",
    secrets={"signing_secret": SECRET},
    purpose_map=PURPOSES,
)


def request(raw: bytes) -> Request:
    unsigned = Request(
        method="POST",
        url="https://hooks.example.test/manifests",
        path="/manifests",
        query={},
        headers={"content-type": "application/json"},
        body=raw,
        received_at_ms=RECEIVED,
    )
    return sign(unsigned, INSTANCE)


MANIFEST = (SAMPLES / "manifest.json").read_bytes().rstrip(b"\n")


def csv_rows() -> list[dict[str, str]]:
    with (SAMPLES / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


CASE = ConnectorCase(
    connector="rental_manifest",
    instance=INSTANCE,
    samples=(Sample("manifest", request(MANIFEST), usage=4),),
    sign=sign,
    rows=tuple(csv_rows()[:3]),
)

TestRentalManifestConformance = conformance_suite(CASE)


def connector() -> RentalManifestConnector:
    return RentalManifestConnector(INSTANCE, make_edge())


def test_a_manifest_names_sender_recipient_purpose_and_file() -> None:
    c = connector()
    req = request(MANIFEST)
    c.verify(req)
    out = c.map_request(req)
    assert [u.kind for u in out.usage] == [UsageKind.LIST_TRANSFER] * 4
    first = out.usage[0]
    assert first.controller == "campagne-2027"  # the recipient uses the addresses
    assert first.declared_purpose == "political.communication"
    assert first.list_id == "quotidien-readers-2027"
    assert first.attributes["transfer_from"] == "listbroker"
    assert first.attributes["transfer_to"] == "campagne-2027"
    assert first.attributes["transfer"] == "rental"
    assert first.attributes["source_category"] == "subscribers"
    assert first.attributes["transfer_id"] == "ORD-2027-0142"
    assert first.occurred_at_ms == 1_803_891_600_000  # 2027-03-01T09:00:00Z
    assert [u.channel for u in out.usage] == [
        Channel.EMAIL,
        Channel.EMAIL,
        Channel.SMS,
        Channel.EMAIL,
    ]
    assert out.usage[3].occurred_at_ms == 1_803_891_600_000  # a row's Unix seconds
    assert "reader.one" not in str(out.usage) and "12 34 56" not in str(out.usage)


def test_a_bad_signature_is_refused() -> None:
    req = request(MANIFEST)
    tampered = req.with_body(MANIFEST.replace(b"campagne-2027", b"campagne-2028"))
    with pytest.raises(AuthenticationFailed):
        connector().verify(tampered)


def test_an_unmapped_purpose_is_no_purpose_and_keeps_the_word() -> None:
    row = {**csv_rows()[0], "purpose": "lottery"}
    (usage,) = connector().map_row(row).usage
    assert usage.declared_purpose is None and usage.attributes["vendor_purpose"] == "lottery"


def test_file_rows_phone_channel_kind_and_category() -> None:
    rows = csv_rows()
    two = connector().map_row(rows[1]).usage
    assert [u.channel for u in two] == [Channel.EMAIL, Channel.PHONE]
    (hr,) = connector().map_row(rows[2]).usage
    assert hr.attributes["source_category"] == "hr" and hr.attributes["transfer"] == "sale"
    assert hr.occurred_at_ms == 1_803_981_600_000  # 2027-03-02 10:00 read as UTC


@pytest.mark.parametrize(
    ("index", "code"), [(3, "missing_field"), (4, "bad_timestamp"), (5, "bad_email")]
)
def test_bad_rows_say_why(index: int, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        connector().map_row(csv_rows()[index])
    assert err.value.code == code
    assert "example.org" not in err.value.message and "not-an-address" not in err.value.message


def test_options_fill_what_a_manifest_leaves_out() -> None:
    inst = instance(
        "rental_manifest",
        controller="listbroker",
        secrets={"signing_secret": SECRET},
        purpose_map=PURPOSES,
        options={"sender": "listbroker", "recipient": "acme", "purpose": "partners"},
    )
    row = {"file": "f-1", "sent_at": "2027-01-01T00:00:00Z", "email": "a@example.org"}
    (usage,) = RentalManifestConnector(inst, make_edge()).map_row(row).usage
    assert usage.controller == "acme" and usage.declared_purpose == "marketing.partner_transfer"
    assert usage.attributes["transfer_from"] == "listbroker"


def test_a_manifest_without_rows_is_refused() -> None:
    body = b'{"sender": "listbroker", "recipient": "x", "file": "f", "sent_at": 1}'
    with pytest.raises(InvalidInput):
        connector().map_request(request(body))


class _Producer(EventProducer):
    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.records: list[Record] = []

    async def send_records(self, records) -> int:  # type: ignore[no-untyped-def]
        batch = list(records)
        self.records.extend(batch)
        return len(batch)


async def test_file_import_takes_good_rows_and_deadletters_bad_lines(
    make_settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    cfg = config.load_text(
        "- name: broker-manifests\n"
        "  type: rental_manifest\n"
        "  controller: listbroker\n"
        "  secrets: {signing_secret: env:S}\n"
        "  purpose_map: {political: political.communication}\n",
        settings,
        environ={"S": SECRET},
    )
    inst = cfg.get("broker-manifests")
    producer = _Producer(settings)
    importer = Importer(
        settings, cfg.classes[inst.name](inst, make_edge()), producer, stream=io.StringIO()
    )
    path = tmp_path / "manifest.csv"
    path.write_bytes((SAMPLES / "manifest.csv").read_bytes())
    summary = await importer.run(path, "csv")
    assert summary.taken == 3 and summary.usage == 4
    assert dict(summary.deadlettered) == {"missing_field": 1, "bad_timestamp": 1, "bad_email": 1}
    letters = [
        codec.decode(DeadLetter, v) for t, _, v in producer.records if t.endswith(topics.DEADLETTER)
    ]
    assert sorted(int(dl.attributes["line"]) for dl in letters) == [5, 6, 7]
    usages = [
        codec.decode(UsageEvent, v) for t, _, v in producer.records if t.endswith(topics.USAGE)
    ]
    assert {u.controller for u in usages} == {"campagne-2027"}
    # a re-run without the checkpoint repeats the same ids, never new ones
    again = _Producer(settings)
    await Importer(
        settings, cfg.classes[inst.name](inst, make_edge()), again, stream=io.StringIO()
    ).run(path, "csv", restart=True)
    assert sorted(
        codec.decode(UsageEvent, v).event_id
        for t, _, v in again.records
        if t.endswith(topics.USAGE)
    ) == sorted(u.event_id for u in usages)
