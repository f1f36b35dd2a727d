"""TCF v2.2 TC string decoder and the R22 check.

Strings are built with a small encoder written here from the field table of connectors.md §4.3;
it reproduces the reference string of §4.3 bit for bit, which checks the encoder itself.
"""

import random
from datetime import UTC, datetime

import pytest
from consentinel.connectors.tcf import (
    PublisherRestriction,
    RestrictionType,
    TCString,
    TCStringError,
    VendorVector,
    decode_tc_string,
    permits,
)

REFERENCE = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAAA"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# --- a small encoder -------------------------------------------------------------------------

Entry = tuple[int, int | None]  # (start, end) or (only, None)


def uint(value: int, width: int) -> str:
    assert 0 <= value < 1 << width
    return format(value, f"0{width}b")


def bitset(ids: set[int], width: int) -> str:
    return "".join("1" if k in ids else "0" for k in range(1, width + 1))


def letters(code: str) -> str:
    return "".join(uint(ord(c) - 65, 6) for c in code)


def range_list(entries: list[Entry]) -> str:
    out = uint(len(entries), 12)
    for start, end in entries:
        out += "1" + uint(start, 16) + uint(end, 16) if end is not None else "0" + uint(start, 16)
    return out


def vendors(ids: set[int], *, range_encoded: bool, max_id: int | None = None) -> str:
    top = max(ids, default=0) if max_id is None else max_id
    if range_encoded:
        return uint(top, 16) + "1" + range_list([(v, None) for v in sorted(ids)])
    return uint(top, 16) + "0" + bitset(ids, top)


def core(
    *,
    version: int = 2,
    created_ds: int = 17684694000,
    updated_ds: int = 17684694000,
    cmp_id: int = 300,
    cmp_version: int = 2,
    screen: int = 1,
    language: str = "FR",
    gvl: int = 120,
    policy: int = 4,
    service_specific: bool = False,
    non_standard: bool = False,
    special_features: frozenset[int] = frozenset(),
    purposes: frozenset[int] = frozenset({1, 2, 3, 4}),
    purposes_li: frozenset[int] = frozenset({7, 9, 10}),
    purpose_one: bool = False,
    cc: str = "FR",
    consents: str | None = None,
    li: str | None = None,
    restrictions: list[tuple[int, int, list[Entry]]] | None = None,
) -> str:
    out = uint(version, 6) + uint(created_ds, 36) + uint(updated_ds, 36)
    out += uint(cmp_id, 12) + uint(cmp_version, 12) + uint(screen, 6) + letters(language)
    out += uint(gvl, 12) + uint(policy, 6) + str(int(service_specific)) + str(int(non_standard))
    out += bitset(set(special_features), 12) + bitset(set(purposes), 24)
    out += bitset(set(purposes_li), 24) + str(int(purpose_one)) + letters(cc)
    out += consents if consents is not None else vendors({12, 42, 755}, range_encoded=True)
    out += li if li is not None else vendors({42}, range_encoded=True)
    out += uint(len(restrictions or []), 12)
    for purpose, kind, entries in restrictions or []:
        out += uint(purpose, 6) + uint(kind, 2) + range_list(entries)
    return out


def publisher_tc(
    consent: set[int], li: set[int], custom_consent: set[int], custom_li: set[int], n: int
) -> str:
    out = uint(3, 3) + bitset(consent, 24) + bitset(li, 24) + uint(n, 6)
    return out + bitset(custom_consent, n) + bitset(custom_li, n)


def b64(bits: str) -> str:
    bits += "0" * (-len(bits) % 24)  # what IAB's encoder does: pad to a multiple of 24 bits
    return "".join(ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


def encode(core_bits: str, *segments: str) -> str:
    return ".".join([b64(core_bits), *(b64(s) for s in segments)])


# --- the reference string --------------------------------------------------------------------


def test_reference_string_decodes_to_the_listed_values() -> None:
    tc = decode_tc_string(REFERENCE)
    moment = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    assert tc == TCString(
        version=2,
        created=moment,
        last_updated=moment,
        cmp_id=300,
        cmp_version=2,
        consent_screen=1,
        consent_language="FR",
        vendor_list_version=120,
        tcf_policy_version=4,
        is_service_specific=False,
        use_non_standard_texts=False,
        special_feature_opt_ins=frozenset(),
        purposes_consent=frozenset({1, 2, 3, 4}),
        purposes_legitimate_interest=frozenset({7, 9, 10}),
        purpose_one_treatment=False,
        publisher_cc="FR",
        vendor_consents=VendorVector(755, True, frozenset({12, 42, 755})),
        vendor_legitimate_interests=VendorVector(42, True, frozenset({42})),
        publisher_restrictions=(),
        disclosed_vendors=None,
        allowed_vendors=None,
        publisher_tc=None,
    )
    assert tc.created.tzinfo is UTC


def test_the_test_encoder_reproduces_the_reference_string() -> None:
    assert encode(core()) == REFERENCE


def test_reference_permits() -> None:
    tc = decode_tc_string(REFERENCE)
    assert permits(tc, 1, 12) and permits(tc, 4, 755) and permits(tc, 2, 42)
    assert not permits(tc, 5, 12)  # purpose 5 not consented
    assert not permits(tc, 7, 42)  # purpose 7 only under legitimate interest
    assert not permits(tc, 1, 13)  # vendor 13 has no consent
    with pytest.raises(ValueError):
        permits(tc, 0, 12)
    with pytest.raises(ValueError):
        permits(tc, 1, 0)


# --- vendor encodings ------------------------------------------------------------------------

VENDOR_SETS = [set(), {1}, {12, 42, 755}, {1, 2, 3, 4, 5, 100}, set(range(1, 40, 3))]


@pytest.mark.parametrize("ids", VENDOR_SETS, ids=lambda s: f"{len(s)}-vendors")
def test_bitfield_and_range_encodings_decode_alike(ids: set[int]) -> None:
    as_bits = decode_tc_string(encode(core(consents=vendors(ids, range_encoded=False))))
    as_ranges = decode_tc_string(encode(core(consents=vendors(ids, range_encoded=True))))
    assert as_bits.vendor_consents == VendorVector(max(ids, default=0), False, frozenset(ids))
    assert as_ranges.vendor_consents == VendorVector(max(ids, default=0), True, frozenset(ids))
    # the rest of the string is unaffected by the choice
    assert as_bits.vendor_legitimate_interests == as_ranges.vendor_legitimate_interests
    assert as_bits.purposes_consent == as_ranges.purposes_consent == {1, 2, 3, 4}


@pytest.mark.parametrize("ids", VENDOR_SETS, ids=lambda s: f"{len(s)}-vendors")
def test_vendor_legitimate_interest_encodings(ids: set[int]) -> None:
    for range_encoded in (False, True):
        tc = decode_tc_string(encode(core(li=vendors(ids, range_encoded=range_encoded))))
        assert tc.vendor_legitimate_interests.ids == ids
        assert tc.vendor_legitimate_interests.is_range_encoded is range_encoded
        assert tc.vendor_consents.ids == {12, 42, 755}


def test_range_entries_that_are_ranges() -> None:
    section = uint(755, 16) + "1" + range_list([(1, 5), (10, None), (700, 755)])
    tc = decode_tc_string(encode(core(consents=section)))
    assert tc.vendor_consents.ids == {1, 2, 3, 4, 5, 10, *range(700, 756)}
    assert 703 in tc.vendor_consents and 6 not in tc.vendor_consents


def test_range_may_exceed_max_vendor_id_as_in_the_iab_decoder() -> None:
    section = uint(10, 16) + "1" + range_list([(8, 12)])
    assert decode_tc_string(encode(core(consents=section))).vendor_consents.ids == {
        8,
        9,
        10,
        11,
        12,
    }


# --- the other core fields -------------------------------------------------------------------


def test_every_core_field() -> None:
    tc = decode_tc_string(
        encode(
            core(
                created_ds=17672256003,
                updated_ds=17672256125,
                cmp_id=4095,
                cmp_version=4095,
                screen=63,
                language="EN",
                gvl=4095,
                policy=2,
                service_specific=True,
                non_standard=True,
                special_features=frozenset({1, 2, 12}),
                purposes=frozenset({1, 11, 24}),
                purposes_li=frozenset({2, 24}),
                purpose_one=True,
                cc="DE",
            )
        )
    )
    assert tc.created == datetime(2026, 1, 1, 0, 0, 0, 300000, tzinfo=UTC)
    assert tc.last_updated == datetime(2026, 1, 1, 0, 0, 12, 500000, tzinfo=UTC)
    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (4095, 4095, 63)
    assert (tc.consent_language, tc.publisher_cc) == ("EN", "DE")
    assert (tc.vendor_list_version, tc.tcf_policy_version) == (4095, 2)
    assert tc.is_service_specific and tc.use_non_standard_texts and tc.purpose_one_treatment
    assert tc.special_feature_opt_ins == {1, 2, 12}
    assert tc.purposes_consent == {1, 11, 24}
    assert tc.purposes_legitimate_interest == {2, 24}


# --- publisher restrictions and R22 ----------------------------------------------------------


def test_publisher_restrictions_decode() -> None:
    tc = decode_tc_string(
        encode(core(restrictions=[(2, 0, [(42, None)]), (3, 1, [(10, 12), (755, None)])]))
    )
    assert tc.publisher_restrictions == (
        PublisherRestriction(2, RestrictionType.NOT_ALLOWED, frozenset({42})),
        PublisherRestriction(3, RestrictionType.REQUIRE_CONSENT, frozenset({10, 11, 12, 755})),
    )


@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        (RestrictionType.NOT_ALLOWED, False),
        (RestrictionType.REQUIRE_CONSENT, True),
        (RestrictionType.REQUIRE_LEGITIMATE_INTEREST, False),
        (RestrictionType.UNDEFINED, False),
    ],
)
def test_permits_honours_restrictions(kind: RestrictionType, allowed: bool) -> None:
    tc = decode_tc_string(encode(core(restrictions=[(2, int(kind), [(40, 50)])])))
    assert permits(tc, 2, 42) is allowed
    assert permits(tc, 2, 12)  # vendor outside the restricted range
    assert permits(tc, 3, 42)  # other purpose
    assert not permits(tc, 5, 42)  # no purpose consent, whatever the restriction


def test_permits_requires_vendor_consent_not_legitimate_interest() -> None:
    tc = decode_tc_string(encode(core(consents=vendors({12}, range_encoded=False))))
    assert 42 in tc.vendor_legitimate_interests
    assert not permits(tc, 1, 42)
    assert permits(tc, 1, 12)


# --- optional segments -----------------------------------------------------------------------


def test_optional_segments() -> None:
    disclosed = uint(1, 3) + vendors({12, 42, 755, 800}, range_encoded=True)
    allowed = uint(2, 3) + vendors({12, 42}, range_encoded=False)
    publisher = publisher_tc({1, 3}, {7}, {1}, {2, 3}, 3)
    tc = decode_tc_string(encode(core(), publisher, disclosed, allowed))
    assert tc.disclosed_vendors == VendorVector(800, True, frozenset({12, 42, 755, 800}))
    assert tc.allowed_vendors == VendorVector(42, False, frozenset({12, 42}))
    assert tc.publisher_tc is not None
    assert tc.publisher_tc.purposes_consent == {1, 3}
    assert tc.publisher_tc.purposes_legitimate_interest == {7}
    assert tc.publisher_tc.num_custom_purposes == 3
    assert tc.publisher_tc.custom_purposes_consent == {1}
    assert tc.publisher_tc.custom_purposes_legitimate_interest == {2, 3}
    assert tc.vendor_consents.ids == {12, 42, 755}


def test_publisher_tc_without_custom_purposes() -> None:
    tc = decode_tc_string(REFERENCE + "." + b64(publisher_tc(set(), {2}, set(), set(), 0)))
    assert tc.publisher_tc is not None and tc.publisher_tc.purposes_legitimate_interest == {2}
    assert tc.disclosed_vendors is None


# --- strings from IAB's reference library (iabtcf-es test suite) -----------------------------

IAB_RESTRICTIONS = (
    "CO4VGswO4VGswAfZCBDEAzCsAP_AAH_AAAigGUNf_X9fb2vj-_599_t0eY1f9_63t-wzjheMs-8NyZ-X_J4Wv2MyvB34Jq"
    "QKGRgkunLBAQdtHGncTQgBwIlViTLMY02MjzNKJrJEilsbe2dYGH9vn8XT_ZKZ70-_v__7v3___33_5Ayhr_6_r7e18f3_P"
    "vv9ujzGr_v_W9v2GccLxln3huTPy_5PC1-xmV4O_BNSBQyMEl05YICDto407iaEAOBEqsSZZjGmxkeZpRNZIkUtjb2zrAw_"
    "t8_i6f7JTPen39___d-___--__ICgKAOAAcAA4AFAAjgB6AEYALcGACAW0AtoJAHAAOAAcACgARwA9ACMAFuFABALaAW0G"
    "gDgAHAAOABQAI4AegBGAC3DgAgFtALaEQBwADgAHAAoAEcAPQAjABbiQAQC2gFtCoA4ABwADgAUACOAHoARgAtxYAIBbQC"
    "2hkAcAA4ABwAKABHAD0AIwAW40AEAtoBbQ6AOAAcAA4AFAAjgB6AEYALceACAW0AtohAHAAOAAcACgARwA9ACMAFuRABAL"
    "aAW0SgDgAHAAOABQAI4AegBGAC3JgAgFtALaKQBwADgAHAAoAEcAPQAjABblQAQC2gFtA"
)


def test_iab_string_with_repeated_restrictions() -> None:
    tc = decode_tc_string(IAB_RESTRICTIONS)
    assert tc.version == 2
    require_consent = [
        r.vendor_ids
        for r in tc.publisher_restrictions
        if r.purpose_id == 1 and r.restriction_type is RestrictionType.REQUIRE_CONSENT
    ]
    assert require_consent == [frozenset({7, 20, 71, 122, 140, 183})]


def test_iab_string_with_publisher_tc_segment() -> None:
    tc = decode_tc_string("CO5dPi4O5dPx2B7DvCENA2CgAAAAAAAAAAAAGewAAM8gAAAA.YAAAAAAAAAAA")
    assert tc.publisher_tc is not None and tc.publisher_tc.num_custom_purposes == 0


def test_iab_string_whose_bitfield_is_short_is_rejected() -> None:
    text = (
        "CLSYjTaOngnCIAOABBENAXCMAGOAABBAAA7IA5n-m7fP6_3fbqVv6E__PoA5Aqff3aJx8tv_1967rfnQEQoAIAAQCrw"
        "kAEABAcACABIMACAAuApEVABABUSABgBCAVSAtIoACACIArYQAHACgAFgAVwBJgDcAI7AWgMAAgBiKgAgBMgFfKQAQB"
        "RkQAQA4AFiBAAoA-AEVAJlAVgAtYcACAJcAr4eABAK8OgBgFzAOmAqwgABAWyA.IFukWSQh"
    )
    with pytest.raises(TCStringError) as info:
        decode_tc_string(text)
    assert info.value.segment == "disclosed vendors (segment 1)"
    assert info.value.field == "Vendors.BitField"
    assert info.value.offset == 20


def test_tcf_v1_string_is_rejected() -> None:
    with pytest.raises(TCStringError) as info:
        decode_tc_string("BO2e4qiO2e4qiB9ABADEDS-AAAAxKABgACBiQA")
    assert (info.value.field, info.value.offset) == ("Version", 0)
    assert "version 1" in str(info.value)


# --- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(len(REFERENCE) - 1))
def test_every_truncation_raises_tc_string_error(length: int) -> None:
    # 351 bits are needed: 59 characters. Shorter prefixes must fail cleanly.
    if length >= 59:
        assert decode_tc_string(REFERENCE[:length]) == decode_tc_string(REFERENCE)
        return
    with pytest.raises(TCStringError) as info:
        decode_tc_string(REFERENCE[:length])
    assert isinstance(info.value, ValueError)
    assert 0 <= info.value.offset <= max(length * 6, 0)


def test_truncation_names_field_and_offset() -> None:
    with pytest.raises(TCStringError) as info:
        decode_tc_string(REFERENCE[:20])  # 120 bits: VendorListVersion starts at bit 120
    assert (info.value.segment, info.value.field, info.value.offset) == (
        "core",
        "VendorListVersion",
        120,
    )
    assert "bit 120" in str(info.value) and "truncated" in str(info.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "input"),
        ("   ", "input"),
        (".", "input"),
        ("hello world", "encoding"),
        ("CQeF*wPw", "encoding"),
        (REFERENCE.replace("A", "+", 1), "encoding"),
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Version"),
        ("DQeFwPwQeFwPw", "Version"),
        (REFERENCE + ".", "SegmentType"),
        (REFERENCE + ".AAAA", "SegmentType"),
        (REFERENCE + ".gAAA", "SegmentType"),
        (
            REFERENCE + "." + b64(uint(1, 3) + uint(50, 16) + "0"),  # 50-bit field, 4 bits left
            "Vendors.BitField",
        ),
    ],
)
def test_garbage_raises_tc_string_error(text: str, field: str) -> None:
    with pytest.raises(TCStringError) as info:
        decode_tc_string(text)
    assert info.value.field == field


def test_invalid_character_offset() -> None:
    with pytest.raises(TCStringError) as info:
        decode_tc_string(REFERENCE[:10] + "!" + REFERENCE[11:])
    assert (info.value.field, info.value.offset) == ("encoding", 60)


def test_duplicate_segment_rejected() -> None:
    disclosed = b64(uint(1, 3) + vendors({1}, range_encoded=False))
    with pytest.raises(TCStringError, match="second disclosed vendors"):
        decode_tc_string(f"{REFERENCE}.{disclosed}.{disclosed}")


@pytest.mark.parametrize(
    ("consents", "restrictions", "field"),
    [
        (uint(20, 16) + "1" + range_list([(20, 10)]), None, "VendorConsents.EndVendorId"),
        (uint(20, 16) + "1" + range_list([(0, None)]), None, "VendorConsents.StartOrOnlyVendorId"),
        (None, [(1, 0, [(9, 3)])], "PubRestrictions.EndVendorId"),
        (None, [(1, 0, [(0, 4)])], "PubRestrictions.StartOrOnlyVendorId"),
    ],
)
def test_invalid_ranges(
    consents: str | None, restrictions: list[tuple[int, int, list[Entry]]] | None, field: str
) -> None:
    with pytest.raises(TCStringError) as info:
        decode_tc_string(encode(core(consents=consents, restrictions=restrictions)))
    assert info.value.field == field


def test_full_width_ranges_are_decoded() -> None:
    everyone = uint(65535, 16) + "1" + range_list([(1, 65535)])
    tc = decode_tc_string(encode(core(consents=everyone, li=everyone)))
    assert len(tc.vendor_consents.ids) == 65535 and 65535 in tc.vendor_legitimate_interests


def test_range_expansion_is_bounded() -> None:
    # about 5 kB of text whose restrictions would name 600 x 65535 vendor ids
    full: list[Entry] = [(1, 65535)]
    restrictions = [(p % 24 + 1, 0, full) for p in range(600)]
    text = encode(core(restrictions=restrictions))
    assert len(text) < 6000
    with pytest.raises(TCStringError, match="more than 262144 vendor ids") as info:
        decode_tc_string(text)
    assert info.value.field == "PubRestrictions.EndVendorId"


def test_language_must_be_letters() -> None:
    bits = core()
    bits = bits[:108] + uint(26, 6) + bits[114:]  # first ConsentLanguage letter = 26
    with pytest.raises(TCStringError) as info:
        decode_tc_string(b64(bits))
    assert (info.value.field, info.value.offset) == ("ConsentLanguage", 108)


def test_non_string_input() -> None:
    with pytest.raises(TCStringError):
        decode_tc_string(None)  # type: ignore[arg-type]


def test_padding_is_tolerated() -> None:
    assert decode_tc_string(REFERENCE + "==") == decode_tc_string(REFERENCE)
    assert decode_tc_string(" " + REFERENCE + "\n") == decode_tc_string(REFERENCE)


def test_random_input_never_raises_anything_else() -> None:
    rng = random.Random(20260115)
    decoded = 0
    for _ in range(3000):
        length = rng.randrange(0, 90)
        head = rng.choice(["", "C", "CQ"])
        text = head + "".join(rng.choice(ALPHABET + ".") for _ in range(length))
        try:
            decode_tc_string(text)
            decoded += 1
        except TCStringError:
            pass
    # random bits after a valid version prefix sometimes decode; most do not
    assert decoded < 3000


@pytest.mark.parametrize("seed", range(20))
def test_random_corruption_of_a_valid_string(seed: int) -> None:
    rng = random.Random(seed)
    text = list(
        encode(core(restrictions=[(2, 0, [(40, 50)])]), publisher_tc({1}, set(), {1}, set(), 2))
    )
    for _ in range(rng.randrange(1, 6)):
        text[rng.randrange(len(text))] = rng.choice(ALPHABET)
    try:
        result = decode_tc_string("".join(text))
    except TCStringError as error:
        assert error.offset >= 0
    else:
        assert isinstance(result, TCString)


def test_a_bad_tc_string_is_invalid_input_of_the_error_tree() -> None:
    from consentinel.streams.events.errors import ConsentinelError, InvalidInput

    with pytest.raises(InvalidInput) as info:
        decode_tc_string("not a tc string")
    assert isinstance(info.value, TCStringError) and isinstance(info.value, ConsentinelError)
    assert info.value.code == "bad_tc_string"
