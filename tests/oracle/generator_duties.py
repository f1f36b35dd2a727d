"""The generator's ``duties`` knob: the inputs of R15, R16, R18 and R19 laid over a history.

A plain history already exercises R16 (its list transfers name the publisher as supplier);
what it lacks is a notice stated or seen in messages and a file category. ``with_duties``
adds them without touching the random stories (the same seed gives the same stories):

- declarations: ``acme-promo`` (addresses from the publisher's partners) says its messages
  name the source; ``pol-rented`` says they do not, and ``acme-promo`` that they carry an
  opt-out;
- sends: ``acme-promo`` e-mails report the source named, not named or nothing, and one in
  five no ``List-Unsubscribe``; ``pol-rented`` e-mails report the source named one time in
  three, and one in four draws on a ``payroll`` file (R19);
- list transfers: one in three names the advertiser as its sender (``transfer_from``),
  whose partner consent is then the upstream proof R16 looks for.

Each change depends on the event id only, so a redelivered copy stays identical.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

from consentinel.streams.events.records import Declaration, UsageEvent, UsageKind

DECLARED: dict[str, dict[str, Any]] = {
    "campaign:acme-promo": {"names_source": True, "opt_out_in_message": True},
    "campaign:pol-rented": {"names_source": False},
}


def _n(event_id: str) -> int:
    return zlib.crc32(event_id.encode() + b"duties")


def _declaration(d: Declaration) -> Declaration:
    return dataclasses.replace(d, **DECLARED.get(d.decl_id, {}))


def _usage(u: UsageEvent) -> UsageEvent:
    n = _n(u.event_id)
    if u.kind is UsageKind.LIST_TRANSFER and n % 3 == 0:
        return dataclasses.replace(u, attributes={**u.attributes, "transfer_from": "acme"})
    if u.kind is not UsageKind.SEND:
        return u
    if u.campaign_id == "acme-promo":
        return dataclasses.replace(
            u,
            source_named=(False, True, None)[n % 3],
            list_unsubscribe=False if n % 5 == 0 else None,
        )
    if u.campaign_id == "pol-rented":
        attributes = {**u.attributes, "source_category": "payroll"} if n % 4 == 0 else u.attributes
        return dataclasses.replace(u, source_named=n % 3 == 0 or None, attributes=attributes)
    return u


def with_duties(history: Any) -> Any:
    """``history`` (a ``generator.History``) with the duties' inputs above."""
    arrivals = [
        dataclasses.replace(a, event=_usage(a.event)) if isinstance(a.event, UsageEvent) else a
        for a in history.arrivals
    ]
    return dataclasses.replace(
        history,
        declarations=tuple(_declaration(d) for d in history.declarations),
        arrivals=arrivals,
    )
