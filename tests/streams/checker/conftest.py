"""Shared by the checker's tests."""

from __future__ import annotations

from memo_check import decision_memo_checked

__all__ = ["decision_memo_checked"]
