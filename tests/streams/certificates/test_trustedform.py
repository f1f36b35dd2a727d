"""The TrustedForm-style verifier against a real local HTTP server (``fake_trustedform``)."""

from __future__ import annotations

import time

import pytest
from consentinel.streams.certificates.trustedform import (
    TrustedFormVerifier,
    UrllibClient,
    safe_text,
    token_of,
)
from consentinel.streams.certificates.verifier import Claim
from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.records import CertificateStatus
from consentinel.streams.events.settings import Secret, Settings
from fake_trustedform import KEY, FakeTrustedForm

TOKEN = "0123456789abcdef0123456789abcdef01234567"
CERT = f"https://cert.trustedform.com/{TOKEN}"


def claim(cert: str = CERT, **kw: object) -> Claim:
    fields: dict[str, object] = {
        "certificate_id": cert,
        "buyer": "Isolation Plus",
        "reference": "lead-post:abc",
        "collected_at_ms": int(time.time() * 1000),
        "collection_point": "https://leadgen.example/isolation?utm=x",
        "collected_by": "LeadGen SA",
        **kw,
    }
    return Claim(**fields)  # type: ignore[arg-type]


@pytest.fixture
def fake():
    with FakeTrustedForm() as server:
        yield server


def verifier(fake: FakeTrustedForm, key: str = KEY) -> TrustedFormVerifier:
    return TrustedFormVerifier(Secret(key.encode()), endpoint=fake.endpoint, timeout_s=5)


def test_a_certificate_naming_the_buyer_is_verified_and_the_call_is_as_documented(fake) -> None:
    fake.answers[TOKEN] = "verified"
    result = verifier(fake).verify(claim())
    assert result is not None and result.status is CertificateStatus.VERIFIED
    (request,) = fake.requests
    assert request["path"] == f"/{TOKEN}"  # the configured endpoint, never the lead's URL
    assert request["headers"]["api-version"] == "4.0"
    assert request["body"]["verify"] == {"advertiser_name": "Isolation Plus"}
    assert request["body"]["retain"] == {"reference": "lead-post:abc", "vendor": "LeadGen SA"}
    assert "match_lead" not in request["body"]  # no address leaves consentinel


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        ("mismatch", CertificateStatus.MISMATCH, "does not name Isolation Plus"),
        ("expired", CertificateStatus.EXPIRED, "expired"),
        ("gone", CertificateStatus.EXPIRED, "HTTP 404"),
    ],
)
def test_mismatch_expired_and_unknown_certificates(fake, answer, status, words) -> None:
    fake.answers[TOKEN] = answer
    result = verifier(fake).verify(claim())
    assert result is not None and result.status is status and words in result.reason


def test_data_that_does_not_match_what_was_witnessed_is_a_mismatch(fake) -> None:
    fake.answers[TOKEN] = "verified"
    other_page = verifier(fake).verify(claim(collection_point="https://elsewhere.example/form"))
    assert other_page is not None and other_page.status is CertificateStatus.MISMATCH
    assert "leadgen.example, not elsewhere.example" in other_page.reason
    a_week_late = verifier(fake).verify(
        claim(collected_at_ms=int(time.time() * 1000) + 7 * 86_400_000)
    )
    assert a_week_late is not None and a_week_late.status is CertificateStatus.MISMATCH
    assert "collection time" in a_week_late.reason


def test_a_busy_issuer_is_retriable_and_a_refused_key_is_fatal(fake) -> None:
    fake.answers[TOKEN] = "busy"
    with pytest.raises(RetriableError, match="HTTP 503"):
        verifier(fake).verify(claim())
    with pytest.raises(FatalConfigError, match="CONSENTINEL_CERTIFICATE_KEY"):
        verifier(fake, key="wrong-key-0000").verify(claim())


def test_no_answer_is_retriable_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(RetriableError, match="did not answer"):
        UrllibClient().post("http://127.0.0.1:9/x", {}, b"{}", 2.0)  # discard port: refused
    assert time.monotonic() - started < 5


def test_only_trustedform_certificates_are_verified_here(fake) -> None:
    assert token_of(CERT) == TOKEN and token_of(TOKEN) == TOKEN
    assert token_of("https://evil.example/" + TOKEN) is None
    assert token_of("http://cert.trustedform.com/" + TOKEN) is None
    assert token_of("3F2504E0-4F89-11D3-9A0C-0305E82C3301") is None  # a LeadiD token
    assert verifier(fake).verify(claim(cert="3F2504E0-4F89-11D3-9A0C-0305E82C3301")) is None
    assert fake.requests == []


def test_the_configuration_is_checked_at_start_with_every_problem() -> None:
    with pytest.raises(FatalConfigError) as caught:
        TrustedFormVerifier(Secret(b""), endpoint="http://cert.example", timeout_s=0)
    assert len(caught.value.problems) == 3
    assert "'***'" in repr(Secret(KEY.encode()))


def test_an_issuers_reason_loses_anything_like_an_address() -> None:
    text = safe_text("lead jane.doe@example.org +33 6 12 34 56 78 refused " + "x" * 500)
    assert "@" not in text and "56 78" not in text and len(text) == 160


def test_the_command_refuses_to_start_without_a_usable_key(monkeypatch) -> None:
    from consentinel.streams.certificates.command import verifier_from

    settings = Settings.from_env({})
    with pytest.raises(FatalConfigError, match="CONSENTINEL_CERTIFICATE_KEY is not set"):
        verifier_from(settings)
    monkeypatch.delenv("TF_KEY_FOR_TEST", raising=False)
    unset = Settings.from_env({"CONSENTINEL_CERTIFICATE_KEY": "env:TF_KEY_FOR_TEST"})
    with pytest.raises(FatalConfigError, match="TF_KEY_FOR_TEST"):
        verifier_from(unset)
    monkeypatch.setenv("TF_KEY_FOR_TEST", KEY)
    built = verifier_from(unset)
    assert built.trustedform is not None and built.leadid is None
    assert built.trustedform.endpoint == "https://cert.trustedform.com"
