"""The autouse check the policy's and the checker's tests share: every evaluation (from
the decision memo or not) is checked against the full one, so their scenarios (and the
golden run) are the memo's test cases too. Imported by those two folders' conftests."""

from __future__ import annotations

from typing import Any

import pytest
from consentinel.streams.policy import engine


@pytest.fixture(autouse=True)
def decision_memo_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    memo, full = engine.evaluate, engine._evaluate

    def checked(usage: Any, history: Any, declaration: Any, policy: Any, *, final: bool) -> Any:
        got = memo(usage, history, declaration, policy, final=final)
        assert got == full(usage, history, declaration, policy, final)[0]
        return got

    monkeypatch.setattr(engine, "evaluate", checked)
