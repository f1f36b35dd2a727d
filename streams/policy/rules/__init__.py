"""The rules, one module per group; each rule a small pure function with RULE_ID, SOURCE and
SEVERITY (``base.rule``). ``ALL_RULES`` is the order they run in; ``BY_ID`` finds one."""

from __future__ import annotations

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

__all__ = ["ALL_RULES", "BY_ID", "Finding", "Rule", "RuleContext"]
