"""One subject's call records towards one controller, for R11 (attempts and refusals).

R11 (rules.md, [FR6]) needs two facts at the time of a sales call: how many call attempts
the same professional made to the person in the 30 days before it, and when the person
last refused during a call. Neither is in the consent versions (those fold and supersede
one another), so each controller's line of the history keeps a :class:`CallLog`:

- **attempts**: ``(occurred_at_ms, event_id)`` of every sales call noted
  (``ConsentHistory.note_use``), answered or not; a redelivery (same event id) counts once.
- **refusals**: ``(occurred_at_ms, event_id)`` of every objection on the phone channel: a
  consent event ``refuse`` or ``withdraw`` whose channels name ``phone`` explicitly (what a
  voice connector reports when the person refuses during a call). An all-channel
  withdrawal (a CMP's "unsubscribe from everything") is not a refusal during a call.

Bounded: only the last ``WINDOW_MS`` (30 days) of attempts and ``REFUSAL_MS`` (60 days)
after a refusal matter, so records older than that plus ``LATE_MS`` (how late a record may
still arrive and be counted) before the newest one are dropped, and at most
``MAX_ATTEMPTS`` / ``MAX_REFUSALS`` are kept. A record that arrives later than that is not
counted (``note_*`` returns False).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000
#: R11: more than 4 attempts within 30 calendar days is a violation.
WINDOW_MS = 30 * DAY_MS
MAX_ATTEMPTS_IN_WINDOW = 4
#: R11: no call within 60 days after a refusal during a call.
REFUSAL_MS = 60 * DAY_MS
#: How late (in event time, behind the newest record) a call or refusal may arrive.
LATE_MS = 30 * DAY_MS
MAX_ATTEMPTS = 32
MAX_REFUSALS = 8

Record = tuple[int, str]


@dataclass(frozen=True, slots=True)
class CallsAt:
    """What R11 reads for one call: the earlier attempts in its 30-day window (other
    event ids, at or before it) and the latest refusal strictly before it, if any."""

    attempts_before: tuple[Record, ...] = ()
    last_refusal: Record | None = None

    @property
    def attempt_number(self) -> int:
        """This call's rank in its window: 1 + the earlier attempts."""
        return len(self.attempts_before) + 1


def _insert(records: list[Record], record: Record, horizon_ms: int, cap: int) -> bool:
    if record in records:
        return False
    newest = max(record[0], records[-1][0]) if records else record[0]
    if record[0] <= newest - horizon_ms:
        return False
    if len(records) >= cap and record < records[0]:
        return False
    bisect.insort(records, record)
    keep = [r for r in records if r[0] > newest - horizon_ms][-cap:]
    records[:] = keep
    return True


@dataclass(slots=True)
class CallLog:
    """Attempts and refusals, each sorted by (time, event id)."""

    attempts: list[Record] = field(default_factory=list)
    refusals: list[Record] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.attempts or self.refusals)

    def note_attempt(self, at_ms: int, event_id: str) -> bool:
        """Record a sales call; False for a repeat or one too old to matter."""
        return _insert(self.attempts, (at_ms, event_id), WINDOW_MS + LATE_MS, MAX_ATTEMPTS)

    def note_refusal(self, at_ms: int, event_id: str) -> bool:
        """Record a refusal during a call; False for a repeat or one too old to matter."""
        return _insert(self.refusals, (at_ms, event_id), REFUSAL_MS + LATE_MS, MAX_REFUSALS)

    def forget_through(self, t_ms: int) -> None:
        """An erasure at ``t_ms``: drop what happened at or before it."""
        self.attempts = [r for r in self.attempts if r[0] > t_ms]
        self.refusals = [r for r in self.refusals if r[0] > t_ms]

    def at(self, t_ms: int, event_id: str) -> CallsAt:
        """What R11 reads for the call ``event_id`` at ``t_ms`` (itself excluded)."""
        attempts = tuple(
            r for r in self.attempts if t_ms - WINDOW_MS < r[0] <= t_ms and r[1] != event_id
        )
        refusals = [r for r in self.refusals if r[0] < t_ms]
        return CallsAt(attempts, refusals[-1] if refusals else None)

    # -- wire format (inside ConsentHistory.to_obj, key "cl") ------------------------------

    def to_obj(self) -> dict[str, Any]:
        """``{"a": [[t, id], ...], "r": [[t, id], ...]}``, empty parts omitted."""
        obj: dict[str, Any] = {}
        if self.attempts:
            obj["a"] = [[t, i] for t, i in self.attempts]
        if self.refusals:
            obj["r"] = [[t, i] for t, i in self.refusals]
        return obj

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> CallLog:
        return cls(
            attempts=sorted((int(t), str(i)) for t, i in obj.get("a", ())),
            refusals=sorted((int(t), str(i)) for t, i in obj.get("r", ())),
        )
