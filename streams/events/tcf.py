"""IAB TCF v2.2 TC string decoder (connectors.md §4.3) and the R22 purpose/vendor check.

A TC string is ``.``-separated segments, each Base64url (6 bits per character, no padding,
trailing zero bits are padding). The first is the core segment; the others start with a 3-bit
segment type: 1 disclosed vendors, 2 allowed vendors (legacy), 3 publisher TC. Bit vectors are
1-based, left to right: bit *k* set means purpose/feature/vendor *k*.

Everything decoded is a frozen dataclass. Anything wrong raises :class:`TCStringError`, which
names the segment, the field and the bit offset (within that segment) where decoding failed.
Leniency, as in IAB's reference decoder (iabtcf-es): trailing bits after the last field are
ignored, ``=`` padding is stripped, and range entries may name vendors above ``MaxVendorId``.
Strictness beyond it: a range whose end is below its start, a vendor id 0, or range entries
naming more than 2**18 vendor ids in one segment (a crafted string could otherwise expand into
hundreds of millions) are errors.

It lives in ``events`` because both layers need it: the CMP connectors decode TC strings into
consent events, the policy's R22 checks a use's purpose and vendor against the string kept as
proof (``connectors.tcf`` re-exports it).
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Final

from consentinel.streams.events.errors import InvalidInput

__all__ = [
    "PublisherRestriction",
    "PublisherTC",
    "RestrictionType",
    "TCString",
    "TCStringError",
    "VendorVector",
    "decode_tc_string",
    "permits",
]

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_BITS: Final = {c: format(i, "06b") for i, c in enumerate(_ALPHABET)}
_MAX_RANGE_IDS: Final = 1 << 18
"""Upper bound on vendor ids named by the range entries of one segment (4 full 16-bit ranges),
so that a short crafted string cannot expand into hundreds of millions of ids."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SEGMENT_NAMES: Final = {1: "disclosed vendors", 2: "allowed vendors", 3: "publisher TC"}


class TCStringError(InvalidInput, ValueError):
    """A TC string that cannot be decoded; ``segment``, ``field`` and ``offset`` say where.

    Bad input (code ``bad_tc_string``): dead-lettered with its reason when it is the whole
    payload; a connector that finds one inside a consent event keeps the event and notes
    the string as undecodable."""

    def __init__(self, message: str, *, segment: str, field: str, offset: int) -> None:
        super().__init__(
            "bad_tc_string", f"TC string, {segment} segment, {field} at bit {offset}: {message}"
        )
        self.segment = segment
        self.field = field
        self.offset = offset


class RestrictionType(IntEnum):
    """Publisher restriction types (2 bits)."""

    NOT_ALLOWED = 0
    REQUIRE_CONSENT = 1
    REQUIRE_LEGITIMATE_INTEREST = 2
    UNDEFINED = 3


@dataclass(frozen=True, slots=True)
class VendorVector:
    """A set of vendor ids as encoded: ``max_vendor_id`` and whether range encoding was used."""

    max_vendor_id: int
    is_range_encoded: bool
    ids: frozenset[int]

    def __contains__(self, vendor_id: object) -> bool:
        return vendor_id in self.ids


@dataclass(frozen=True, slots=True)
class PublisherRestriction:
    """The publisher restricts ``purpose_id`` for ``vendor_ids`` in the way ``restriction_type``
    says."""

    purpose_id: int
    restriction_type: RestrictionType
    vendor_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class PublisherTC:
    """The optional publisher TC segment (type 3)."""

    purposes_consent: frozenset[int]
    purposes_legitimate_interest: frozenset[int]
    num_custom_purposes: int
    custom_purposes_consent: frozenset[int]
    custom_purposes_legitimate_interest: frozenset[int]


@dataclass(frozen=True, slots=True)
class TCString:
    """A decoded TC string. Purposes, special features and vendors are sets of 1-based ids."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    tcf_policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_legitimate_interest: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: VendorVector
    vendor_legitimate_interests: VendorVector
    publisher_restrictions: tuple[PublisherRestriction, ...]
    disclosed_vendors: VendorVector | None = None
    allowed_vendors: VendorVector | None = None
    publisher_tc: PublisherTC | None = None


class _Reader:
    """Reads big-endian bit fields from one segment, tracking the offset for error messages."""

    def __init__(self, text: str, segment: str) -> None:
        self.segment = segment
        self.offset = 0
        self.expanded = 0
        chunks = []
        for index, char in enumerate(text):
            chunk = _BITS.get(char)
            if chunk is None:
                raise TCStringError(
                    f"character {index} ({char!r}) is not Base64url",
                    segment=segment,
                    field="encoding",
                    offset=index * 6,
                )
            chunks.append(chunk)
        self.bits = "".join(chunks)
        self.length = len(self.bits)

    def error(self, field: str, message: str, offset: int | None = None) -> TCStringError:
        at = self.offset if offset is None else offset
        return TCStringError(message, segment=self.segment, field=field, offset=at)

    def take(self, bits: int, field: str) -> str:
        if self.offset + bits > self.length:
            raise self.error(
                field, f"needs {bits} bits but the segment ends at bit {self.length} (truncated)"
            )
        chunk = self.bits[self.offset : self.offset + bits]
        self.offset += bits
        return chunk

    def uint(self, bits: int, field: str) -> int:
        chunk = self.take(bits, field)
        return int(chunk, 2) if chunk else 0

    def flag(self, field: str) -> bool:
        return self.take(1, field) == "1"

    def bitset(self, bits: int, field: str) -> frozenset[int]:
        chunk = self.take(bits, field)
        return frozenset(k for k, bit in enumerate(chunk, start=1) if bit == "1")

    def letters(self, field: str) -> str:
        start = self.offset
        first, second = self.uint(6, field), self.uint(6, field)
        if first > 25 or second > 25:
            raise self.error(field, "is not two letters A-Z", start)
        return chr(65 + first) + chr(65 + second)

    def deciseconds(self, field: str) -> datetime:
        return _EPOCH + timedelta(milliseconds=100 * self.uint(36, field))

    def ranges(self, field: str) -> frozenset[int]:
        """``NumEntries`` (12 bits), then entries ``IsARange`` 1, start 16, [end 16]."""
        ids: set[int] = set()
        for _ in range(self.uint(12, f"{field}.NumEntries")):
            is_range = self.flag(f"{field}.IsARange")
            at = self.offset
            start = self.uint(16, f"{field}.StartOrOnlyVendorId")
            end = self.uint(16, f"{field}.EndVendorId") if is_range else start
            if start == 0:
                raise self.error(f"{field}.StartOrOnlyVendorId", "vendor id 0 is not valid", at)
            if end < start:
                raise self.error(f"{field}.EndVendorId", f"range end {end} < start {start}", at)
            self.expanded += end - start + 1
            if self.expanded > _MAX_RANGE_IDS:
                raise self.error(
                    f"{field}.EndVendorId",
                    f"the ranges of this segment name more than {_MAX_RANGE_IDS} vendor ids",
                    at,
                )
            ids.update(range(start, end + 1))
        return frozenset(ids)

    def vendors(self, field: str) -> VendorVector:
        """``MaxVendorId`` 16, ``IsRangeEncoding`` 1, then a bitfield or a range list."""
        max_id = self.uint(16, f"{field}.MaxVendorId")
        if self.flag(f"{field}.IsRangeEncoding"):
            return VendorVector(max_id, True, self.ranges(field))
        return VendorVector(max_id, False, self.bitset(max_id, f"{field}.BitField"))


def _core(reader: _Reader) -> TCString:
    version = reader.uint(6, "Version")
    if version != 2:
        raise reader.error("Version", f"version {version} is not supported (only TCF v2)", 0)
    return TCString(
        version=version,
        created=reader.deciseconds("Created"),
        last_updated=reader.deciseconds("LastUpdated"),
        cmp_id=reader.uint(12, "CmpId"),
        cmp_version=reader.uint(12, "CmpVersion"),
        consent_screen=reader.uint(6, "ConsentScreen"),
        consent_language=reader.letters("ConsentLanguage"),
        vendor_list_version=reader.uint(12, "VendorListVersion"),
        tcf_policy_version=reader.uint(6, "TcfPolicyVersion"),
        is_service_specific=reader.flag("IsServiceSpecific"),
        use_non_standard_texts=reader.flag("UseNonStandardTexts"),
        special_feature_opt_ins=reader.bitset(12, "SpecialFeatureOptIns"),
        purposes_consent=reader.bitset(24, "PurposesConsent"),
        purposes_legitimate_interest=reader.bitset(24, "PurposesLITransparency"),
        purpose_one_treatment=reader.flag("PurposeOneTreatment"),
        publisher_cc=reader.letters("PublisherCC"),
        vendor_consents=reader.vendors("VendorConsents"),
        vendor_legitimate_interests=reader.vendors("VendorLegitimateInterests"),
        publisher_restrictions=_restrictions(reader),
    )


def _restrictions(reader: _Reader) -> tuple[PublisherRestriction, ...]:
    restrictions = []
    for _ in range(reader.uint(12, "NumPubRestrictions")):
        purpose = reader.uint(6, "PubRestrictions.PurposeId")
        kind = RestrictionType(reader.uint(2, "PubRestrictions.RestrictionType"))
        restrictions.append(PublisherRestriction(purpose, kind, reader.ranges("PubRestrictions")))
    return tuple(restrictions)


def _publisher_tc(reader: _Reader) -> PublisherTC:
    consent = reader.bitset(24, "PubPurposesConsent")
    legitimate_interest = reader.bitset(24, "PubPurposesLITransparency")
    custom = reader.uint(6, "NumCustomPurposes")
    return PublisherTC(
        purposes_consent=consent,
        purposes_legitimate_interest=legitimate_interest,
        num_custom_purposes=custom,
        custom_purposes_consent=reader.bitset(custom, "CustomPurposesConsent"),
        custom_purposes_legitimate_interest=reader.bitset(custom, "CustomPurposesLITransparency"),
    )


def decode_tc_string(tc_string: str) -> TCString:
    """Decode a TC string; raises :class:`TCStringError` (a ``ValueError``) for anything wrong."""
    if not isinstance(tc_string, str):
        raise TCStringError("is not a string", segment="core", field="input", offset=0)
    segments = tc_string.strip().split(".")
    if not segments[0]:
        raise TCStringError("the string is empty", segment="core", field="input", offset=0)
    tc = _core(_Reader(segments[0].rstrip("="), "core"))
    disclosed: VendorVector | None = None
    allowed: VendorVector | None = None
    publisher: PublisherTC | None = None
    for position, text in enumerate(segments[1:], start=1):
        label = f"segment {position}"
        reader = _Reader(text.rstrip("="), label)
        segment_type = reader.uint(3, "SegmentType")
        name = _SEGMENT_NAMES.get(segment_type)
        if name is None:
            raise reader.error("SegmentType", f"unknown segment type {segment_type}", 0)
        reader.segment = f"{name} ({label})"
        seen = {1: disclosed, 2: allowed, 3: publisher}[segment_type]
        if seen is not None:
            raise reader.error("SegmentType", f"a second {name} segment", 0)
        if segment_type == 1:
            disclosed = reader.vendors("Vendors")
        elif segment_type == 2:
            allowed = reader.vendors("Vendors")
        else:
            publisher = _publisher_tc(reader)
    return replace(tc, disclosed_vendors=disclosed, allowed_vendors=allowed, publisher_tc=publisher)


def permits(tc: TCString, purpose: int, vendor: int) -> bool:
    """Rule R22: may ``vendor`` process for TCF ``purpose`` on the basis of consent?

    True only if the user consented to the purpose, the vendor has consent, and no publisher
    restriction for this purpose and vendor stands in the way. A restriction "not allowed"
    forbids it; "require legitimate interest" rules out the consent basis, so it forbids it too;
    the reserved type 3 is treated as forbidding (fail closed). "Require consent" does not.
    ``PurposeOneTreatment`` is not special-cased: without the purpose 1 bit there is no consent.
    """
    if purpose < 1 or vendor < 1:
        raise ValueError(
            f"purpose and vendor ids start at 1 (got purpose {purpose}, vendor {vendor})"
        )
    if purpose not in tc.purposes_consent or vendor not in tc.vendor_consents:
        return False
    return not any(
        r.purpose_id == purpose
        and vendor in r.vendor_ids
        and r.restriction_type is not RestrictionType.REQUIRE_CONSENT
        for r in tc.publisher_restrictions
    )
