"""The demo's stand-in certificate issuer (DEMO ONLY) speaks what the real verifiers ask:
the TrustedForm and LeadiD verifiers of the certificate service get answers from it."""

from __future__ import annotations

import time

import pytest
from consentinel.connectors.demo.issuer import KEY_FILE, DemoIssuer
from consentinel.streams.certificates.by_shape import ByShape
from consentinel.streams.certificates.leadid import LeadidVerifier
from consentinel.streams.certificates.trustedform import TrustedFormVerifier
from consentinel.streams.certificates.verifier import Claim
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import CertificateStatus
from consentinel.streams.events.settings import Secret

# as the demo's leads carry them (connectors/demo/scenario.py)
CERT = "https://cert.trustedform.com/" + "3c" * 20
LEADID = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"


def claim(cert: str) -> Claim:
    return Claim(
        certificate_id=cert,
        buyer="energie-verte",
        reference="lead-post:demo",
        collected_at_ms=int(time.time() * 1000) - 3_600_000,
        collection_point="https://jeux.example.net/grand-concours-2027?sub=fb12",
    )


def test_every_demo_certificate_is_verified_with_the_demo_key() -> None:
    key = KEY_FILE.read_bytes().strip()
    with DemoIssuer(key) as issuer:
        verifier = ByShape(
            TrustedFormVerifier(Secret(key), endpoint=issuer.endpoint, timeout_s=5),
            LeadidVerifier("DEMO", endpoint=issuer.endpoint, timeout_s=5),
        )
        for cert in (CERT, LEADID):
            result = verifier.verify(claim(cert))
            assert result is not None and result.status is CertificateStatus.VERIFIED, result
        assert issuer.answered == 2


def test_a_wrong_key_is_refused() -> None:
    with DemoIssuer(b"the-demo-key-0123456789") as issuer:
        wrong = TrustedFormVerifier(Secret(b"another-key-0123456789"), endpoint=issuer.endpoint)
        with pytest.raises(FatalConfigError, match="refused the key"):
            wrong.verify(claim(CERT))
        assert issuer.answered == 0
