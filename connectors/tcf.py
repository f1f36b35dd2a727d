"""The TC string decoder moved to ``consentinel.streams.events.tcf`` (the policy's R22 needs
it, and the policy layer may not import connectors); re-exported here unchanged."""

from consentinel.streams.events.tcf import (
    PublisherRestriction,
    PublisherTC,
    RestrictionType,
    TCString,
    TCStringError,
    VendorVector,
    decode_tc_string,
    permits,
)

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
