"""The Jornaya LeadiD verifier against a real local HTTP server (``fake_leadid``), and the
choice of verifier by the certificate's shape."""

from __future__ import annotations

import pytest
from consentinel.streams.certificates.by_shape import ByShape
from consentinel.streams.certificates.leadid import LeadidVerifier, token_of
from consentinel.streams.certificates.trustedform import TrustedFormVerifier
from consentinel.streams.certificates.verifier import Claim, HttpResponse, Verification
from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.records import CertificateStatus
from consentinel.streams.events.settings import Secret
from fake_leadid import ACCOUNT, KEY, FakeLeadid
from fake_trustedform import KEY as TF_KEY
from fake_trustedform import FakeTrustedForm

# the LeadiD token of connectors.md §3.5's lead example
TOKEN = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
TF_CERT = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567"


def claim(cert: str = TOKEN) -> Claim:
    return Claim(certificate_id=cert, buyer="Isolation Plus", reference="lead-post:abc")


@pytest.fixture
def fake():
    with FakeLeadid() as server:
        yield server


def verifier(fake: FakeLeadid, **kw: object) -> LeadidVerifier:
    options: dict[str, object] = {"endpoint": fake.endpoint, "timeout_s": 5.0, **kw}
    return LeadidVerifier(ACCOUNT, **options)  # type: ignore[arg-type]


def test_an_authentic_token_is_verified_and_the_call_is_the_documented_one(fake) -> None:
    fake.answers[TOKEN] = "authentic"
    result = verifier(fake).verify(claim())
    assert result == Verification(CertificateStatus.VERIFIED, "LeadiD: the token is authentic")
    (request,) = fake.requests
    assert request["path"] == "/Authenticate"
    assert request["query"] == {"lac": ACCOUNT, "id": TOKEN}
    assert "authorization" not in request["headers"]  # no key configured: none sent


def test_a_token_that_is_not_authentic_is_a_mismatch_with_the_reason(fake) -> None:
    fake.answers[TOKEN] = "not_authentic"
    result = verifier(fake).verify(claim())
    assert result is not None and result.status is CertificateStatus.MISMATCH
    assert result.reason == "LeadiD: the token is not authentic (reason 1)"


def test_a_token_past_its_query_limit_says_so(fake) -> None:
    fake.answers[TOKEN] = "limit"
    result = verifier(fake).verify(claim())
    assert result is not None and result.status is CertificateStatus.MISMATCH
    assert "query limit is reached" in result.reason and "100" in result.reason


def test_a_token_leadid_no_longer_holds_has_expired(fake) -> None:
    fake.answers[TOKEN] = "gone"
    result = verifier(fake).verify(claim())
    assert result is not None and result.status is CertificateStatus.EXPIRED


def test_busy_is_retriable_then_answers(fake) -> None:
    fake.answers[TOKEN] = "busy"
    v = verifier(fake)
    for _ in range(fake.busy_times):
        with pytest.raises(RetriableError, match="HTTP 503"):
            v.verify(claim())
    result = v.verify(claim())
    assert result is not None and result.status is CertificateStatus.VERIFIED


def test_the_bearer_key_is_sent_when_configured_and_a_refusal_is_fatal() -> None:
    with FakeLeadid(key=KEY) as fake:
        fake.answers[TOKEN] = "authentic"
        ok = verifier(fake, key=Secret(KEY.encode())).verify(claim())
        assert ok is not None and ok.status is CertificateStatus.VERIFIED
        assert fake.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
        with pytest.raises(FatalConfigError, match="HTTP 401"):
            verifier(fake).verify(claim())  # no key
    with FakeLeadid() as other:
        wrong = LeadidVerifier("OTHER-LAC", endpoint=other.endpoint, timeout_s=5.0)
        with pytest.raises(FatalConfigError, match="HTTP 403"):
            wrong.verify(claim())


class _Canned:
    def __init__(self, answer: HttpResponse) -> None:
        self.answer = answer

    def get(self, url: str, headers: object, timeout_s: float) -> HttpResponse:
        return self.answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (HttpResponse(200, b"<xml/>"), "not JSON"),
        (HttpResponse(200, b'{"audit": {}}'), "no audit.authentic"),
        (HttpResponse(429, b"", {"retry-after": "7"}), "HTTP 429"),
    ],
)
def test_unreadable_or_throttled_answers_are_retried(answer: HttpResponse, expected: str) -> None:
    v = LeadidVerifier(ACCOUNT, http=_Canned(answer))
    with pytest.raises(RetriableError, match=expected) as caught:
        v.verify(claim())
    assert caught.value.retry_after == (7.0 if answer.status == 429 else 0.0)


def test_authentic_written_as_text_or_boolean_is_read() -> None:
    for body in (b'{"audit": {"authentic": "1"}}', b'{"audit": {"authentic": true}}'):
        result = LeadidVerifier(ACCOUNT, http=_Canned(HttpResponse(200, body))).verify(claim())
        assert result is not None and result.status is CertificateStatus.VERIFIED
    body = b'{"audit": {"authentic": "0", "reason": "2"}}'
    result = LeadidVerifier(ACCOUNT, http=_Canned(HttpResponse(200, body))).verify(claim())
    assert result is not None and "query limit" in result.reason


def test_another_client_error_is_a_mismatch() -> None:
    v = LeadidVerifier(ACCOUNT, http=_Canned(HttpResponse(400, b"{}")))
    result = v.verify(claim())
    assert result is not None and result.status is CertificateStatus.MISMATCH


def test_only_leadid_tokens_are_verified_here(fake) -> None:
    assert token_of(TOKEN) == TOKEN and token_of(f"  {TOKEN.lower()} ") == TOKEN.lower()
    assert token_of(TF_CERT) is None
    assert token_of("3F2504E0-4F89-11D3-9A0C-0305E82C330") is None  # 35 characters
    assert token_of("3F2504E0_4F89_11D3_9A0C_0305E82C3301") is None
    assert verifier(fake).verify(claim(TF_CERT)) is None
    assert fake.requests == []


def test_the_configuration_is_checked_at_start_with_every_problem() -> None:
    with pytest.raises(FatalConfigError) as caught:
        LeadidVerifier("lac with spaces", key=Secret(b""), endpoint="http://x.example", timeout_s=0)
    assert len(caught.value.problems) == 4


def test_each_certificate_goes_to_its_issuers_verifier(fake) -> None:
    with FakeTrustedForm() as tf:
        tf.default = "verified"
        fake.answers[TOKEN] = "authentic"
        both = ByShape(
            TrustedFormVerifier(Secret(TF_KEY.encode()), endpoint=tf.endpoint, timeout_s=5),
            verifier(fake),
        )
        for cert in (TOKEN, TF_CERT):
            result = both.verify(claim(cert))
            assert result is not None and result.status is CertificateStatus.VERIFIED
        assert len(fake.requests) == 1 and len(tf.requests) == 1
        assert tf.requests[0]["path"] == "/0123456789abcdef0123456789abcdef01234567"
        # an issuer with no verifier configured, or an id of neither shape: left claimed
        assert ByShape(None, verifier(fake)).verify(claim(TF_CERT)) is None
        assert ByShape(both.trustedform, None).verify(claim(TOKEN)) is None
        assert both.verify(claim("https://evil.example/x")) is None
        assert len(fake.requests) == 1 and len(tf.requests) == 1
