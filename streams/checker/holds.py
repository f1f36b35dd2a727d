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
kept uses are stored beside them (``KeptUses``): an index under ``kept_key`` and each
use's record under a ``use_key`` of its own. ``bool(holds)`` says whether uses are HELD
(pending or alerted), which allowed uses are not. All are bounded: past ``MAX_PENDING``
the oldest pending use is decided at once; past ``MAX_ALERTED`` / ``MAX_KEPT`` or
``ALERTED_WINDOW_MS`` the oldest entry is forgotten (its alerts stay as they are; a
redelivery of a forgotten allowed use is judged again and gives the same verdict).

Cost of a kept use: about 50 bytes in its subject's index, read and written back with each
use of the subject, and its record (about 450 bytes for the bench's sends) written once
and deleted when it leaves the window; one per allowed use of the last 7 days, at most 64
per subject. Until 2026-12 the records were inside the one value, so a use of a subject
with 21 uses kept read and wrote 10 KiB (and sent them to the changelog).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
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


_INDEX_MAGIC = b"K2"
_INDEX_HEAD = struct.Struct(">qqI")  # oldest decided at, newest decided at, how many
_ENTRY = struct.Struct(">qqH")  # occurred at, decided at, id length
_LEGACY_MAGIC = b"K1"  # before 2026-12: each use's record inside the subject's one value
_LEGACY_HEAD = struct.Struct(">qqHI")  # occurred at, decided at, id length, record length


@dataclass(slots=True)
class Kept:
    """A use decided ALLOWED, kept for the correction window (and to recognize repeats)."""

    event_id: str
    occurred_at_ms: int
    decided_at_ms: int


def kept_key(subject_key: bytes) -> bytes:
    """The table key of a subject's kept uses (beside its holds, in the same table)."""
    return b"k:" + subject_key


def is_kept_key(key: bytes) -> bool:
    return key.startswith(b"k:")


def use_key(subject_key: bytes, event_id: str) -> bytes:
    """The table key of one kept use's record (beside its subject's holds)."""
    return b"u:" + subject_key + b"\x00" + event_id.encode("utf-8")


def is_use_key(key: bytes) -> bool:
    return key.startswith(b"u:")


def subject_of_use_key(key: bytes) -> bytes:
    """The subject key of a ``use_key`` (subject keys are ASCII: no NUL in them)."""
    return key[2 : key.index(b"\x00")]


def _pack(entries: list[Kept]) -> bytes:
    parts = []
    for k in entries:
        ident = k.event_id.encode("utf-8")
        parts.append(_ENTRY.pack(k.occurred_at_ms, k.decided_at_ms, len(ident)) + ident)
    return b"".join(parts)


class KeptUses:
    """A subject's allowed uses kept for the correction window, oldest decided first.

    Two parts, so that a use costs the same however many uses the subject had this week:

    - an index, one table value per subject (``kept_key``): each use's id and times, about
      50 bytes each, kept as the bytes read and appended to. Asking whether a use is known
      is a substring search; adding one appends. It is parsed only when a consent event
      comes, a tick forgets uses past the window, or a use is taken out;
    - each use's record as encoded, under a key of its own (``use_key``), written once when
      the use is kept and read only when a late consent event judges it again.

    ``records`` and ``gone`` are the records to write and to delete with the next write of
    the index; ``fetch`` reads a record written before (set by whoever loaded the index).
    """

    __slots__ = ("_blob", "_count", "_newest", "_oldest", "fetch", "gone", "records")

    def __init__(self) -> None:
        self._blob = b""
        self._count = 0
        self._oldest = 0
        self._newest = 0
        self.records: dict[str, bytes] = {}
        self.gone: dict[str, None] = {}  # ordered (the writes are): a dict, not a set
        self.fetch: Callable[[str], bytes | None] | None = None

    def __len__(self) -> int:
        return self._count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeptUses):
            return NotImplemented
        return (self.to_bytes(), self.records, self.gone) == (
            other.to_bytes(),
            other.records,
            other.gone,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"KeptUses({self.entries()!r}, records={sorted(self.records)!r})"

    @property
    def oldest_decided_ms(self) -> int | None:
        return self._oldest if self._count else None

    def entries(self) -> list[Kept]:
        """Every use kept, oldest decided first."""
        out: list[Kept] = []
        blob, pos, size, head = self._blob, 0, len(self._blob), _ENTRY.size
        while pos < size:
            occurred, decided, n_id = _ENTRY.unpack_from(blob, pos)
            pos += head
            out.append(Kept(blob[pos : pos + n_id].decode("utf-8"), occurred, decided))
            pos += n_id
        return out

    def _set(self, entries: list[Kept]) -> None:
        self._blob = _pack(entries)
        self._count = len(entries)
        self._oldest = entries[0].decided_at_ms if entries else 0
        self._newest = entries[-1].decided_at_ms if entries else 0

    def knows(self, event_id: str) -> bool:
        if event_id.encode("utf-8") not in self._blob:  # asked for every use: most are new
            return False
        return any(k.event_id == event_id for k in self.entries())

    def add(self, usage: UsageEvent, decided_at_ms: int, raw: bytes | None = None) -> None:
        """Keep an allowed use (``raw``: its record as encoded; encoded here when not
        given); past ``MAX_KEPT`` the oldest is forgotten."""
        ident = usage.event_id
        if self.knows(ident):
            self._set([k for k in self.entries() if k.event_id != ident])
        self.records[ident] = codec.encode(usage) if raw is None else raw
        self.gone.pop(ident, None)
        entry = Kept(ident, usage.occurred_at_ms, decided_at_ms)
        if self._count and decided_at_ms < self._newest:  # a clock gone back: keep the order
            entries = self.entries()
            entries.append(entry)
            entries.sort(key=lambda k: k.decided_at_ms)
            self._set(entries)
        else:
            self._blob += _pack([entry])
            if not self._count:
                self._oldest = decided_at_ms
            self._newest = decided_at_ms
            self._count += 1
        while self._count > MAX_KEPT:
            self._drop_first()

    def _drop_first(self) -> None:
        blob, head = self._blob, _ENTRY.size
        n_id = _ENTRY.unpack_from(blob, 0)[2]
        self._forgotten(blob[head : head + n_id].decode("utf-8"))
        self._blob = blob[head + n_id :]
        self._count -= 1
        if self._count:
            self._oldest = _ENTRY.unpack_from(self._blob, 0)[1]

    def _forgotten(self, event_id: str) -> None:
        self.records.pop(event_id, None)
        self.gone[event_id] = None

    def remove(self, event_id: str) -> None:
        """Take a use out (it is judged otherwise now)."""
        self._set([k for k in self.entries() if k.event_id != event_id])
        self._forgotten(event_id)

    def forget_before(self, cutoff_ms: int) -> int:
        """Forget the uses decided before ``cutoff_ms``; returns how many."""
        if not self._count or self._oldest >= cutoff_ms:
            return 0
        entries = self.entries()
        still = [k for k in entries if k.decided_at_ms >= cutoff_ms]
        for k in entries:
            if k.decided_at_ms < cutoff_ms:
                self._forgotten(k.event_id)
        self._set(still)
        return len(entries) - len(still)

    def usage(self, event_id: str) -> UsageEvent | None:
        """A kept use's event, read from its record (None: the record cannot be read)."""
        raw = self.records.get(event_id)
        if raw is None and self.fetch is not None:
            raw = self.fetch(event_id)
        if raw is None:
            log.error(
                "the record of an allowed use kept for corrections is missing; "
                "a late consent event will not judge that use again"
            )
            return None
        return codec.decode(UsageEvent, raw)

    def to_bytes(self) -> bytes | None:
        """The index as one table value (None: nothing kept)."""
        if not self._count:
            return None
        return _INDEX_MAGIC + _INDEX_HEAD.pack(self._oldest, self._newest, self._count) + self._blob

    @classmethod
    def from_bytes(
        cls, data: bytes | None, fetch: Callable[[str], bytes | None] | None = None
    ) -> KeptUses:
        """Read a value of ``to_bytes`` (or of the format before it: its records are then
        written under their own keys with the next write); unreadable data keeps nothing."""
        kept = cls()
        kept.fetch = fetch
        if not data:
            return kept
        try:
            if data.startswith(_INDEX_MAGIC):
                start = len(_INDEX_MAGIC) + _INDEX_HEAD.size
                kept._oldest, kept._newest, kept._count = _INDEX_HEAD.unpack_from(data, 2)
                kept._blob = data[start:]
                return kept
            if data.startswith(_LEGACY_MAGIC):
                kept._load_legacy(data)
                return kept
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            log.error("the allowed uses kept for corrections are damaged (%s)", exc)
            return kept
        log.error("the allowed uses kept for corrections cannot be read (unknown format)")
        return kept

    def _load_legacy(self, data: bytes) -> None:
        entries: list[Kept] = []
        pos, size, head = len(_LEGACY_MAGIC), len(data), _LEGACY_HEAD.size
        try:
            while pos < size:
                occurred, decided, n_id, n_raw = _LEGACY_HEAD.unpack_from(data, pos)
                pos += head
                ident = data[pos : pos + n_id].decode("utf-8")
                pos += n_id
                if pos + n_raw > size:
                    raise ValueError("truncated")
                entries.append(Kept(ident, occurred, decided))
                self.records[ident] = data[pos : pos + n_raw]
                pos += n_raw
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            log.error(
                "the allowed uses kept for corrections are damaged (%s); kept %d of them",
                exc,
                len(entries),
            )
        entries.sort(key=lambda k: k.decided_at_ms)
        self._set(entries)


@dataclass
class Holds:
    """Pending, alerted and kept (allowed) uses of one subject."""

    pending: list[Held] = field(default_factory=list)
    alerted: list[Alerted] = field(default_factory=list)
    kept: KeptUses = field(default_factory=KeptUses)

    def __bool__(self) -> bool:
        """Whether uses are held: pending, or alerted (allowed uses kept do not count)."""
        return bool(self.pending or self.alerted)

    def knows(self, usage_event_id: str) -> bool:
        """Whether this use is already held (pending) or was already decided (alerted or
        allowed and kept)."""
        if self.kept.knows(usage_event_id):
            return True
        for h in self.pending:  # a plain loop: asked for every use
            if h.usage.event_id == usage_event_id:
                return True
        return any(a.usage.event_id == usage_event_id for a in self.alerted)  # few

    def next_deadline(self) -> int | None:
        return min((h.deadline_ms for h in self.pending), default=None)

    def due(self) -> int | None:
        """When something of this subject is next due: the earliest pending deadline, or
        the moment its oldest alerted or kept use leaves the correction window (None:
        never)."""
        pending = None
        for h in self.pending:  # plain loops: asked after every use judged
            if pending is None or h.deadline_ms < pending:
                pending = h.deadline_ms
        first = self.kept.oldest_decided_ms
        for a in self.alerted:
            if first is None or a.decided_at_ms < first:
                first = a.decided_at_ms
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
        before = len(self.alerted)
        self.alerted = [a for a in self.alerted if a.decided_at_ms >= cutoff_ms]
        return before - len(self.alerted) + self.kept.forget_before(cutoff_ms)

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
