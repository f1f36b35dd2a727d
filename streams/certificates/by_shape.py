"""One verifier per issuer, chosen by the certificate's shape (see :class:`ByShape`)."""

from __future__ import annotations

from .leadid import token_of as leadid_token
from .trustedform import token_of as trustedform_token
from .verifier import Claim, Verification, Verifier


class ByShape:
    """The :class:`Verifier` that hands each claim to its issuer's verifier, chosen by the
    certificate's shape: a Jornaya LeadiD token (a 36-character UUID) to ``leadid``, a
    TrustedForm certificate URL (or bare token) to ``trustedform``. An issuer with no
    verifier configured (None), or a certificate of neither shape: None (left claimed)."""

    def __init__(self, trustedform: Verifier | None, leadid: Verifier | None) -> None:
        self.trustedform = trustedform
        self.leadid = leadid

    def verify(self, claim: Claim) -> Verification | None:
        if leadid_token(claim.certificate_id) is not None:
            return self.leadid.verify(claim) if self.leadid is not None else None
        if trustedform_token(claim.certificate_id) is not None:
            return self.trustedform.verify(claim) if self.trustedform is not None else None
        return None
