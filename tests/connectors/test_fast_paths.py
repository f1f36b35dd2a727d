"""The fast paths of the file import's per-row work give exactly what the general ones
give: the hash of a canonical IPv4 address, the time parses with compiled patterns."""

from __future__ import annotations

import hashlib
import ipaddress
import random
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput


def _slow_ip_hash(value: Any) -> str | None:
    """The general path: parse, normalize, hash (what every address took before)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    return hashlib.sha256(str(ip).encode("ascii")).hexdigest()


def _addresses() -> list[Any]:
    rng = random.Random(20261206)
    out: list[Any] = [
        f"{a}.{b}.{c}.{d}" for a, b, c, d in (rng.choices(range(256), k=4) for _ in range(20_000))
    ]
    out += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(5_000)]
    out += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(2_000)]
    out += [
        "0.0.0.0", "255.255.255.255", " 192.0.2.1\n", "\t10.0.0.1 ",
        "256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.04", "00.0.0.0", "1.2.3", "1.2.3.4.5",
        "1..2.3", "1.2.3.4 5", "+1.2.3.4", "1.2.3.-4", "1.2.3.4/24", "\u0663.2.3.4", "\uff11.2.3.4",
        "::ffff:1.2.3.4", "::1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
        "fe80::1%eth0", "", "   ", "localhost", None, 12345, b"1.2.3.4",
    ]  # fmt: skip
    out += [
        f"{rng.randrange(300)}.{rng.randrange(300)}.{rng.randrange(300)}.{rng.randrange(300)}"
        for _ in range(5_000)
    ]
    return out


def test_ip_hash_is_the_general_paths_hash_for_every_address() -> None:
    for value in _addresses():
        assert em.ip_hash(value) == _slow_ip_hash(value), repr(value)


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026-03-01 08:00:30", UTC, 1772352030000),
        ("2026-03-01T08:00:30Z", UTC, 1772352030000),
        ("2026-03-01 08:00:30.123456789", UTC, 1772352030123),
        ("2026-03-01 08:00:30+01:00", UTC, 1772348430000),
        ("2026-07-01 08:00:00", ZoneInfo("Europe/Paris"), 1782885600000),
        ("1772352030", UTC, 1772352030000),
        (" 1772352030.5 ", UTC, 1772352030500),
        (1772352030, UTC, 1772352030000),
    ],
)
def test_local_ms_reads_every_form(value: Any, zone: Any, expected: int) -> None:
    assert tt.local_ms(value, "t", zone) == expected


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-01 08:00:00", "1999-12-31 23:59:59", "2100-01-01 00:00:00"]
)
def test_local_ms_refuses_what_is_not_a_time_in_range(value: str) -> None:
    with pytest.raises(InvalidInput) as err:
        tt.local_ms(value, "t", UTC)
    assert err.value.code == "bad_timestamp"


def test_the_other_parses_with_compiled_patterns() -> None:
    assert tt.epoch_or_iso_ms("1772352030", "t") == 1772352030000
    assert tt.epoch_or_iso_ms("1772352030123", "t") == 1772352030123
    assert tt.epoch_or_iso_ms("2026-03-01T08:00:30.5Z", "t") == 1772352030500
    assert tt.any_time_ms(" 1772352030 ", "t") == 1772352030000
    assert tt.any_time_ms("Sun, 01 Mar 2026 08:00:30 +0000", "t") == 1772352030000
    assert tt.any_time_ms("2026-03-01T08:00:30+00:00", "t") == 1772352030000
    assert tt.seconds_ms(" 1772352030.25 ", "t") == 1772352030250
    assert tt.iso_ms("2026-03-01T08:00:30.1234567+00:00", "t") == 1772352030123
    with pytest.raises(InvalidInput):
        tt.seconds_ms("17723520301234567", "t")  # more than 16 digits: not a Unix time
