"""The generic HMAC header scheme for declarative connectors."""

import itertools
from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthConfigError,
    AuthenticationFailed,
    HmacHeaderScheme,
    hmac_header_signature,
    verify_hmac_header,
)
from consentinel.connectors.auth.hmac_header import HmacAlgorithm, HmacEncoding

SECRET = "generic_secret_synthetic"
BODY = b'{"event":"unsubscribe","email":"ana.lima@example.org","ts":1767225600}'
T = "1767225600"


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "ana.lima" not in str(info.value)


COMBINATIONS = list(
    itertools.product(["sha1", "sha256", "sha512"], ["hex", "base64"], ["", "sha="])
)


@pytest.mark.parametrize(("algorithm", "encoding", "prefix"), COMBINATIONS)
def test_round_trip_and_tampering(
    algorithm: HmacAlgorithm, encoding: HmacEncoding, prefix: str
) -> None:
    scheme = HmacHeaderScheme("X-Sig", algorithm=algorithm, encoding=encoding, prefix=prefix)
    value = hmac_header_signature(scheme, SECRET, BODY)
    assert value.startswith(prefix)
    verify_hmac_header(scheme, SECRET, BODY, {"x-sig": value})
    body = bytearray(BODY)
    body[len(BODY) // 2] ^= 0x01
    fails(
        "bad_signature", lambda: verify_hmac_header(scheme, SECRET, bytes(body), {"X-Sig": value})
    )
    index = len(prefix) + 3
    changed = value[:index] + ("1" if value[index] != "1" else "2") + value[index + 1 :]
    fails("bad_signature", lambda: verify_hmac_header(scheme, SECRET, BODY, {"X-Sig": changed}))
    fails("missing_signature", lambda: verify_hmac_header(scheme, SECRET, BODY, {}))


def test_meta_vector_through_the_generic_scheme() -> None:
    scheme = HmacHeaderScheme("X-Hub-Signature-256", prefix="sha256=")
    body = (
        b'{"object":"page","entry":[{"id":"100000000000001","time":1767225600,"changes":[{"field":'
        b'"leadgen","value":{"leadgen_id":"200000000000001","page_id":"100000000000001","form_id":'
        b'"300000000000001","ad_id":"400000000000001","adgroup_id":"400000000000001",'
        b'"created_time":1767225599}}]}]}'
    )
    digest = "face5fe40700c12c756056d68fd085f88f9d74820b905a420adc8ee25dcaca70"
    headers = {"X-Hub-Signature-256": "sha256=" + digest}
    verify_hmac_header(scheme, "app_secret_synthetic", body, headers)


def test_hex_is_case_insensitive_and_prefix_required() -> None:
    scheme = HmacHeaderScheme("X-Sig", prefix="sha256=")
    value = hmac_header_signature(scheme, SECRET, BODY)
    verify_hmac_header(scheme, SECRET, BODY, {"X-Sig": value.upper()})
    bare = value.removeprefix("sha256=")
    fails("malformed_signature", lambda: verify_hmac_header(scheme, SECRET, BODY, {"X-Sig": bare}))


def test_timestamped_scheme() -> None:
    scheme = HmacHeaderScheme("X-Sig", timestamp_header="X-Ts", timestamp_separator=":")
    value = hmac_header_signature(scheme, SECRET, BODY, timestamp=T)
    ok = {"X-Sig": value, "X-Ts": T}
    verify_hmac_header(scheme, SECRET, BODY, ok, now=int(T) + 10)
    fails(
        "bad_signature",
        lambda: verify_hmac_header(
            scheme, SECRET, BODY, dict(ok, **{"X-Ts": "1767225601"}), now=int(T)
        ),
    )
    fails(
        "missing_timestamp",
        lambda: verify_hmac_header(scheme, SECRET, BODY, {"X-Sig": value}, now=int(T)),
    )
    fails("stale_timestamp", lambda: verify_hmac_header(scheme, SECRET, BODY, ok, now=int(T) + 301))
    bad_ts = {
        "X-Sig": hmac_header_signature(scheme, SECRET, BODY, timestamp="noon"),
        "X-Ts": "noon",
    }
    fails(
        "malformed_timestamp", lambda: verify_hmac_header(scheme, SECRET, BODY, bad_ts, now=int(T))
    )
    with pytest.raises(ValueError, match="timestamp"):
        hmac_header_signature(scheme, SECRET, BODY)


def test_rotation() -> None:
    scheme = HmacHeaderScheme("X-Sig")
    value = hmac_header_signature(scheme, SECRET, BODY)
    verify_hmac_header(scheme, ["old", SECRET], BODY, {"X-Sig": value})


def test_from_mapping() -> None:
    scheme = HmacHeaderScheme.from_mapping(
        {"header": "X-Sig", "algorithm": "sha512", "encoding": "base64", "tolerance": 60}
    )
    assert scheme == HmacHeaderScheme(
        "X-Sig", algorithm="sha512", encoding="base64", tolerance=60.0
    )


def test_invalid_configuration_lists_every_problem() -> None:
    with pytest.raises(AuthConfigError) as info:
        HmacHeaderScheme.from_mapping(
            {"algorithm": "md5", "encoding": "base32", "tolerance": "5m", "colour": "blue"}
        )
    message = str(info.value)
    for word in ("'header' is required", "'tolerance'", "unknown setting 'colour'"):
        assert word in message
    with pytest.raises(AuthConfigError) as info:
        HmacHeaderScheme.from_mapping({"header": " ", "algorithm": "md5", "encoding": "base32"})
    message = str(info.value)
    for word in ("'header' is empty", "'algorithm' is 'md5'", "'encoding' is 'base32'"):
        assert word in message
    with pytest.raises(AuthConfigError):
        HmacHeaderScheme("X-Sig", algorithm="md5")  # type: ignore[arg-type]
    with pytest.raises(AuthConfigError):
        HmacHeaderScheme("X-Sig", tolerance=0)
