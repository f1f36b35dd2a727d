"""The oracle's reading of R23 (purchased leads and their certificates).

Independent of ``consentinel.streams.policy`` (see ``oracle``): straight from rules.md ("a
purchased lead with no valid, claimed certificate is held; so is one whose data does not
match what was witnessed, or whose disclosure does not cover the buyer") and the brief of
issue #13, read as the final verdict once every result has arrived:

- a use draws on **purchased leads** when its declaration says ``sourcing: purchased``; a
  list transfer is not judged here;
- the lead's **certificate** is the ``certificate_id`` of the proof of the grant the use
  rests on; no grant is not R23's question;
- its **result** for the buyer is the latest ``verify`` event (event time, then event id)
  for that certificate and the use's controller, not one at or before that controller's
  erasure of the person;
- R23 holds unless that result says ``verified``: no certificate, a certificate never
  verified (the hold runs out), expired, or mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable

from consentinel.streams.events.records import (
    CertificateStatus,
    ConsentAction,
    ConsentEvent,
    Declaration,
    Sourcing,
    UsageEvent,
    UsageKind,
)

#: (subject, controller, certificate id) -> every verify event about it
Results = dict[tuple[str, str, str], list[ConsentEvent]]


def results(events: Iterable[ConsentEvent]) -> Results:
    out: Results = {}
    for e in events:
        if e.action is ConsentAction.VERIFY and e.proof and e.proof.certificate_id:
            out.setdefault((e.subject_key, e.controller, e.proof.certificate_id), []).append(e)
    return out


def r23(
    u: UsageEvent,
    decl: Declaration | None,
    controller: str,
    grant: ConsentEvent | None,
    known: Results,
    erased_at: int | None,
) -> bool:
    """Whether R23 holds against ``u`` (``grant``: what the use rests on, if anything)."""
    if decl is None or decl.sourcing is not Sourcing.PURCHASED:
        return False
    if u.kind is UsageKind.LIST_TRANSFER or grant is None:
        return False
    cert = grant.proof.certificate_id if grant.proof else None
    if not cert:
        return True
    found = [
        e
        for e in known.get((u.subject_key, controller, cert), [])
        if e.certificate_status not in (None, CertificateStatus.CLAIMED)
        and (erased_at is None or e.occurred_at_ms > erased_at)
    ]
    if not found:
        return True
    latest = max(found, key=lambda e: (e.occurred_at_ms, e.event_id))
    return latest.certificate_status is not CertificateStatus.VERIFIED
