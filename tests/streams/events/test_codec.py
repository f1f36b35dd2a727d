from __future__ import annotations

import pytest
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput, ValidationError
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    ConsentSummary,
    DeadLetter,
    Decision,
    Declaration,
    Proof,
    Severity,
    UsageEvent,
    UsageKind,
    Verdict,
)

KEY = "a" * 64


def samples() -> list[object]:
    proof = Proof(method="double_opt_in", collected_at_ms=1, collection_point="https://x.test/f")
    return [
        UsageEvent(
            "s:1",
            10,
            11,
            "mc",
            "mandrill",
            Channel.EMAIL,
            UsageKind.SEND,
            KEY,
            "a***@e***.org",
            "acme",
            campaign_id="c1",
            tags=["t"],
            attributes={"n": 1, "f": 1.5, "b": True, "s": "x"},
        ),
        ConsentEvent(
            "c:1",
            10,
            11,
            "mc",
            "mailchimp",
            KEY,
            "a***@e***.org",
            "acme",
            ConsentAction.GRANT,
            purposes=["editorial.newsletter"],
            channels=[Channel.EMAIL],
            recipients=["p1"],
            proof=proof,
            expires_at_ms=99,
        ),
        Declaration(
            "campaign:c1",
            "campaign",
            "c1",
            "acme",
            "marketing.direct",
            Channel.EMAIL,
            data_sources=["list:x"],
        ),
        Verdict(
            "s:1", KEY, 10, 12, Decision.VIOLATION, ["R2"], "c:1", "acme", Channel.EMAIL, "x", "mc"
        ),
        Alert(
            "al-1",
            "R2",
            "S6 art. 5(1)(b)",
            Severity.CRITICAL,
            "acme|c1|R2",
            "s:1",
            KEY,
            "a***@e***.org",
            "acme",
            Channel.EMAIL,
            "used for political",
            10,
            12,
            AlertStatus.FIRING,
            consent=ConsentSummary("given", ["c:1"], ["editorial.newsletter"], proof=proof),
        ),
        DeadLetter("mc", 11, "schema", "UsageEvent.kind: expected ...", "c2VhbGVk", "dl-1"),
    ]


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_every_record_round_trips(record: object) -> None:
    data = codec.encode(record)
    assert codec.decode(type(record), data) == record
    assert codec.to_obj(record)["v"] == 1


def test_wrong_type_names_field_found_and_expected() -> None:
    obj = codec.to_obj(samples()[0])
    obj["occurred_at_ms"] = "2026-01-01"
    with pytest.raises(ValidationError) as err:
        codec.from_obj(UsageEvent, obj)
    assert err.value.field == "occurred_at_ms"
    assert err.value.found == "string"
    assert err.value.expected == "integer"
    assert str(err.value) == "UsageEvent.occurred_at_ms: expected integer, got string"
    assert err.value.code == "schema"


def test_error_never_repeats_the_value() -> None:
    obj = codec.to_obj(samples()[0])
    obj["hint"] = ["ana@example.org"]
    with pytest.raises(ValidationError) as err:
        codec.from_obj(UsageEvent, obj)
    assert "ana@example.org" not in str(err.value)
    assert "expected string, got array" in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda o: o.__setitem__("channel", "fax"), "channel", "one of"),
        (lambda o: o.__setitem__("tags", "t"), "tags", "array"),
        (lambda o: o.__setitem__("tags", [1]), "tags[0]", "string"),
        (lambda o: o.__setitem__("attributes", {"k": [1]}), "attributes.k", "string or integer"),
        (lambda o: o.__setitem__("is_test", 1), "is_test", "boolean"),
        (lambda o: o.__setitem__("received_at_ms", True), "received_at_ms", "integer"),
        (lambda o: o.pop("subject_key"), "subject_key", "a value"),
        (lambda o: o.__setitem__("v", 7), "v", "schema version 1..1"),
    ],
)
def test_every_validation_error(mutate, field: str, expected: str) -> None:
    obj = codec.to_obj(samples()[0])
    mutate(obj)
    with pytest.raises(ValidationError) as err:
        codec.from_obj(UsageEvent, obj)
    assert err.value.field == field
    assert expected in err.value.expected


def test_nested_field_path() -> None:
    obj = codec.to_obj(samples()[1])
    obj["proof"]["collected_at_ms"] = 1.5
    with pytest.raises(ValidationError) as err:
        codec.from_obj(ConsentEvent, obj)
    assert (err.value.record, err.value.field) == ("ConsentEvent", "proof.collected_at_ms")
    assert err.value.found == "number"


def test_not_an_object_and_not_json() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode(UsageEvent, b"[1, 2]")
    assert "object (UsageEvent)" in err.value.expected
    with pytest.raises(InvalidInput) as bad:
        codec.decode(UsageEvent, b"{not json")
    assert bad.value.code == "malformed_json"


def test_unknown_fields_are_ignored_for_rolling_upgrades() -> None:
    obj = codec.to_obj(samples()[0])
    obj["added_later"] = 1
    assert codec.from_obj(UsageEvent, obj) == samples()[0]


def test_float_field_accepts_integers() -> None:
    obj = codec.to_obj(samples()[0])
    obj["attributes"] = {"score": 3}
    assert codec.from_obj(UsageEvent, obj).attributes == {"score": 3}


def test_encoded_values_take_the_memory_of_their_size() -> None:
    import tracemalloc

    values = [{"h": "a***@x.test", "l": [i]} for i in range(2000)]
    tracemalloc.start()
    try:
        kept = [codec.dumps(v) for v in values]
        per_value = tracemalloc.get_traced_memory()[0] / len(kept)
    finally:
        tracemalloc.stop()
    assert kept[7] == b'{"h":"a***@x.test","l":[7]}'
    assert per_value < 512, f"{per_value:.0f} bytes held per 27-byte value"


@pytest.mark.parametrize("record", samples(), ids=lambda r: type(r).__name__)
def test_a_record_lacking_its_optional_fields_gets_their_defaults(record: object) -> None:
    """A record read with every field present takes the subscript path; one lacking a
    field goes the ``get`` way: both give the record the class gives."""
    import dataclasses

    cls = type(record)
    required = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    obj = codec.to_obj(record)
    short = {name: obj[name] for name in required}
    assert codec.from_obj(cls, short) == cls(**{name: getattr(record, name) for name in required})
