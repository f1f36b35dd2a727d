"""``consentinel rules list``."""

from __future__ import annotations

import pytest
from consentinel.streams.policy.rules import ALL_RULES
from consentinel.streams.registry import rules_cmd


def test_rules_list_prints_every_rule_with_severity_source_and_needs(capsys) -> None:
    assert rules_cmd.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["RULE", "SEVERITY", "SOURCE", "NEEDS"]
    assert [ln.split()[0] for ln in lines[1:]] == [r.RULE_ID for r in ALL_RULES]
    r10 = next(ln for ln in lines if ln.startswith("R10 "))
    assert "critical" in r10 and "[FR6]" in r10 and "usage call" in r10


def test_rules_list_needs_an_action() -> None:
    with pytest.raises(SystemExit):
        rules_cmd.main([])
