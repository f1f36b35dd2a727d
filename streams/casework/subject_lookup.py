"""``consentinel subject show|erase ADDRESS``: what consentinel holds about one data subject,
and its erasure.

``show`` prints the consent history, recent uses, held uses (pending their consent, or
alerted and open to correction), alerts and incidents of the address's subject; ``erase``
carries out an erasure request (``subject_erase``). The work lives in ``alerts.subjects``,
shared with the console's lookup. The raw address is never logged or written anywhere: the
output echoes the operator's own input once, and otherwise shows masked hints. Each act is
first written to the audit topic (who, when, which subject key); one that cannot be audited
is not done.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from consentinel.streams.alerts.console_evidence import iso, subject_ref
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.alerts.subjects import SubjectFile, audit, hint, look_up, subject_key
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.settings import Settings

from . import subject_erase

__all__ = ["SubjectFile", "audit", "look_up", "main", "render", "subject_key"]


def render(found: SubjectFile, echo: str, out: Callable[[str], Any]) -> None:
    out(f"subject {echo!r} = {subject_ref(found.subject_key)}")
    out(f"consent history ({len(found.consent)}):")
    for c in found.consent:
        proof = c.proof.method if c.proof else "no proof"
        out(f"  {iso(c.occurred_at_ms)}  {c.controller}  {c.action}  purposes={c.purposes or 'all'}"
            f"  via {c.source} ({proof})  {c.hint}")  # fmt: skip
    out(f"recent uses ({len(found.uses)}):")
    for u in found.uses:
        out(f"  {iso(u.occurred_at_ms)}  {u.controller}  {u.kind}  campaign={u.campaign_id}"
            f"  via {u.source}  {u.hint}")  # fmt: skip
    out(f"held uses ({len(found.holds)}):")
    for h in found.holds:
        u = h.usage
        why = (
            f"waiting for consent until {iso(h.until_ms)}"
            if h.state == "pending"
            else "alerted: " + ", ".join(f"{r} {s}" for r, s in sorted(h.rules.items()))
        )
        out(f"  {iso(u.occurred_at_ms)}  {u.controller}  {u.kind}  campaign={u.campaign_id}"
            f"  {h.state}  {why}")  # fmt: skip
    out(f"alerts ({len(found.alerts)}):")
    for a in found.alerts:
        out(f"  {iso(a.detected_at_ms)}  {a.rule_id}  {a.status}  {a.controller}  {a.summary}")
    out(f"incidents ({len(found.incidents)}):")
    for iid, status in sorted(found.incidents.items()):
        out(f"  {iid}  {status}")


def _parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="consentinel subject", description=doc)
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="consent history, uses, holds, alerts, incidents")
    show.add_argument("address", help="the e-mail address or phone number asked about")
    erase = sub.add_parser(
        "erase", help="erase the subject: ledger erasure events, evidence redacted"
    )
    erase.add_argument("address", help="the e-mail address or phone number to erase")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        key = subject_key(settings, args.address)
    except InvalidInput as exc:
        print(f"consentinel subject: {exc}", file=sys.stderr)
        return 2
    actor = getpass.getuser()
    try:
        if args.action == "erase":
            with IncidentStore.open(settings) as store:
                found = look_up(settings, key, store)
            masked = hint(settings, args.address)
            done = subject_erase.erase(settings, key, masked, found.controllers, actor)
            print(f"subject {subject_ref(key)} erased at {iso(done.audit.at_ms)} "
                  f"(audit record {done.audit.event_id})")  # fmt: skip
            none = "no controller (nothing of this subject in consent, uses or alerts)"
            print("erasure events for: " + (", ".join(done.controllers) or none))
            print("the alert router redacts its alerts and incident evidence as it reads the "
                  "audit topic (the fact and the time are kept)")  # fmt: skip
            return 0
        audit(settings, key, actor, "cli")
        with IncidentStore.open(settings) as store:
            found = look_up(settings, key, store)
    except RetriableError as exc:
        print(f"consentinel subject {args.action}: {exc}", file=sys.stderr)
        return 69
    render(found, args.address, print)
    return 0
