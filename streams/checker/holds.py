"""What the checker holds per subject besides the consent ledger: pending and alerted uses.

- ``pending``: uses judged PENDING (no consent yet, or undeclared), each with the deadline
  (receipt + grace period) after which it is decided as it stands.
- ``alerted``: uses that raised alerts, with the evaluation behind them, for the
  correction window: a consent that arrives later and changes that evaluation resolves
  (or raises) alerts under the same alert ids. Never a silent change.

- ``kept``: uses decided ALLOWED, kept compactly for the correction window too: a late
  withdrawal, objection or erasure re-judges them (and raises the alert they would have
  raised), and a redelivered use is recognized (each usage event id gets one verdict).

Pending and alerted uses live in one value per subject (one changelog record), so a crash
can never keep a use's removal from ``pending`` while losing its entry in ``alerted``;
kept uses are stored beside them under their own key (``kept_key``): ``bool(holds)``
says whether uses are HELD (pending or alerted), which allowed uses are not. All are
bounded: past ``MAX_PENDING`` the oldest pending use is decided at once; past
``MAX_ALERTED`` / ``MAX_KEPT`` or ``ALERTED_WINDOW_MS`` the oldest entry is forgotten
(its alerts stay as they are; a redelivery of a forgotten allowed use is judged again and
gives the same verdict).

Cost of a kept use (measured on the bench's sends, 64 kept): about 490 bytes encoded in
the holds table (and its changelog), about 1.4 KiB decoded in the processor's cache; one
per allowed use of the last 7 days (``ALERTED_WINDOW_MS``), at most 64 per subject.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import AlertStatus, Declaration, UsageEvent
from consentinel.streams.policy.engine import Evaluation

log = logging.getLogger("consentinel.checker")

MAX_PENDING = 256
MAX_ALERTED = 64
MAX_KEPT = 64
ALERTED_WINDOW_MS = 7 * 86_400_000
FORMAT = 1


@dataclass
class Held:
    """A use waiting for its consent (or its declaration) until ``deadline_ms``."""

    usage: UsageEvent
    deadline_ms: int

    def to_obj(self) -> dict[str, Any]:
        return {"u": codec.to_obj(self.usage), "d": self.deadline_ms}

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Held:
        return cls(codec.from_obj(UsageEvent, obj["u"]), int(obj["d"]))


@dataclass
class RuleState:
    revision: int
    status: AlertStatus


@dataclass
class Alerted:
    """A decided use that raised alerts, kept so that a late consent can correct them."""

    usage: UsageEvent
    declaration: Declaration | None
    evaluation: Evaluation
    decided_at_ms: int
    rules: dict[str, RuleState] = field(default_factory=dict)

    def to_obj(self) -> dict[str, Any]:
        return {
            "u": codec.to_obj(self.usage),
            "decl": None if self.declaration is None else codec.to_obj(self.declaration),
            "ev": codec.to_obj(self.evaluation),
            "at": self.decided_at_ms,
            "r": {k: [s.revision, str(s.status)] for k, s in self.rules.items()},
        }

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Alerted:
        decl = obj.get("decl")
        return cls(
            usage=codec.from_obj(UsageEvent, obj["u"]),
            declaration=None if decl is None else codec.from_obj(Declaration, decl),
            evaluation=codec.from_obj(Evaluation, obj["ev"]),
            decided_at_ms=int(obj["at"]),
            rules={k: RuleState(int(v[0]), AlertStatus(v[1])) for k, v in obj.get("r", {}).items()},
        )

    @property
    def firing(self) -> bool:
        return any(s.status is AlertStatus.FIRING for s in self.rules.values())


_KEPT_MAGIC = b"K1"
_KEPT_HEAD = struct.Struct(">qqHI")  # occurred at, decided at, id length, record length


@dataclass(slots=True)
class Kept:
    """A use decided ALLOWED, kept for the correction window (and to recognize repeats).

    Kept compactly: its id and times, and ``frame``: its part of the table value
    (``Holds.kept_to_bytes``), which ends with the use's record as encoded, decoded only when
    a late consent event makes it worth judging again. Framed once, when decided or read:
    writing a subject's kept uses back joins the frames, nothing is packed again.
    """

    event_id: str
    occurred_at_ms: int
    decided_at_ms: int
    frame: bytes

    @classmethod
    def of(cls, usage: UsageEvent, decided_at_ms: int, raw: bytes | None = None) -> Kept:
        """``raw``: the use's record as encoded (encoded here when not given)."""
        record = codec.encode(usage) if raw is None else raw
        ident = usage.event_id.encode("utf-8")
        head = _KEPT_HEAD.pack(usage.occurred_at_ms, decided_at_ms, len(ident), len(record))
        return cls(usage.event_id, usage.occurred_at_ms, decided_at_ms, head + ident + record)

    @property
    def raw(self) -> bytes:
        """The use's record as encoded."""
        n_id = _KEPT_HEAD.unpack_from(self.frame)[2]
        return self.frame[_KEPT_HEAD.size + n_id :]

    @property
    def usage(self) -> UsageEvent:
        return codec.decode(UsageEvent, self.raw)


def kept_key(subject_key: bytes) -> bytes:
    """The table key of a subject's kept uses (beside its holds, in the same table)."""
    return b"k:" + subject_key


def is_kept_key(key: bytes) -> bool:
    return key.startswith(b"k:")


@dataclass
class Holds:
    """Pending, alerted and kept (allowed) uses of one subject."""

    pending: list[Held] = field(default_factory=list)
    alerted: list[Alerted] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)

    def __bool__(self) -> bool:
        """Whether uses are held: pending, or alerted (allowed uses kept do not count)."""
        return bool(self.pending or self.alerted)

    def knows(self, usage_event_id: str) -> bool:
        """Whether this use is already held (pending) or was already decided (alerted or
        allowed and kept)."""
        for k in self.kept:  # plain loops: asked for every use, most often of kept ones
            if k.event_id == usage_event_id:
                return True
        for h in self.pending:
            if h.usage.event_id == usage_event_id:
                return True
        return any(a.usage.event_id == usage_event_id for a in self.alerted)  # few

    def keep(self, entry: Kept) -> None:
        """Keep an allowed use, newest last, at most ``MAX_KEPT``."""
        ident = entry.event_id
        for k in self.kept:
            if k.event_id == ident:
                self.kept = [k for k in self.kept if k.event_id != ident]
                break
        self.kept.append(entry)
        if len(self.kept) > MAX_KEPT:
            self.kept = self.kept[-MAX_KEPT:]

    def next_deadline(self) -> int | None:
        return min((h.deadline_ms for h in self.pending), default=None)

    def due(self) -> int | None:
        """When something of this subject is next due: the earliest pending deadline, or
        the moment its oldest alerted use leaves the correction window (None: never)."""
        pending = None
        for h in self.pending:  # plain loops: asked after every use judged
            if pending is None or h.deadline_ms < pending:
                pending = h.deadline_ms
        first = None
        for a in self.alerted:
            if first is None or a.decided_at_ms < first:
                first = a.decided_at_ms
        for k in self.kept:
            if first is None or k.decided_at_ms < first:
                first = k.decided_at_ms
        if first is None:
            return pending
        leaves = first + ALERTED_WINDOW_MS
        return leaves if pending is None else min(pending, leaves)

    def remember(self, entry: Alerted) -> None:
        """Keep an alerted use (replacing an older entry for the same use), newest last."""
        self.alerted = [a for a in self.alerted if a.usage.event_id != entry.usage.event_id]
        self.alerted.append(entry)
        if len(self.alerted) > MAX_ALERTED:
            self.alerted = self.alerted[-MAX_ALERTED:]

    def forget_before(self, cutoff_ms: int) -> int:
        """Forget alerted and kept uses decided before ``cutoff_ms``; returns how many."""
        before = len(self.alerted) + len(self.kept)
        self.alerted = [a for a in self.alerted if a.decided_at_ms >= cutoff_ms]
        self.kept = [k for k in self.kept if k.decided_at_ms >= cutoff_ms]
        return before - len(self.alerted) - len(self.kept)

    def kept_to_bytes(self) -> bytes | None:
        """The kept uses as one table value (None: nothing kept): a small binary framing
        around each use's encoded record, so nothing is decoded or encoded again."""
        if not self.kept:
            return None
        return _KEPT_MAGIC + b"".join([k.frame for k in self.kept])

    def load_kept(self, data: bytes | None) -> None:
        """Read the kept uses stored by ``kept_to_bytes``; unreadable data keeps nothing."""
        self.kept = []
        if not data:
            return
        if not data.startswith(_KEPT_MAGIC):
            log.error("the allowed uses kept for corrections cannot be read (unknown format)")
            return
        pos, size, head = len(_KEPT_MAGIC), len(data), _KEPT_HEAD.size
        try:
            while pos < size:
                start = pos
                occurred, decided, n_id, n_raw = _KEPT_HEAD.unpack_from(data, pos)
                pos += head
                ident = data[pos : pos + n_id].decode("utf-8")
                pos += n_id + n_raw
                if pos > size:
                    raise ValueError("truncated")
                self.kept.append(Kept(ident, occurred, decided, data[start:pos]))
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            log.error(
                "the allowed uses kept for corrections are damaged (%s); kept %d of them",
                exc,
                len(self.kept),
            )

    def to_bytes(self) -> bytes:
        data: bytes = codec.dumps(
            {
                "f": FORMAT,
                "p": [h.to_obj() for h in self.pending],
                "a": [a.to_obj() for a in self.alerted],
            }
        )
        return data

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Holds:
        if not data:
            return cls()
        obj = codec.loads(data)
        alerted: list[Alerted] = []
        for o in obj.get("a", []):
            # The stored evaluation follows the policy's Evaluation; if that changed shape
            # in an upgrade, lose the correction window of this one use, not the subject.
            try:
                alerted.append(Alerted.from_obj(o))
            except (InvalidInput, KeyError, TypeError, ValueError) as exc:
                log.error(
                    "an alerted use kept for corrections cannot be read any more (%s); "
                    "a late consent will not correct its alerts",
                    exc,
                )
        return cls(pending=[Held.from_obj(o) for o in obj.get("p", [])], alerted=alerted)
