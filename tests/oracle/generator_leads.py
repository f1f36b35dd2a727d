"""The generator's ``leads`` knob: purchased leads and their certificates (R23).

``with_leads`` adds subjects of their own (the random stories stay as they are): each is a
lead bought by ``isolation-plus`` (declaration ``campaign:lead-buyer``, sourcing
``purchased``), collected by a lead generator that names the buyer, with one to three
e-mails sent to it. Its certificate, one story in ten each way unless said:

- no certificate id on the grant at all (15%);
- claimed and never verified (15%): the hold runs out;
- verified (30%), expired (10%), mismatch (10%), within minutes of the grant;
- verified only after the uses and their hold (10%): a correction;
- mismatch first, then verified again later (5%), or verified then mismatch days later
  (5%): the latest result counts.

Sends happen either within seconds of the grant (held while the certificate is claimed) or
days later. A result is redelivered one time in five (same event id, same content).
Each story depends on the seed only.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from consentinel.streams.events.records import (
    CertificateStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Proof,
    UsageEvent,
    UsageKind,
)

BUYER = "isolation-plus"
LEADGEN = "leadgen-sa"
CAMPAIGN = "lead-buyer"
HOUR = 3_600_000
DAY = 24 * HOUR
T0 = 1_767_225_600_000
SPAN = 30 * DAY
#: (what happens to the certificate, weight)
FATES = (
    ("none", 15),
    ("claimed", 15),
    ("verified", 30),
    ("expired", 10),
    ("mismatch", 10),
    ("late", 10),
    ("mismatch-then-verified", 5),
    ("verified-then-mismatch", 5),
)


def _story(rng: random.Random, seed: int, index: int, wait_ms: int) -> list[Any]:
    """(arrival time, event) pairs of one lead."""
    subject = f"{rng.getrandbits(256):064x}"
    prefix = f"lead{seed}-{index}"
    counter = iter(range(1, 100))

    def next_id(kind: str) -> str:
        return f"{kind}:{prefix}-{next(counter)}"

    fate = rng.choices([f for f, _ in FATES], weights=[w for _, w in FATES])[0]
    t = T0 + rng.randrange(SPAN)
    cert = None if fate == "none" else f"https://cert.trustedform.com/{rng.getrandbits(160):040x}"
    grant = ConsentEvent(
        event_id=next_id("consent"),
        occurred_at_ms=t,
        received_at_ms=t,
        source="gen-leads",
        processor="lead_post",
        subject_key=subject,
        hint="l***@e***.org",
        controller=BUYER,
        action=ConsentAction.GRANT,
        purposes=["marketing.direct"],
        channels=[Channel.EMAIL],
        recipients=[BUYER],
        collected_by=LEADGEN,
        proof=Proof(
            method="web_form",
            collected_at_ms=t,
            collection_point="https://leadgen.example/isolation",
            text_hash="ab" * 32,
            certificate_id=cert,
        ),
        certificate_status=CertificateStatus.CLAIMED if cert else None,
    )
    out: list[Any] = [(t + rng.randrange(1000, 5000), grant)]
    soon = rng.random() < 0.5
    last = t
    for _ in range(rng.randint(1, 3)):
        at = t + (rng.randrange(2000, 60_000) if soon else rng.randrange(HOUR, 5 * DAY))
        last = max(last, at)
        use = UsageEvent(
            event_id=next_id("usage"),
            occurred_at_ms=at,
            received_at_ms=at,
            source="gen-esp",
            processor="generator",
            channel=Channel.EMAIL,
            kind=UsageKind.SEND,
            subject_key=subject,
            hint="l***@e***.org",
            controller=BUYER,
            campaign_id=CAMPAIGN,
        )
        out.append((at + rng.randrange(0, 3000), use))

    def result(status: CertificateStatus, at: int) -> None:
        event = ConsentEvent(
            event_id=next_id("verify"),
            occurred_at_ms=at,
            received_at_ms=at,
            source="certificates",
            processor="trustedform",
            subject_key=subject,
            hint="l***@e***.org",
            controller=BUYER,
            action=ConsentAction.VERIFY,
            proof=Proof(certificate_id=cert),
            certificate_status=status,
            attributes={"certificate_reason": f"generated: {status}"},
        )
        out.append((at + rng.randrange(0, 2000), event))
        if rng.random() < 0.2:
            out.append((at + rng.randrange(2000, HOUR), event))

    quick = t + rng.randrange(10_000, 5 * 60_000)
    after = last + wait_ms + rng.randrange(HOUR, DAY)  # after every hold ran out
    if fate in ("verified", "expired", "mismatch"):
        result(CertificateStatus(fate), quick)
    elif fate == "late":
        result(CertificateStatus.VERIFIED, after)
    elif fate == "mismatch-then-verified":
        result(CertificateStatus.MISMATCH, quick)
        result(CertificateStatus.VERIFIED, after)
    elif fate == "verified-then-mismatch":
        result(CertificateStatus.VERIFIED, quick)
        result(CertificateStatus.MISMATCH, after)
    return out


def with_leads(history: Any, count: int = 60, wait_ms: int = 900_000) -> Any:
    """``history`` (a ``generator.History``) with ``count`` purchased leads added (above);
    ``wait_ms`` is the checker's certificate wait the late results must outlast."""
    from generator import Arrival  # the generator imports this module: import it late

    rng = random.Random(history.seed * 7919 + 23)
    added = [
        Arrival(at, event)
        for index in range(count)
        for at, event in _story(rng, history.seed, index, wait_ms)
    ]
    arrivals = sorted([*history.arrivals, *added], key=lambda a: a.at_ms)
    return dataclasses.replace(history, arrivals=arrivals)
