"""The certificate service: claimed grants in, verify events out, bounded retries."""

from __future__ import annotations

import dataclasses

from consentinel.streams.certificates.service import CertificateService, Retry
from consentinel.streams.certificates.verifier import Claim, Verification, result_event
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.records import (
    CertificateStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Proof,
)

CERT = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567"
NOW = 1_767_225_600_000


def grant(**kw: object) -> ConsentEvent:
    event = ConsentEvent(
        event_id="lead-post:1",
        occurred_at_ms=NOW - 60_000,
        received_at_ms=NOW - 60_000,
        source="leads",
        processor="lead_post",
        subject_key="d" * 64,
        hint="j***@e***.org",
        controller="isolation-plus",
        action=ConsentAction.GRANT,
        purposes=["marketing.direct"],
        channels=[Channel.EMAIL],
        collected_by="leadgen",
        proof=Proof(method="web_form", collected_at_ms=NOW - 60_000, certificate_id=CERT),
        certificate_status=CertificateStatus.CLAIMED,
    )
    return dataclasses.replace(event, **kw)  # type: ignore[arg-type]


class Scripted:
    """A verifier answering from a script: an exception to raise or a result to give."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.claims: list[Claim] = []

    def verify(self, claim: Claim) -> Verification | None:
        self.claims.append(claim)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[return-value]


RETRY = Retry(attempts=4, base_s=1, cap_s=3)


def service(verifier: Scripted, retry: Retry = RETRY):
    sent: list[ConsentEvent] = []
    slept: list[float] = []
    svc = CertificateService(
        verifier, sent.append, retry=retry, sleep=slept.append, now_ms=lambda: NOW
    )
    return svc, sent, slept


def test_a_claimed_grant_gives_one_verify_event_keyed_like_the_grant() -> None:
    verified = Verification(CertificateStatus.VERIFIED, "names the buyer")
    svc, sent, _ = service(Scripted(verified))
    result = svc.handle(grant())
    assert sent == [result] and result is not None
    assert result.action is ConsentAction.VERIFY
    assert result.certificate_status is CertificateStatus.VERIFIED
    assert (result.subject_key, result.hint, result.controller) == (
        "d" * 64,
        "j***@e***.org",
        "isolation-plus",
    )
    assert result.proof == Proof(certificate_id=CERT) and result.occurred_at_ms == NOW
    assert result.attributes["certificate_reason"] == "names the buyer"


def test_the_result_id_depends_on_the_grant_only_and_repeats_are_not_verified_again() -> None:
    ok = Verification(CertificateStatus.VERIFIED, "ok")
    assert result_event(grant(), ok, 1).event_id == result_event(grant(), ok, 2).event_id
    assert result_event(grant(), ok, 1).event_id != (
        result_event(grant(controller="other"), ok, 1).event_id
    )
    verifier = Scripted(ok)
    svc, sent, _ = service(verifier)
    svc.handle(grant())
    assert svc.handle(grant()) is None and len(sent) == 1 and len(verifier.claims) == 1


def test_other_events_are_not_verified() -> None:
    svc, sent, _ = service(Scripted())
    assert svc.handle(grant(certificate_status=None)) is None  # a CMP's proof id, say
    assert svc.handle(grant(action=ConsentAction.WITHDRAW)) is None
    assert svc.handle(grant(proof=Proof(method="web_form"))) is None
    assert sent == []


def test_transient_faults_are_retried_with_backoff_then_given_up() -> None:
    ok = Verification(CertificateStatus.MISMATCH, "other page")
    svc, sent, slept = service(Scripted(RetriableError("busy", 0.0), RetriableError("x", 0.0), ok))
    result = svc.handle(grant())
    assert result is not None and result.certificate_status is CertificateStatus.MISMATCH
    assert slept == [1.0, 2.0]
    faults = [RetriableError("down", 0.0) for _ in range(4)]
    svc, sent, slept = service(Scripted(*faults))
    assert svc.handle(grant()) is None and sent == []
    assert slept == [1.0, 2.0, 3.0]  # doubling, capped, no sleep after the last attempt
    # a later run verifies it (it was not remembered as done)
    svc.verifier = Scripted(ok)
    assert svc.handle(grant()) is not None


def test_an_issuers_retry_after_is_honoured_within_the_cap() -> None:
    retry = Retry(attempts=2, base_s=1, cap_s=30)
    assert retry.delay(0, hint=12.0) == 12.0 and retry.delay(0, hint=300.0) == 30.0
    assert retry.delay(3) == 8.0


def test_an_unverifiable_certificate_is_left_claimed() -> None:
    svc, sent, _ = service(Scripted(None))
    assert svc.handle(grant()) is None and sent == []
