"""Shared by the checker's tests."""

from __future__ import annotations

from typing import Any

import pytest
from consentinel.streams.policy import engine


@pytest.fixture(autouse=True)
def _decision_memo_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every evaluation (from the decision memo or not) is checked against the full one:
    the checker's scenarios (and the golden run) are the memo's test cases too."""
    memo, full = engine.evaluate, engine._evaluate

    def checked(usage: Any, history: Any, declaration: Any, policy: Any, *, final: bool) -> Any:
        got = memo(usage, history, declaration, policy, final=final)
        assert got == full(usage, history, declaration, policy, final)[0]
        return got

    monkeypatch.setattr(engine, "evaluate", checked)
