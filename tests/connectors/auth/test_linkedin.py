"""LinkedIn X-LI-Signature and challengeCode validation: §8 vectors and tampering."""

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import quote

import pytest
from consentinel.connectors.auth import (
    AuthenticationFailed,
    is_challenge_code,
    linkedin_challenge_reply,
    linkedin_challenge_response,
    linkedin_signature,
    verify_linkedin,
)
from consentinel.connectors.builtin.linkedin_leads import LinkedInLeadGenConnector
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import instance, make_edge
from consentinel.streams.events.codec import loads

SECRET = "client_secret_synthetic"
BODY = (
    b'{"type":"LEAD_ACTION","leadGenFormResponse":"urn:li:leadGenFormResponse:synthetic-1",'
    b'"leadAction":"CREATED","occurredAt":1767225600000}'
)
SIGNATURE = "069c344220375a906ee65a65ce5d03f4cfd48772ca9a69583c1fa8541ac0624a"
CHALLENGE = "f2b8c7a0-0000-4000-8000-000000000001"
CHALLENGE_RESPONSE = "cf00c41693b3f9f941b09d7874786106ac1a36e04d976d1029503f24c3b80f8a"


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "LEAD_ACTION" not in str(info.value)


def test_vector_signature() -> None:
    assert linkedin_signature(SECRET, BODY) == SIGNATURE
    verify_linkedin(SECRET, BODY, {"X-LI-Signature": SIGNATURE})


def test_challenge_vector() -> None:
    assert linkedin_challenge_response(SECRET, CHALLENGE) == CHALLENGE_RESPONSE
    assert linkedin_challenge_reply(SECRET, CHALLENGE) == {
        "challengeCode": CHALLENGE,
        "challengeResponse": CHALLENGE_RESPONSE,
    }


def test_both_plausible_forms_accepted() -> None:
    """connectors.md marks the string to sign [P]: prefixed body or bare body."""
    bare = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    verify_linkedin(SECRET, BODY, {"X-LI-Signature": bare})
    verify_linkedin(SECRET, BODY, {"x-li-signature": "hmacsha256=" + SIGNATURE})
    verify_linkedin(SECRET, BODY, {"X-LI-Signature": SIGNATURE.upper()})


@pytest.mark.parametrize("index", [0, 30, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails(
        "bad_signature", lambda: verify_linkedin(SECRET, bytes(body), {"X-LI-Signature": SIGNATURE})
    )


@pytest.mark.parametrize("index", [0, 13, 40, len(SIGNATURE) - 1])
def test_changed_signature_fails(index: int) -> None:
    headers = {"X-LI-Signature": mutate(SIGNATURE, index)}
    fails("bad_signature", lambda: verify_linkedin(SECRET, BODY, headers))


def test_missing_signature() -> None:
    fails("missing_signature", lambda: verify_linkedin(SECRET, BODY, {"X-LI-Sig": SIGNATURE}))


def test_wrong_secret() -> None:
    fails("bad_signature", lambda: verify_linkedin("other", BODY, {"X-LI-Signature": SIGNATURE}))


# -- the challenge oracle must never sign a webhook body (issue #11, forgery) -------------


def test_challenge_code_shapes() -> None:
    assert is_challenge_code(CHALLENGE)
    assert is_challenge_code(CHALLENGE.upper())
    for code in (
        "",
        CHALLENGE + "\n",
        " " + CHALLENGE,
        CHALLENGE.replace("-", ""),
        "{" + CHALLENGE + "}",
        "g2b8c7a0-0000-4000-8000-000000000001",
        BODY.decode(),
        "\udcff",
    ):
        assert not is_challenge_code(code), code


@pytest.mark.parametrize(
    "code", [BODY.decode(), "hmacsha256=" + BODY.decode(), "abc", CHALLENGE + "0", "x" * 10_000]
)
def test_only_uuid_challenge_codes_are_answered(code: str) -> None:
    fails("malformed_request", lambda: linkedin_challenge_response(SECRET, code))
    fails("malformed_request", lambda: linkedin_challenge_reply(SECRET, code))


def test_the_oracle_never_signs_a_body() -> None:
    """The forgery of issue #11 asked the oracle for HMAC(secret, body) or for
    HMAC(secret, "hmacsha256=" + body): both are refused, whatever the body."""
    for code in (BODY, b"hmacsha256=" + BODY, b"[" * 1100, b"\x00" + CHALLENGE.encode()):
        fails("malformed_request", lambda c=code: linkedin_challenge_response(SECRET, c.decode()))


def test_challenge_shaped_body_is_never_accepted() -> None:
    """A valid challengeResponse, presented as the signature of its own code, is refused."""
    for code in (CHALLENGE, CHALLENGE.upper()):
        answer = linkedin_challenge_response(SECRET, code)
        for presented in (answer, "hmacsha256=" + answer, answer.upper()):
            headers, raw = {"X-LI-Signature": presented}, code.encode()
            fails("bad_signature", lambda h=headers, b=raw: verify_linkedin(SECRET, b, h))
    # The prefixed form over the same bytes cannot come from the oracle, and is still checked.
    raw = CHALLENGE.encode()
    verify_linkedin(SECRET, raw, {"X-LI-Signature": linkedin_signature(SECRET, raw)})


def test_forgery_through_the_connector_is_refused() -> None:
    """End to end through the built-in connector, as an attacker without the secret would:
    GET ?challengeCode=<body> (or its prefixed form), then POST the body with the answer."""
    inst = instance("linkedin_lead_gen", secrets={"client_secret": SECRET})
    conn = LinkedInLeadGenConnector(inst, make_edge())
    answers: list[str] = []
    for code in (BODY.decode(), "hmacsha256=" + BODY.decode()):
        get = Request(
            method="GET",
            url="https://hooks.example.test/li?challengeCode=" + quote(code),
            path="/",
            query={"challengeCode": [code]},
            headers={},
            body=b"",
        )
        try:
            answer = conn.handshake(get)
        except AuthenticationFailed as exc:
            assert exc.reason == "malformed_request"
            continue
        assert answer is not None
        answers.append(loads(answer.body)["challengeResponse"])
    assert answers == []  # the oracle refused to sign the body
    for forged in answers:  # pragma: no cover - reached only on the defective code
        post = Request(
            method="POST",
            url="https://hooks.example.test/li",
            path="/",
            query={},
            headers={"x-li-signature": forged},
            body=BODY,
        )
        fails("bad_signature", lambda p=post: conn.verify(p))


@pytest.mark.parametrize("presented", ["", "ab", "0" * 63, "0" * 65, "z" * 64 + "0" * 10_000])
def test_malformed_signature_lengths(presented: str) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        verify_linkedin(SECRET, BODY, {"X-LI-Signature": presented})
    assert info.value.reason in {"missing_signature", "malformed_signature"}
