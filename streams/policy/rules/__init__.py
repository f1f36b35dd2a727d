"""The rules, one module per group; each rule a small pure function with RULE_ID, SOURCE and
SEVERITY (``base.rule``). ``ALL_RULES`` is the order they run in; ``BY_ID`` finds one;
``rules_for`` the ones that can find something for a use of a kind, channel and purpose."""

from __future__ import annotations

from ...events.records import UsageKind
from . import (
    basis,
    config,
    leads,
    notice,
    partners,
    political,
    retention,
    sms,
    telephone,
    transfers,
    withdrawal,
)
from .base import Finding, Rule, RuleContext

ALL_RULES: tuple[Rule, ...] = (
    *basis.RULES,
    *withdrawal.RULES,
    *partners.RULES,
    *transfers.RULES,
    *sms.RULES,
    *telephone.RULES,
    *political.RULES,
    *retention.RULES,
    *notice.RULES,
    *leads.RULES,
    *config.RULES,
)
BY_ID: dict[str, Rule] = {r.RULE_ID: r for r in ALL_RULES}

#: Purposes some rule is limited to; every other purpose (and none) is one case.
_NAMED_PURPOSES = frozenset(p for r in ALL_RULES if r.PURPOSES for p in r.PURPOSES)
_TABLE: dict[tuple[UsageKind, str, str | None], tuple[Rule, ...]] = {}


def rules_for(kind: UsageKind, channel: str, purpose: str | None) -> tuple[Rule, ...]:
    """``ALL_RULES`` (in order) but those declared for other kinds, channels or purposes
    (``base.rule``): they could find nothing. Computed once per combination (kinds and
    channels are enums; purposes no rule names are one case), so the engine does not call
    every rule on every use."""
    key = (kind, channel, purpose if purpose in _NAMED_PURPOSES else None)
    found = _TABLE.get(key)
    if found is None:
        found = _TABLE[key] = tuple(
            r
            for r in ALL_RULES
            if (r.KINDS is None or kind in r.KINDS)
            and (r.CHANNELS is None or channel in r.CHANNELS)
            and (r.PURPOSES is None or (purpose is not None and purpose in r.PURPOSES))
        )
    return found


__all__ = ["ALL_RULES", "BY_ID", "Finding", "Rule", "RuleContext", "rules_for"]
