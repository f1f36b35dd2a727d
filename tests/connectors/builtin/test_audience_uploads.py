"""Meta Custom Audience and Google Customer Match upload reports: the customer file as
uploaded (the platforms' documented customer-list columns) gives one list transfer per
address to the platform; hashes are refused with what to do."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from consentinel.connectors.builtin.audience_uploads import (
    GoogleCustomerMatchUpload,
    MetaCustomAudienceUpload,
    sign,
)
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "audience_uploads"
SECRET = "audience-upload-secret-synthetic"
PURPOSES = {"custom_audience": "advertising.personalised"}
UPLOADED = 1_803_895_200_000  # 2027-03-01T10:00:00Z


def inst(kind: str, **options: str):  # type: ignore[no-untyped-def]
    return instance(
        kind,
        controller="shop-sas",
        secrets={"signing_secret": SECRET},
        purpose_map=PURPOSES,
        options=options or None,
    )


META = inst("meta_custom_audience_upload")
GOOGLE = inst("google_customer_match_upload")


def rows(name: str) -> list[dict[str, str]]:
    with (SAMPLES / name).open(newline="") as f:
        return list(csv.DictReader(f))


def request(raw: bytes, instance_=META) -> Request:  # type: ignore[no-untyped-def]
    unsigned = Request(
        method="POST",
        url="https://hooks.example.test/uploads",
        path="/uploads",
        query={},
        headers={"content-type": "application/json"},
        body=raw,
        received_at_ms=UPLOADED + 60_000,
    )
    return sign(unsigned, instance_)


REPORT = (SAMPLES / "report.json").read_bytes().rstrip(b"\n")

TestMetaUploadConformance = conformance_suite(
    ConnectorCase(
        connector="meta_custom_audience_upload",
        instance=META,
        samples=(Sample("report", request(REPORT), usage=3),),
        sign=sign,
        rows=tuple(rows("meta_customer_file.csv")[:2]),
    )
)
TestGoogleUploadConformance = conformance_suite(
    ConnectorCase(
        connector="google_customer_match_upload",
        instance=GOOGLE,
        samples=(Sample("report", request(REPORT, GOOGLE), usage=3),),
        sign=sign,
        rows=tuple(rows("google_customer_match.csv")[:1]),
    )
)


def test_meta_customer_file_rows_are_transfers_to_meta() -> None:
    c = MetaCustomAudienceUpload(META, make_edge())
    out = c.map_row(rows("meta_customer_file.csv")[0])
    assert [u.kind for u in out.usage] == [UsageKind.LIST_TRANSFER] * 2
    assert [u.channel for u in out.usage] == [Channel.EMAIL, Channel.SMS]
    u = out.usage[0]
    assert u.controller == "meta-platforms-ireland" and u.list_id == "23851234567890123"
    assert u.declared_purpose == "advertising.personalised"
    assert u.attributes["transfer_from"] == "shop-sas"
    assert u.attributes["transfer"] == "audience_upload"
    assert u.attributes["audience_name"] == "Spring buyers"
    assert u.occurred_at_ms == UPLOADED
    assert "Lopez" not in str(out.usage) and "buyer.one" not in str(out.usage)


def test_a_hashed_identifier_is_refused_with_what_to_do() -> None:
    with pytest.raises(InvalidInput) as err:
        MetaCustomAudienceUpload(META, make_edge()).map_row(rows("meta_customer_file.csv")[2])
    assert err.value.code == "hashed_address" and "before hashing" in err.value.message


def test_google_customer_match_template_rows() -> None:
    c = GoogleCustomerMatchUpload(GOOGLE, make_edge())
    out = c.map_row(rows("google_customer_match.csv")[0])
    assert {u.controller for u in out.usage} == {"google-ireland"}
    assert {u.list_id for u in out.usage} == {"7012345678"}
    with pytest.raises(InvalidInput) as err:
        c.map_row(rows("google_customer_match.csv")[1])  # a postal-address-only row
    assert err.value.code == "missing_field"


def test_options_name_the_audience_the_upload_time_and_the_recipient() -> None:
    i = inst(
        "google_customer_match_upload",
        audience_id="list-9",
        uploaded_at="2027-03-01T10:00:00Z",
        recipient="agency-x",
    )
    (u,) = GoogleCustomerMatchUpload(i, make_edge()).map_row({"Email": "a@example.org"}).usage
    assert (u.list_id, u.occurred_at_ms, u.controller) == ("list-9", UPLOADED, "agency-x")
    with pytest.raises(InvalidInput):  # no upload time anywhere
        GoogleCustomerMatchUpload(GOOGLE, make_edge()).map_row(
            {"Email": "a@example.org", "user_list_id": "1"}
        )


def test_a_posted_report_maps_each_row() -> None:
    c = MetaCustomAudienceUpload(META, make_edge())
    req = request(REPORT)
    c.verify(req)
    out = c.map_request(req)
    assert len(out.usage) == 3 and {u.list_id for u in out.usage} == {"23851234567890123"}
