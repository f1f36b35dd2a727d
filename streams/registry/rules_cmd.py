"""``consentinel rules list``: every rule with its id, severity, source and the events it
needs (usage kinds, consent events, declarations)."""

from __future__ import annotations

import argparse

from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.policy.rules import ALL_RULES

_MSG = "usage send/deliver"
_ANY_USE = "any usage"
#: What each rule reads, by rule id (a test checks every rule has an entry).
NEEDS: dict[str, str] = {
    "R1": f"{_MSG}, consent, declaration",
    "R2": f"{_ANY_USE}, consent, declaration",
    "R3": f"{_ANY_USE}, consent (proof)",
    "R4": f"{_ANY_USE}, consent (proof.notice_version), declaration (notice_version)",
    "R5": f"{_ANY_USE}, consent (withdraw, erase)",
    "R6": "usage send on sms/email (opt_out_instruction, list_unsubscribe[_post]), "
    "declaration (opt_out_in_message)",
    "R8": "usage send/deliver on sms (sender_type), declaration",
    "R9": "usage send on sms/rcs, declaration",
    "R10": "usage call (tz), consent (proof), declaration",
    "R11": "usage call (earlier calls), consent (refuse/withdraw on phone), declaration",
    "R12": "usage call, consent (proof), declaration (bloctel_cleaned_at_ms, sector)",
    "R13": f"{_MSG}, consent (recipients), declaration",
    "R14": f"{_ANY_USE}, consent of the suppliers, declaration (acquired_from)",
    "R15": "usage send (first message; source_named, list_unsubscribe, opt_out_instruction), "
    "declaration (sourcing, acquired_from, names_source, opt_out_in_message)",
    "R16": "usage list transfer (transfer_from), consent of the sender and of its "
    "collectors (proof), declaration (acquired_from)",
    "R17": f"{_MSG}, consent, declaration (sourcing)",
    "R18": "usage send (first message; source_named, list_unsubscribe, opt_out_instruction), "
    "declaration (purpose, names_source, opt_out_in_message)",
    "R19": f"{_ANY_USE} (source_category), declaration (purpose, source_categories)",
    "R20": "usage click/reply, consent, declaration",
    "R21": "usage list transfer/lead delivery or sale purpose, consent (gpc)",
    "R22": f"{_ANY_USE}, consent (TCF string), declaration (tcf_purpose, tcf_vendor)",
    "R23": f"{_ANY_USE} but transfers, consent (proof.certificate_id, certificate_status, "
    "verify results), declaration (sourcing: purchased)",
    "CFG-UNDECLARED": _ANY_USE,
    "CFG-UNMAPPED": f"{_ANY_USE}, consent (unmapped purposes)",
}


def rows() -> list[tuple[str, str, str, str]]:
    missing = [r.RULE_ID for r in ALL_RULES if r.RULE_ID not in NEEDS]
    if missing:
        raise FatalConfigError(
            [f"{rid}: no entry in NEEDS" for rid in missing], "consentinel rules list"
        )
    return [(r.RULE_ID, str(r.SEVERITY), r.SOURCE, NEEDS[r.RULE_ID]) for r in ALL_RULES]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="consentinel rules", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="print every rule")
    parser.parse_args(argv)
    table = [("RULE", "SEVERITY", "SOURCE", "NEEDS"), *rows()]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3])
    return 0
