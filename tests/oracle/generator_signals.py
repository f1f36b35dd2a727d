"""The generator's ``signals`` knob: the inputs of R4, R6, R21 and R22 laid over a history.

A generated history carries no notice version in force, no opt-out means, no GPC signal and
no decodable TC string, so those rules never fire on it. ``with_signals`` adds them without
touching the random stories (the same seed gives the same stories, knob on or off):

- declarations: ``pub-weekly`` names notice ``v8`` in force (R4); ``acme-sms`` states its
  messages lack the opt-out instruction and ``list:news`` that its messages carry both
  headers (R6); ``acme-promo`` is processing for TCF purpose 2 by vendor 42 (R22);
- consent events: every 4th (by a hash of its id) was collected with ``Sec-GPC: 1`` (R21);
  grants proven by double opt-in were given to notice ``v7`` or ``v8`` (R4); a TCF proof
  keeps a TC string that allows purpose 2 for vendor 42, one whose publisher restriction
  forbids it, or one that cannot be decoded (R22);
- sends: SMS report the opt-out instruction seen, missing or nothing; the news list's
  e-mails report ``List-Unsubscribe`` and, three times in four, ``List-Unsubscribe-Post``
  (R6).

Each change depends on the event id only, so a redelivered copy stays identical.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

from consentinel.streams.events.records import (
    Channel,
    ConsentEvent,
    Declaration,
    UsageEvent,
    UsageKind,
)

#: purposes 1-4 and vendors 12, 42, 755 consented; no publisher restriction
TC_PLAIN = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAAA"
#: the same with a publisher restriction "not allowed" on purpose 2 for vendor 42
TC_RESTRICTED = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAIQACACoAAA"
TC_BROKEN = "CPzHq4APzHq4AAHABBENAx"

DECLARED: dict[str, dict[str, Any]] = {
    "campaign:pub-weekly": {"notice_version": "v8"},
    "campaign:acme-sms": {"opt_out_in_message": False},
    "list:news": {"opt_out_in_message": True},
    "campaign:acme-promo": {"tcf_purpose": 2, "tcf_vendor": 42},
}


def _n(event_id: str) -> int:
    return zlib.crc32(event_id.encode())


def _declaration(d: Declaration) -> Declaration:
    return dataclasses.replace(d, **DECLARED.get(d.decl_id, {}))


def _consent(e: ConsentEvent) -> ConsentEvent:
    n = _n(e.event_id)
    proof = e.proof
    if proof is not None and proof.notice_version is not None:
        proof = dataclasses.replace(proof, notice_version="v8" if n % 2 else "v7")
    if proof is not None and proof.method == "tcf":
        receipt = (TC_PLAIN, TC_RESTRICTED, TC_BROKEN)[n % 3]
        proof = dataclasses.replace(proof, vendor_receipt=receipt)
    return dataclasses.replace(e, proof=proof, gpc=True if n % 4 == 0 else None)


def _usage(u: UsageEvent) -> UsageEvent:
    if u.kind is not UsageKind.SEND:
        return u
    n = _n(u.event_id)
    if u.channel is Channel.SMS:
        return dataclasses.replace(u, opt_out_instruction=(False, True, None)[n % 3])
    if u.list_id == "news":
        return dataclasses.replace(u, list_unsubscribe=True, list_unsubscribe_post=n % 4 != 0)
    return u


def with_signals(history: Any) -> Any:
    """``history`` (a ``generator.History``) with the signals above."""
    arrivals = [
        dataclasses.replace(
            a,
            event=_consent(a.event) if isinstance(a.event, ConsentEvent) else _usage(a.event),
        )
        for a in history.arrivals
    ]
    return dataclasses.replace(
        history,
        declarations=tuple(_declaration(d) for d in history.declarations),
        arrivals=arrivals,
    )
