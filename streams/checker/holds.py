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
kept uses are stored beside them (``KeptUses``): one value under ``kept_key`` with their
ids and times and the records of the newest few, older records under a ``use_key`` each.
``bool(holds)`` says whether uses are HELD (pending or alerted), which allowed uses are
not. All are bounded: past ``MAX_PENDING`` the oldest pending use is decided at once; past
``MAX_ALERTED`` / ``MAX_KEPT`` or ``ALERTED_WINDOW_MS`` the oldest entry is forgotten (its
alerts stay as they are; a redelivery of a forgotten allowed use is judged again and gives
the same verdict).

Cost of a kept use: about 50 bytes in its subject's value, read and written back with each
use of the subject, plus its record (about 450 bytes for the bench's sends) inside that
value while it is one of the ``MAX_INLINE`` newest, then under its own key (written once,
deleted when it leaves the window). One per allowed use of the last 7 days, at most 64 per
subject. Until 2026-12 every record stayed inside the value: a use of a subject with 21
uses kept read and wrote 10 KiB (and sent them to the changelog); now about 3 KiB.
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


_MAGIC = b"K3"
#: oldest decided at, newest decided at, how many, how many inline, length of what follows
_HEAD = struct.Struct(">qqIII")
_ENTRY = struct.Struct(">qqHI")  # occurred at, decided at, id length, inline record length
_INDEX_MAGIC = b"K2"  # for a while in 2026-12: ids and times only, every record under its key
_INDEX_ENTRY = struct.Struct(">qqH")
_LEGACY_MAGIC = b"K1"  # before 2026-12: every record inside the subject's one value
_LEGACY_HEAD = struct.Struct(">qqHI")  # occurred at, decided at, id length, record length

#: The records of a subject's newest kept uses stay inside its value (one write per use);
#: the older ones move under keys of their own, once each.
MAX_INLINE = 4


@dataclass(slots=True)
class Kept:
    """A use decided ALLOWED, kept for the correction window (and to recognize repeats);
    ``raw``: its record, when it is inside the subject's value."""

    event_id: str
    occurred_at_ms: int
    decided_at_ms: int
    raw: bytes | None = None


def kept_key(subject_key: bytes) -> bytes:
    """The table key of a subject's kept uses (beside its holds, in the same table)."""
    return b"k:" + subject_key


def is_kept_key(key: bytes) -> bool:
    return key.startswith(b"k:")


def use_key(subject_key: bytes, event_id: str) -> bytes:
    """The table key of the record of a kept use that left its subject's value."""
    return b"u:" + subject_key + b"\x00" + event_id.encode("utf-8")


def is_use_key(key: bytes) -> bool:
    return key.startswith(b"u:")


def subject_of_use_key(key: bytes) -> bytes:
    """The subject key of a ``use_key`` (subject keys are ASCII: no NUL in them)."""
    return key[2 : key.index(b"\x00")]


def _pack(entries: list[Kept]) -> bytes:
    parts = []
    for k in entries:
        ident, raw = k.event_id.encode("utf-8"), k.raw or b""
        parts.append(_ENTRY.pack(k.occurred_at_ms, k.decided_at_ms, len(ident), len(raw)))
        parts.append(ident)
        parts.append(raw)
    return b"".join(parts)


class KeptUses:
    """A subject's allowed uses kept for the correction window, oldest decided first.

    One table value per subject (``kept_key``) holds each use's id and times (about 50
    bytes), and the records of the ``MAX_INLINE`` newest uses; the record of an older use
    is under a key of its own (``use_key``), moved there once, and read only when a late
    consent event judges that use again. So a subject with a few uses this week costs one
    write per use, as when every record was inside the value, and one with many (a daily
    send) reads and writes a few KiB per use, not every record of its week.

    The value is kept as the bytes read and appended to: asking whether a use is known is a
    substring search, adding one appends. It is parsed only when a consent event comes, a
    tick forgets uses past the window, a record moves out, or a use is taken out.

    ``records`` and ``gone``: the records to write under their own keys and to delete,
    with the next write of the value; ``fetch`` reads a record written before (set by
    whoever read the value).
    """

    __slots__ = ("_blob", "_count", "_inline", "_newest", "_oldest", "fetch", "gone", "records")

    def __init__(self) -> None:
        self._blob = b""
        self._count = 0
        self._inline = 0
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
        """Every use kept, oldest decided first. A damaged value (read lazily, so damage
        shows here) keeps the uses before the damage, and says so."""
        out: list[Kept] = []
        blob, pos, size, head = self._blob, 0, len(self._blob), _ENTRY.size
        try:
            while pos < size:
                occurred, decided, n_id, n_raw = _ENTRY.unpack_from(blob, pos)
                pos += head
                ident = blob[pos : pos + n_id].decode("utf-8")
                pos += n_id + n_raw
                if pos > size:
                    raise ValueError("truncated")
                raw = blob[pos - n_raw : pos] if n_raw else None
                out.append(Kept(ident, occurred, decided, raw))
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            log.error(
                "the allowed uses kept for corrections are damaged (%s); kept %d of them",
                exc,
                len(out),
            )
            self._set(out)
            return out
        if len(out) != self._count or sum(1 for k in out if k.raw) != self._inline:
            log.error("the allowed uses kept for corrections miscounted them; counted again")
            self._set(out)
        return out

    def _set(self, entries: list[Kept]) -> None:
        self._blob = _pack(entries)
        self._count = len(entries)
        self._inline = sum(1 for k in entries if k.raw is not None)
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
            self.remove(ident)
        record = codec.encode(usage) if raw is None else raw
        entry = Kept(ident, usage.occurred_at_ms, decided_at_ms, record)
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
            self._inline += 1
        if self._count > MAX_KEPT + 1:  # more than one past the cap: its head disagrees
            self._set(self.entries())
        while self._count > MAX_KEPT:
            self._drop_first()
        if self._inline > MAX_INLINE:
            self._move_out()

    def _drop_first(self) -> None:
        blob, head = self._blob, _ENTRY.size
        try:
            n_id, n_raw = _ENTRY.unpack_from(blob, 0)[2:]
        except struct.error:  # the value's head disagreed with it
            self._set(self.entries())
            return
        if n_raw:
            self._inline -= 1
        else:
            self._delete_record(blob[head : head + n_id].decode("utf-8"))
        self._blob = blob[head + n_id + n_raw :]
        self._count -= 1
        if self._count and len(self._blob) >= head:
            self._oldest = _ENTRY.unpack_from(self._blob, 0)[1]
        elif self._count:  # the value's head disagreed with it
            self._set(self.entries())

    def _move_out(self) -> None:
        """Move the oldest records inside the value under keys of their own (walking the
        heads only: this runs for most uses of a subject with many uses kept)."""
        head = _ENTRY.size
        while self._inline > MAX_INLINE:
            blob, pos = self._blob, 0
            try:
                while True:
                    occurred, decided, n_id, n_raw = _ENTRY.unpack_from(blob, pos)
                    if n_raw:
                        break
                    pos += head + n_id
            except struct.error:  # the value's head disagreed with it: counted again
                self._set(self.entries())
                continue
            start = pos + head + n_id
            ident = blob[pos + head : start].decode("utf-8")
            self.records[ident] = blob[start : start + n_raw]
            self.gone.pop(ident, None)
            outside = _ENTRY.pack(occurred, decided, n_id, 0)
            self._blob = b"".join(
                (blob[:pos], outside, blob[pos + head : start], blob[start + n_raw :])
            )
            self._inline -= 1

    def _delete_record(self, event_id: str) -> None:
        """The record of a use outside the value goes with the next write."""
        self.records.pop(event_id, None)
        self.gone[event_id] = None

    def remove(self, event_id: str) -> None:
        """Take a use out (it is judged otherwise now, or kept again)."""
        entries = self.entries()
        for k in entries:
            if k.event_id == event_id and k.raw is None:
                self._delete_record(event_id)
        self._set([k for k in entries if k.event_id != event_id])

    def forget_before(self, cutoff_ms: int) -> int:
        """Forget the uses decided before ``cutoff_ms``; returns how many."""
        if not self._count or self._oldest >= cutoff_ms:
            return 0
        entries = self.entries()
        still = [k for k in entries if k.decided_at_ms >= cutoff_ms]
        for k in entries:
            if k.decided_at_ms < cutoff_ms and k.raw is None:
                self._delete_record(k.event_id)
        self._set(still)
        return len(entries) - len(still)

    def usage(self, entry: Kept) -> UsageEvent | None:
        """The event of a use kept (an entry of ``entries``), read from its record (None:
        the record cannot be read)."""
        raw = entry.raw
        if raw is None:
            raw = self.records.get(entry.event_id)
        if raw is None and self.fetch is not None:
            raw = self.fetch(entry.event_id)
        if raw is None:
            log.error(
                "the record of an allowed use kept for corrections is missing; "
                "a late consent event will not judge that use again"
            )
            return None
        return codec.decode(UsageEvent, raw)

    def to_bytes(self) -> bytes | None:
        """The value to store (None: nothing kept)."""
        if not self._count:
            return None
        blob = self._blob
        head = _HEAD.pack(self._oldest, self._newest, self._count, self._inline, len(blob))
        return _MAGIC + head + blob

    @classmethod
    def from_bytes(
        cls, data: bytes | None, fetch: Callable[[str], bytes | None] | None = None
    ) -> KeptUses:
        """Read a value of ``to_bytes`` (or of a format before it: see ``_MAGIC``); data that
        cannot be read keeps what could be read of it."""
        kept = cls()
        kept.fetch = fetch
        if not data:
            return kept
        if data.startswith(_MAGIC):
            try:
                head = _HEAD.unpack_from(data, 2)
            except struct.error as exc:
                log.error("the allowed uses kept for corrections are damaged (%s)", exc)
                return kept
            kept._oldest, kept._newest, kept._count, kept._inline, length = head
            kept._blob = data[len(_MAGIC) + _HEAD.size :]
            if len(kept._blob) != length:  # cut short: nothing may be appended to it as it is
                kept.entries()  # keeps the uses before the damage (and says so)
            return kept
        if data.startswith(_INDEX_MAGIC):
            kept._load_before(data, _INDEX_ENTRY, records_inside=False)
        elif data.startswith(_LEGACY_MAGIC):
            kept._load_before(data, _LEGACY_HEAD, records_inside=True)
        else:
            log.error("the allowed uses kept for corrections cannot be read (unknown format)")
        return kept

    def _load_before(self, data: bytes, head: struct.Struct, *, records_inside: bool) -> None:
        """A value of a format before (its records inside it, or all under their keys): the
        next write stores it as ``to_bytes`` does, moving records out as ``add`` would."""
        entries: list[Kept] = []
        # the index format's head: oldest, newest, how many (the legacy format had none)
        pos, size = 2 if records_inside else 22, len(data)
        try:
            while pos < size:
                fields = head.unpack_from(data, pos)
                pos += head.size
                ident = data[pos : pos + fields[2]].decode("utf-8")
                pos += fields[2]
                raw = None
                if records_inside:
                    raw = data[pos : pos + fields[3]]
                    pos += fields[3]
                if pos > size:
                    raise ValueError("truncated")
                entries.append(Kept(ident, fields[0], fields[1], raw))
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            log.error(
                "the allowed uses kept for corrections are damaged (%s); kept %d of them",
                exc,
                len(entries),
            )
        entries.sort(key=lambda k: k.decided_at_ms)
        self._set(entries)
        if self._inline > MAX_INLINE:
            self._move_out()


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
    def from_bytes(cls, data: bytes | None, kept: KeptUses | None = None) -> Holds:
        """``kept``: the subject's kept uses, read from their own key (none when not given)."""
        if kept is None:
            kept = KeptUses()
        if not data:
            return cls(kept=kept)
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
        pending = [Held.from_obj(o) for o in obj.get("p", [])]
        return cls(pending=pending, alerted=alerted, kept=kept)
