"""The art. 30 records of processing: what each holds, and a CSV no spreadsheet runs."""

from __future__ import annotations

import csv
import io

from consentinel.streams.events.records import Channel, Declaration, LegalBasis, Sourcing
from consentinel.streams.registry import records_of_processing as art30


def _decl(decl_id: str, controller: str, **extra: object) -> Declaration:
    fields: dict[str, object] = {
        "decl_id": decl_id, "ref_kind": "campaign", "ref": decl_id.split(":")[-1],
        "controller": controller, "purpose": "political.communication",
        "channel": Channel.SMS, "legal_basis": LegalBasis.CONSENT, "sourcing": Sourcing.RENTED,
        "data_sources": ["broker-file-2026"], "acquired_from": ["broker-lists"],
    }  # fmt: skip
    fields.update(extra)
    return Declaration(**fields)  # type: ignore[arg-type]


def test_each_declaration_is_one_record_with_the_art_30_fields() -> None:
    rows = art30.records([_decl("campaign:b", "zed"), _decl("campaign:a", "acme")], 1095)
    assert [r["record"] for r in rows] == ["campaign:a", "campaign:b"]  # by controller
    first = rows[0]
    assert (first["controller"], first["purpose"], first["legal_basis"]) == (
        "acme", "political.communication", "consent",
    )  # fmt: skip
    assert first["data_categories"][0].startswith("mobile phone number")
    assert first["retention"] == "1095 days (CONSENTINEL_RETENTION_DAYS)"
    assert first["recipients"] == art30.NOT_DECLARED
    assert first["acquired_from"] == ["broker-lists"]


def test_the_csv_neutralizes_formulas_in_every_text_cell() -> None:
    evil = _decl("campaign:x", '=HYPERLINK("http://x")', description="+1+1", purpose="@SUM(A1)")
    text = art30.as_csv(art30.records([evil], 30))
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert list(row) == list(art30.FIELDS)
    assert row["controller"] == '\'=HYPERLINK("http://x")'
    assert row["description"] == "'+1+1" and row["purpose"] == "'@SUM(A1)"
    assert row["data_sources"] == "broker-file-2026"
