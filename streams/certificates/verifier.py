"""The verifier contract (R23): a claimed lead certificate in, its status out.

A purchased lead's grant carries ``certificate_status: claimed`` and the certificate id in
``proof.certificate_id`` (``lead_post`` stores the TrustedForm certificate URL, else the
LeadiD token; ``by_shape.ByShape`` hands each to the verifier of its issuer). A
:class:`Verifier` asks the certificate's issuer whether the certificate
exists, is still valid, matches what the lead claims (when and where it was collected) and
shows a disclosure that names the buyer; :func:`result_event` makes the answer a ``verify``
consent event, keyed and pseudonymized like the grant (its subject key and hint), with an
event id that depends on the grant only: verifying the same grant twice gives the same id.

Nothing here sees an address: the claim is built from the grant, which has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from consentinel.streams.events import ids
from consentinel.streams.events.records import (
    CertificateStatus,
    ConsentAction,
    ConsentEvent,
    Proof,
)

SOURCE = "consentinel-certificates"


@dataclass(frozen=True, slots=True)
class Claim:
    """What a lead claims about its certificate, from its grant."""

    certificate_id: str
    buyer: str  # the controller the grant is for: the disclosure must name it
    reference: str  # the grant's event id (kept by the issuer with the certificate)
    collected_at_ms: int | None = None
    collection_point: str | None = None
    collected_by: str | None = None

    @classmethod
    def of(cls, grant: ConsentEvent) -> Claim | None:
        """The claim of a grant with a claimed certificate; None for any other event."""
        if grant.action is not ConsentAction.GRANT:
            return None
        if grant.certificate_status is not CertificateStatus.CLAIMED:
            return None
        proof = grant.proof
        if proof is None or not proof.certificate_id:
            return None
        return cls(
            certificate_id=proof.certificate_id,
            buyer=grant.controller,
            reference=grant.event_id,
            collected_at_ms=proof.collected_at_ms,
            collection_point=proof.collection_point,
            collected_by=grant.collected_by,
        )


@dataclass(frozen=True, slots=True)
class Verification:
    """A verifier's answer: verified, expired or mismatch, with a reason for people."""

    status: CertificateStatus
    reason: str

    def __post_init__(self) -> None:
        if self.status is CertificateStatus.CLAIMED:
            raise ValueError("a verification says verified, expired or mismatch, not claimed")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased


class HttpClient(Protocol):
    """One HTTP call (POST for TrustedForm, GET for LeadiD). Blocks for at most
    ``timeout_s`` (connect and read). Returns every HTTP answer, error statuses included;
    raises ``RetriableError`` when there is none (refused, reset, timed out)."""

    def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout_s: float
    ) -> HttpResponse: ...

    def get(self, url: str, headers: Mapping[str, str], timeout_s: float) -> HttpResponse: ...


class Verifier(Protocol):
    """Verifies one claimed certificate.

    Blocks on at most one call to the issuer (bounded by the verifier's timeout). Returns
    None when this verifier cannot verify that kind of certificate (it stays claimed, and
    the use's hold runs out). Raises ``RetriableError`` for a transient fault (timeout,
    429, 5xx: the caller retries with backoff) and ``FatalConfigError`` when the issuer
    refuses the credentials (nothing else can succeed until they are fixed).
    """

    def verify(self, claim: Claim) -> Verification | None: ...


def result_event(grant: ConsentEvent, verification: Verification, at_ms: int) -> ConsentEvent:
    """The ``verify`` event for ``grant``: same subject key, hint and controller; the
    certificate id in its proof; its id from the grant's id (idempotent)."""
    cert = grant.proof.certificate_id if grant.proof is not None else None
    if not cert:
        raise ValueError(f"grant {grant.event_id} names no certificate")
    return ConsentEvent(
        event_id=ids.event_id(SOURCE, grant.event_id, grant.controller, cert),
        occurred_at_ms=at_ms,
        received_at_ms=at_ms,
        source=SOURCE,
        processor="certificates",
        subject_key=grant.subject_key,
        hint=grant.hint,
        controller=grant.controller,
        action=ConsentAction.VERIFY,
        proof=Proof(certificate_id=cert),
        certificate_status=verification.status,
        attributes={"certificate_reason": verification.reason, "grant_event_id": grant.event_id},
    )
