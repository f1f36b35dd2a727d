"""The consent history of one subject: per controller, a bounded, time-ordered list of versions.

A use is judged against the consent valid at its own occurred-at time (DESIGN.md,
"Event time"), so the history keeps every consent event of a subject in *event-time*
order, whatever order they arrived in, each version with the cumulative state it leads
to. ``state_at`` answers by bisection over those precomputed states.

Model
-----
Each consent event becomes one :class:`ConsentEntry`: an action (grant, withdraw, refuse,
expire) over a set of purposes and a set of channels (empty in the event = all), maybe
limited to a ``scope`` (a list, group or topic). The cumulative state is the ordered list
of entries still in effect; an entry is dropped once a later one covers at least the same
purposes, channels and scope (it can no longer decide anything). A question "may
``purpose`` be used on ``channel``?" is answered by the **latest entry that matches**: a
grant means yes, a withdrawal / refusal / expiry means no, no match means no consent. A
grant whose ``expires_at_ms`` has passed at the time asked is skipped.

- Versions that happened at the same millisecond are ordered grant first, then the rest,
  then by event id: a withdrawal wins a tie, whatever the arrival order.
- Unmapped vendor purposes fail closed: a grant whose purposes are all unmapped grants
  nothing (an empty purpose list does *not* mean "all" then); a withdrawal naming only
  unmapped purposes withdraws everything.
- ``erase`` drops a controller's history and keeps only the fact and time of erasure.
  Afterwards ``state_at`` answers ``erased`` for any time up to the first consent event
  that happened after the erasure (the evidence for earlier times is gone on purpose).
  Events that happened before the erasure and arrive later are not applied.
- The history is bounded per controller by ``max_versions``: the oldest versions are
  folded into a base state. Answers for times at or after the base are exact. For a time
  *before* the base, ``state_at`` answers the base state (the earliest one still known)
  with ``approximate=True``; the engine records it as evidence like any other state. A
  consent event that happened before the base and arrives late cannot be placed any more:
  it is not applied and counted in ``too_old_count``.

Last contact (R20) is the later of the last grant by the person and the last contact
noted by :meth:`ConsentHistory.note_contact` (the processor calls it for clicks and
replies; an open is not a contact). Only the most recent ``MAX_CONTACTS`` contacts per
controller are kept.

Calls and refusals during a call (R11) are kept per controller in a bounded
:class:`~.calls.CallLog`: :meth:`ConsentHistory.note_use` notes sales calls, :meth:`apply`
notes refusals (an objection naming the phone channel), :meth:`ConsentHistory.calls_at`
reads them.

First messages (R15, R18) are kept per controller as the ``(occurred_at_ms, event_id)`` of
the earliest message (a ``send``, not a connector's test) the controller sent the person:
:meth:`ConsentHistory.note_use` notes it, :meth:`ConsentHistory.is_first_message` answers
whether a message is that one. Only the earliest is kept, so a message stays the first on
every later judgement of it; an erasure forgets a first message at or before it.

Lead certificates (R23) are kept per controller (the buyer they were verified for) as the
latest verification result of each certificate id (:class:`CertificateResult`, from
``verify`` events; latest by event time, then event id): :meth:`ConsentHistory.certificate`
reads it. A result is not a consent and never changes a consent state. An erasure forgets
the results at or before it; at most ``MAX_CERTIFICATES`` per controller are kept (the
oldest results go first).

Wire format: version 2 adds ``"cl"`` (the call log) per controller and ``"gp"`` (GPC seen
at collection, R21) per entry; version 3 adds ``"f"`` (the first message, R15/R18) per
controller; version 4 adds ``"ct"`` (certificate results, R23). Older versions, which lack
them, are still read.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..events.errors import InvalidInput
from ..events.fastinit import maker
from ..events.records import (
    CertificateStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    ConsentSummary,
    Declaration,
    LegalBasis,
    Proof,
    UsageEvent,
    UsageKind,
)
from .calls import CallLog, CallsAt
from .purposes import NON_PROMOTIONAL

#: Schema of ``to_obj``; ``from_obj`` reads versions 1 (no call log, no GPC) and 2 (no first
#: message) up to this one and refuses newer ones.
FORMAT_VERSION = 4
#: Certificate results kept per controller (R23).
MAX_CERTIFICATES = 32
#: Contacts kept per controller for R20.
MAX_CONTACTS = 8
#: Usage kinds that are a contact *by the person* (R20: a click counts, an open does not).
CONTACT_KINDS: frozenset[UsageKind] = frozenset({UsageKind.CLICK, UsageKind.REPLY})


class ConsentStatus(enum.StrEnum):
    """DPV's split: only ``given`` permits processing."""

    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    REFUSED = "refused"
    EXPIRED = "expired"
    ERASED = "erased"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CertificateResult:
    """The latest verification result of one lead certificate for one controller (R23)."""

    certificate_id: str
    status: CertificateStatus
    at_ms: int  # when it was verified (the verify event's time)
    event_id: str
    reason: str = ""

    @property
    def order(self) -> tuple[int, str]:
        return (self.at_ms, self.event_id)


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One consent event still in effect in a cumulative state."""

    event_id: str
    at_ms: int
    action: ConsentAction
    purposes: frozenset[str]
    all_purposes: bool
    channels: frozenset[str]
    all_channels: bool
    recipients: frozenset[str] = frozenset()
    collected_by: str | None = None
    legal_basis: LegalBasis = LegalBasis.CONSENT
    scope: str | None = None
    proof: Proof | None = None
    expires_at_ms: int | None = None
    unmapped: frozenset[str] = frozenset()
    gpc: bool = False  # Sec-GPC: 1 was seen when it was collected (R21)

    @property
    def is_grant(self) -> bool:
        return self.action is ConsentAction.GRANT

    def matches(self, purpose: str | None, channel: str, refs: frozenset[str]) -> bool:
        """Whether this entry speaks about ``purpose`` on ``channel`` for a use naming ``refs``.

        ``purpose=None`` (the use's purpose is unknown) matches only all-purpose entries.
        """
        if not (self.all_purposes or (purpose is not None and purpose in self.purposes)):
            return False
        if not (self.all_channels or channel in self.channels):
            return False
        return self.scope is None or self.scope in refs

    def covers_entry(self, older: ConsentEntry) -> bool:
        """True when every question ``older`` answers is answered by this (later) entry."""
        if not (self.all_purposes or (not older.all_purposes and older.purposes <= self.purposes)):
            return False
        if not (self.all_channels or (not older.all_channels and older.channels <= self.channels)):
            return False
        return self.scope is None or self.scope == older.scope

    def active_at(self, t_ms: int) -> bool:
        return not (self.is_grant and self.expires_at_ms is not None and self.expires_at_ms <= t_ms)

    @classmethod
    def from_event(cls, event: ConsentEvent) -> ConsentEntry:
        grant = event.action is ConsentAction.GRANT
        return _new_entry(
            event.event_id,
            event.occurred_at_ms,
            event.action,
            _shared_set(event.purposes),
            # fail closed: a grant of unmapped purposes only is a grant of nothing
            not event.purposes and not (grant and event.unmapped_purposes),
            _shared_set([str(c) for c in event.channels]),
            not event.channels,
            _shared_set(event.recipients),
            event.collected_by,
            event.legal_basis,
            event.scope,
            event.proof,
            event.expires_at_ms,
            _shared_set(event.unmapped_purposes),
            bool(event.gpc),
        )


_NO_ITEMS: frozenset[str] = frozenset()
#: The sets of purposes, channels, recipients of the entries, one instance each: most
#: subjects consent to the same few, and each set is an object the garbage collector
#: scans again and again while the decoded history stays in the processor's cache
#: (4 of the 28 objects it tracks per subject in a ledger build). Bounded: past
#: ``_SHARED_MAX`` different ones, a set is made per entry, as before.
_SHARED: dict[tuple[str, ...], frozenset[str]] = {}
_SHARED_MAX = 4096


def _shared_set(items: Iterable[str]) -> frozenset[str]:
    """``frozenset(items)``, the same instance for the same items in the same order."""
    key = tuple(items)
    if not key:
        return _NO_ITEMS
    found = _SHARED.get(key)
    if found is None:
        found = frozenset(key)
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[key] = found
    return found


#: ``ConsentEntry(...)`` with every field given in order, without the frozen ``__init__``
_new_entry = maker(ConsentEntry)


class _Memo:
    """What is computed once per cumulative state whose meaning does not depend on the time
    asked (no grant in it expires): its parts, then the summary of its state."""

    __slots__ = ("parts", "summary")

    def __init__(self) -> None:
        self.parts: _Parts | None = None
        self.summary: ConsentSummary | None = None


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The consent of a subject towards one controller at one instant (``at_ms``).

    ``purposes``/``channels`` are the ones granted on at least one channel / for at least
    one purpose; ``all_purposes``/``all_channels`` mean a grant without a list. Precise
    questions go through :meth:`grant_for` and :meth:`block_for`, which honour
    per-channel withdrawals and scopes. ``collected_by``, ``legal_basis`` and ``proof`` are
    those of the latest grant in effect.
    """

    controller: str
    at_ms: int
    status: ConsentStatus
    purposes: frozenset[str] = frozenset()
    all_purposes: bool = False
    excluded_purposes: frozenset[str] = frozenset()  # withdrawn from an all-purpose grant
    channels: frozenset[str] = frozenset()
    all_channels: bool = False
    recipients: frozenset[str] = frozenset()
    collected_by: str | None = None
    legal_basis: LegalBasis | None = None
    proof: Proof | None = None
    version_event_ids: tuple[str, ...] = ()  # the consent events still in effect
    version_id: str | None = None  # the latest consent event at or before at_ms
    valid_from_ms: int | None = None  # when that version took effect
    withdrawn_at_ms: int | None = None  # latest withdrawal at or before at_ms
    last_contact_ms: int | None = None
    erased_at_ms: int | None = None
    approximate: bool = False  # at_ms is before the folded base: the earliest state known
    unmapped_purposes: frozenset[str] = frozenset()
    entries: tuple[ConsentEntry, ...] = ()
    #: where the summary of a state that depends only on its version is kept once made
    #: (the version's memo: ``_Cum.memo``); None: made on every call
    memo: _Memo | None = field(default=None, compare=False, repr=False)

    def _latest(
        self, purpose: str | None, channel: str, refs: frozenset[str]
    ) -> ConsentEntry | None:
        for entry in reversed(self.entries):
            if entry.matches(purpose, channel, refs):
                return entry
        return None

    def grant_for(
        self, purpose: str | None, channel: str, refs: frozenset[str] = frozenset()
    ) -> ConsentEntry | None:
        """The grant that allows ``purpose`` on ``channel``, or None."""
        entry = self._latest(purpose, channel, refs)
        return entry if entry is not None and entry.is_grant else None

    def block_for(
        self, purpose: str | None, channel: str, refs: frozenset[str] = frozenset()
    ) -> ConsentEntry | None:
        """The withdrawal, refusal or expiry that forbids ``purpose`` on ``channel``, or None."""
        entry = self._latest(purpose, channel, refs)
        return entry if entry is not None and not entry.is_grant else None

    def covers(self, purpose: str | None, channel: str, refs: frozenset[str] = frozenset()) -> bool:
        return self.grant_for(purpose, channel, refs) is not None

    def grants_channel(self, channel: str) -> bool:
        """Some purpose is granted on ``channel`` (an opt-in for the channel, R1)."""
        for i, entry in enumerate(self.entries):
            if not entry.is_grant or not (entry.all_channels or channel in entry.channels):
                continue
            if entry.all_purposes or entry.purposes:
                later = self.entries[i + 1 :]
                if not any(
                    not e.is_grant
                    and e.scope is None
                    and e.all_purposes
                    and (e.all_channels or channel in e.channels)
                    for e in later
                ):
                    return True
        return False

    @property
    def permits_processing(self) -> bool:
        return self.status is ConsentStatus.GIVEN

    def summary(self) -> ConsentSummary:
        """The state as evidence (``*`` = all, ``-p`` = withdrawn from an all-purpose grant).

        Made once per consent version when the state depends only on it (``memo``)."""
        memo = self.memo
        if memo is not None and memo.summary is not None:
            return memo.summary
        made = self._summary()
        if memo is not None:
            memo.summary = made
        return made

    def _summary(self) -> ConsentSummary:
        purposes = sorted(self.purposes)
        if self.all_purposes:
            purposes = ["*", *purposes, *(f"-{p}" for p in sorted(self.excluded_purposes))]
        channels = sorted(self.channels)
        if self.all_channels:
            channels = ["*"]
        return ConsentSummary(
            state=str(self.status),
            consent_event_ids=list(self.version_event_ids),
            purposes=purposes,
            channels=channels,
            recipients=sorted(self.recipients),
            legal_basis=None if self.legal_basis is None else str(self.legal_basis),
            proof=self.proof,
            valid_from_ms=self.valid_from_ms,
        )


# -- cumulative states ------------------------------------------------------------------

_RANK = {ConsentAction.GRANT: 0}  # every other action ranks 1: it wins a tie
_Key = tuple[int, int, str]


def _key(entry: ConsentEntry) -> _Key:
    return (entry.at_ms, _RANK.get(entry.action, 1), entry.event_id)


@dataclass(frozen=True, slots=True)
class _Cum:
    """The cumulative state after a version (independent of the time asked)."""

    entries: tuple[ConsentEntry, ...] = ()
    last_action: ConsentAction | None = None
    last_id: str | None = None
    last_at_ms: int | None = None
    withdrawn_at_ms: int | None = None
    last_grant_ms: int | None = None
    #: what is computed once for it (when it does not depend on the time asked)
    memo: _Memo = field(default_factory=_Memo, compare=False, repr=False)

    def step(self, entry: ConsentEntry) -> _Cum:
        kept = tuple([e for e in self.entries if not entry.covers_entry(e)])
        action = entry.action
        return _new_cum(
            (*kept, entry),
            action,
            entry.event_id,
            entry.at_ms,
            entry.at_ms if action is ConsentAction.WITHDRAW else self.withdrawn_at_ms,
            entry.at_ms if action is ConsentAction.GRANT else self.last_grant_ms,
            _Memo(),
        )


#: ``_Cum(...)`` with every field given in order (a fresh memo), without the frozen ``__init__``
_new_cum = maker(_Cum)


_EMPTY = _Cum()


@dataclass(slots=True)
class _Version:
    key: _Key
    entry: ConsentEntry
    cum: _Cum
    #: the entry's stored form (``_entry_obj``), made once when first written
    stored: dict[str, Any] | None = None

    def to_obj(self) -> dict[str, Any]:
        stored = self.stored
        if stored is None:
            stored = self.stored = _entry_obj(self.entry)
        return stored


@dataclass(slots=True)
class _Line:
    """One controller's history."""

    versions: list[_Version] = field(default_factory=list)
    keys: list[_Key] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    base: _Cum = _EMPTY
    base_key: _Key | None = None  # key of the latest folded version
    erased_at_ms: int | None = None
    erased_id: str | None = None
    contacts: list[int] = field(default_factory=list)  # sorted, newest MAX_CONTACTS
    calls: CallLog = field(default_factory=CallLog)  # sales calls and refusals (R11)
    first: tuple[int, str] | None = None  # earliest message sent: (occurred_at_ms, event_id)
    certificates: dict[str, CertificateResult] = field(default_factory=dict)  # R23, by id

    def cum_before(self, index: int) -> _Cum:
        return self.versions[index - 1].cum if index > 0 else self.base

    def recompute_from(self, index: int) -> None:
        cum = self.cum_before(index)
        for version in self.versions[index:]:
            cum = cum.step(version.entry)
            version.cum = cum

    def insert(self, entry: ConsentEntry) -> None:
        key = _key(entry)
        index = bisect.bisect_left(self.keys, key)
        self.keys.insert(index, key)
        self.versions.insert(index, _Version(key, entry, _EMPTY))
        self.ids.add(entry.event_id)
        self.recompute_from(index)

    def fold(self, max_versions: int) -> None:
        while len(self.versions) > max_versions:
            oldest = self.versions.pop(0)
            self.keys.pop(0)
            self.ids.discard(oldest.entry.event_id)
            self.base, self.base_key = oldest.cum, oldest.key


def is_promotional(usage: UsageEvent, declaration: Declaration | None) -> bool:
    """A promotional use: the declaration says so, else the platform's purpose is not a
    transactional or security one."""
    if declaration is not None:
        return declaration.promotional
    purpose = usage.declared_purpose
    return purpose is not None and purpose not in NON_PROMOTIONAL


def _note_refusal(line: _Line, event: ConsentEvent) -> bool:
    """R11: an objection naming the phone channel is a refusal during a call."""
    if event.action not in (ConsentAction.REFUSE, ConsentAction.WITHDRAW):
        return False
    if Channel.PHONE not in event.channels:
        return False
    t = event.occurred_at_ms
    if line.erased_at_ms is not None and t <= line.erased_at_ms:
        return False
    return line.calls.note_refusal(t, event.event_id)


def _probe(t_ms: int) -> _Key:
    """Sorts after every version at or before ``t_ms`` (ranks are 0 and 1)."""
    return (t_ms, 2, "")


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a cumulative state says whatever the time asked (given the entries active)."""

    entries: tuple[ConsentEntry, ...]
    status: ConsentStatus
    purposes: frozenset[str]
    all_purposes: bool
    excluded: frozenset[str]
    channels: frozenset[str]
    all_channels: bool
    recipients: frozenset[str]
    latest: ConsentEntry | None
    version_event_ids: tuple[str, ...]
    unmapped: frozenset[str]


def _parts(cum: _Cum, t_ms: int) -> tuple[_Parts, _Memo | None]:
    """``cum``'s parts at ``t_ms`` and the memo they are kept in: computed once per ``cum``
    when no grant in it expires (then nothing depends on the time), else every time (and
    no memo)."""
    memo = cum.memo
    if memo.parts is not None:
        return memo.parts, memo
    parts = _compute_parts(cum, t_ms)
    if any(e.expires_at_ms is not None for e in cum.entries):
        return parts, None
    memo.parts = parts
    return parts, memo


def _compute_parts(cum: _Cum, t_ms: int) -> _Parts:
    entries = tuple(e for e in cum.entries if e.active_at(t_ms))
    if len(entries) == 1 and entries[0].is_grant:
        return _one_grant_parts(entries[0])
    grants = [e for e in entries if e.is_grant]
    if grants:
        status = ConsentStatus.GIVEN
    elif cum.last_action is None:
        status = ConsentStatus.UNKNOWN
    else:
        status = {
            ConsentAction.WITHDRAW: ConsentStatus.WITHDRAWN,
            ConsentAction.REFUSE: ConsentStatus.REFUSED,
        }.get(cum.last_action, ConsentStatus.EXPIRED)
    purposes: set[str] = set()
    excluded: set[str] = set()
    channels: set[str] = set()
    recipients: set[str] = set()
    all_purposes = all_channels = False
    for i, grant in enumerate(entries):
        if not grant.is_grant:
            continue
        blocks = [
            e for e in entries[i + 1 :] if not e.is_grant and e.all_channels and e.scope is None
        ]
        if grant.all_purposes and not any(b.all_purposes for b in blocks):
            all_purposes = True
            excluded.update(p for b in blocks for p in b.purposes)
        purposes.update(
            p for p in grant.purposes if not any(b.all_purposes or p in b.purposes for b in blocks)
        )
        all_channels = all_channels or grant.all_channels
        channels.update(grant.channels)
        recipients.update(grant.recipients)
    if all_purposes:
        excluded -= purposes
    return _Parts(
        entries=entries,
        status=status,
        purposes=frozenset(purposes),
        all_purposes=all_purposes,
        excluded=frozenset(excluded),
        channels=frozenset(() if all_channels else channels),
        all_channels=all_channels,
        recipients=frozenset(recipients),
        latest=grants[-1] if grants else None,
        version_event_ids=tuple(e.event_id for e in entries),
        unmapped=frozenset(p for e in entries for p in e.unmapped),
    )


def _one_grant_parts(grant: ConsentEntry) -> _Parts:
    """``_compute_parts`` of a single active entry, a grant (a subject that consented once:
    most of them, and each is computed again when it is read back from the table): nothing
    blocks it, so its parts are its own sets, shared instead of copied."""
    return _Parts(
        entries=(grant,),
        status=ConsentStatus.GIVEN,
        purposes=grant.purposes,
        all_purposes=grant.all_purposes,
        excluded=_NO_ITEMS,
        channels=_NO_ITEMS if grant.all_channels else grant.channels,
        all_channels=grant.all_channels,
        recipients=grant.recipients,
        latest=grant,
        version_event_ids=(grant.event_id,),
        unmapped=grant.unmapped,
    )


def _state(
    controller: str,
    t_ms: int,
    cum: _Cum,
    line: _Line,
    *,
    approximate: bool = False,
) -> ConsentState:
    parts, memo = _parts(cum, t_ms)
    latest = parts.latest
    last_contact = cum.last_grant_ms
    if line.contacts:
        i = bisect.bisect_right(line.contacts, t_ms)
        if i and (last_contact is None or line.contacts[i - 1] > last_contact):
            last_contact = line.contacts[i - 1]
    return _new_state(
        controller,
        t_ms,
        parts.status,
        parts.purposes,
        parts.all_purposes,
        parts.excluded,
        parts.channels,
        parts.all_channels,
        parts.recipients,
        latest.collected_by if latest else None,
        latest.legal_basis if latest else None,
        latest.proof if latest else None,
        parts.version_event_ids,
        cum.last_id,
        cum.last_at_ms,
        cum.withdrawn_at_ms,
        last_contact,
        line.erased_at_ms,
        approximate,
        parts.unmapped,
        parts.entries,
        memo,
    )


#: ``ConsentState(...)`` with every field given in order, without the frozen ``__init__``
_new_state = maker(ConsentState)


class ConsentHistory:
    """Everything known about one subject's consent, per controller.

    Not thread-safe; one instance per subject, read and written by the partition that owns
    the subject. ``to_obj``/``from_obj`` store it in a table.
    """

    def __init__(self, subject_key: str, max_versions: int = 64) -> None:
        if max_versions < 2:
            raise ValueError(f"max_versions={max_versions}: keep at least 2 versions")
        self.subject_key = subject_key
        self.max_versions = max_versions
        self.too_old_count = 0  # events that happened before the folded base or an erasure
        self._lines: dict[str, _Line] = {}
        #: the engine's decision memo (``engine.evaluate``): emptied whenever anything it
        #: could have read changes (a consent, an erasure, a certificate, a contact, a new
        #: controller); what it does not cover (the first message) is part of its key
        self.decisions: dict[Any, list[Any]] = {}
        #: whether ``engine.evaluate`` fills the memo: the checker turns it off for a
        #: history it reads once and frees after the batch, whose memo nobody would read
        self.memoize = True

    def _line(self, controller: str) -> _Line:
        """``controller``'s line, made if new (which empties the decision memo)."""
        line = self._lines.get(controller)
        if line is None:
            line = self._lines[controller] = _Line()
            self.decisions.clear()
        return line

    # -- writing ---------------------------------------------------------------------

    def apply(self, event: ConsentEvent) -> bool:
        """Place ``event`` at its event time; False when it changed nothing.

        False for a duplicate event id, for an event that happened before the folded base
        or before an erasure of that controller (also counted in ``too_old_count``), and for
        a ``join`` (list membership, no consent). An ``erase`` action is :meth:`erase`.
        """
        if event.action is ConsentAction.ERASE:
            return self.erase(event)
        if event.action is ConsentAction.JOIN:
            return False  # list membership, not consent (``checker.members`` keeps it)
        if event.action is ConsentAction.VERIFY:
            return self.note_certificate(event)
        self.decisions.clear()
        line = self._line(event.controller)
        refusal = _note_refusal(line, event)
        if event.event_id in line.ids or event.event_id == line.erased_id:
            return refusal
        entry = ConsentEntry.from_event(event)
        if (line.base_key is not None and _key(entry) <= line.base_key) or (
            line.erased_at_ms is not None and entry.at_ms <= line.erased_at_ms
        ):
            self.too_old_count += 1
            return refusal
        line.insert(entry)
        line.fold(self.max_versions)
        return True

    def erase(self, event: ConsentEvent) -> bool:
        """Drop ``event.controller``'s history up to the erasure; keep its fact and time.

        Consent events that happened after the erasure (a new subscription) stay.
        """
        self.decisions.clear()
        line = self._line(event.controller)
        at = event.occurred_at_ms
        if event.event_id == line.erased_id or (
            line.erased_at_ms is not None and at <= line.erased_at_ms
        ):
            return False
        line.erased_at_ms, line.erased_id = at, event.event_id
        keep = [v for v in line.versions if v.entry.at_ms > at]
        line.versions, line.keys = keep, [v.key for v in keep]
        line.ids = {v.entry.event_id for v in keep}
        line.base, line.base_key = _EMPTY, None
        line.contacts = [c for c in line.contacts if c > at]
        line.calls.forget_through(at)
        if line.first is not None and line.first[0] <= at:
            line.first = None
        line.certificates = {k: r for k, r in line.certificates.items() if r.at_ms > at}
        line.recompute_from(0)
        return True

    def note_certificate(self, event: ConsentEvent) -> bool:
        """Keep a ``verify`` event's result for its certificate and controller (R23); False
        when it changes nothing: no certificate id or no result in it, a result already
        known or older than the one kept, or one at or before an erasure (counted in
        ``too_old_count``)."""
        cert = event.proof.certificate_id if event.proof is not None else None
        status = event.certificate_status
        if not cert or status is None or status is CertificateStatus.CLAIMED:
            return False
        self.decisions.clear()
        line = self._line(event.controller)
        if line.erased_at_ms is not None and event.occurred_at_ms <= line.erased_at_ms:
            self.too_old_count += 1
            return False
        reason = event.attributes.get("certificate_reason")
        result = CertificateResult(
            cert, status, event.occurred_at_ms, event.event_id, str(reason or "")
        )
        known = line.certificates.get(cert)
        if known is not None and (known.event_id == result.event_id or known.order >= result.order):
            return False  # a repeat (the verifier ran twice: same id), or an older result
        line.certificates[cert] = result
        if len(line.certificates) > MAX_CERTIFICATES:
            oldest = min(line.certificates.values(), key=lambda r: r.order)
            del line.certificates[oldest.certificate_id]
        return True

    def note_contact(self, usage: UsageEvent, controller: str | None = None) -> bool:
        """Record a click or reply as the person's last contact with ``controller``.

        ``controller`` defaults to ``usage.controller``; pass the declaration's controller
        when it is known (the platform account may be a broker's). Other kinds (an open,
        a send) are not a contact: False.
        """
        if usage.kind not in CONTACT_KINDS:
            return False
        line = self._line(controller or usage.controller)
        t = usage.occurred_at_ms
        if t in line.contacts or (line.erased_at_ms is not None and t <= line.erased_at_ms):
            return False
        if len(line.contacts) >= MAX_CONTACTS and t < line.contacts[0]:
            return False
        bisect.insort(line.contacts, t)
        del line.contacts[:-MAX_CONTACTS]
        self.decisions.clear()
        return True

    def note_use(self, usage: UsageEvent, declaration: Declaration | None) -> bool:
        """Note what a usage event tells later judgements: a click or reply as a contact
        (R20, :meth:`note_contact`), a sales call as a call attempt (R11). The controller is
        the declaration's, else the platform account's. False when nothing changed."""
        controller = declaration.controller if declaration else None
        contact = self.note_contact(usage, controller)
        first = self._note_first(usage, declaration)
        return self._note_call(usage, declaration) or contact or first

    def _note_first(self, usage: UsageEvent, declaration: Declaration | None) -> bool:
        if usage.kind is not UsageKind.SEND or usage.is_test:
            return False
        line = self._line(declaration.controller if declaration else usage.controller)
        record = (usage.occurred_at_ms, usage.event_id)
        if line.erased_at_ms is not None and record[0] <= line.erased_at_ms:
            return False
        if line.first is not None and line.first <= record:
            return False
        line.first = record
        return True

    def _note_call(self, usage: UsageEvent, declaration: Declaration | None) -> bool:
        if usage.kind is not UsageKind.CALL or usage.is_test:
            return False
        if not is_promotional(usage, declaration):
            return False
        line = self._line(declaration.controller if declaration else usage.controller)
        t = usage.occurred_at_ms
        if line.erased_at_ms is not None and t <= line.erased_at_ms:
            return False
        return line.calls.note_attempt(t, usage.event_id)

    # -- reading ---------------------------------------------------------------------

    def state_at(self, controller: str, t_ms: int, *, allowance_ms: int = 0) -> ConsentState:
        """The consent towards ``controller`` valid at event time ``t_ms``.

        With ``allowance_ms`` > 0, withdrawals that happened less than ``allowance_ms``
        before ``t_ms`` are not yet in effect (the processing allowance of R5); grants,
        refusals and expiries count at once.
        """
        line = self._lines.get(controller)
        if line is None:
            return ConsentState(controller=controller, at_ms=t_ms, status=ConsentStatus.UNKNOWN)
        if allowance_ms > 0:
            cum, approximate = self._cum_at(line, t_ms - allowance_ms)
            start = bisect.bisect_right(line.keys, _probe(t_ms - allowance_ms))
            end = bisect.bisect_right(line.keys, _probe(t_ms))
            for version in line.versions[start:end]:
                if version.entry.action is not ConsentAction.WITHDRAW:
                    cum = cum.step(version.entry)
        else:
            cum, approximate = self._cum_at(line, t_ms)
        if cum.last_action is None and line.erased_at_ms is not None:
            return ConsentState(
                controller=controller,
                at_ms=t_ms,
                status=ConsentStatus.ERASED,
                erased_at_ms=line.erased_at_ms,
                version_id=line.erased_id,
                valid_from_ms=line.erased_at_ms if t_ms >= line.erased_at_ms else None,
            )
        return _state(controller, t_ms, cum, line, approximate=approximate)

    def states_in_force(
        self, controller: str, t_ms: int, allowance_ms: int
    ) -> tuple[ConsentState, ConsentState]:
        """``(state_at(t), state_at(t, allowance_ms=...))``, each computed once.

        The two differ only when a withdrawal falls within the allowance before ``t_ms``
        (or the allowance reaches back past the folded base): otherwise the versions
        stepped are the same, and the one state is returned twice.
        """
        own = self.state_at(controller, t_ms)
        line = self._lines.get(controller)
        if allowance_ms <= 0 or line is None:
            return own, own
        start = bisect.bisect_right(line.keys, _probe(t_ms - allowance_ms))
        end = bisect.bisect_right(line.keys, _probe(t_ms))
        base = line.base_key[0] if line.base_key is not None else None
        approximate_then = start == 0 and base is not None and t_ms - allowance_ms < base
        approximate_now = end == 0 and base is not None and t_ms < base
        if approximate_then == approximate_now and not any(
            v.entry.action is ConsentAction.WITHDRAW for v in line.versions[start:end]
        ):
            return own, own
        return own, self.state_at(controller, t_ms, allowance_ms=allowance_ms)

    @staticmethod
    def _cum_at(line: _Line, t_ms: int) -> tuple[_Cum, bool]:
        index = bisect.bisect_right(line.keys, _probe(t_ms))
        if index > 0:
            return line.versions[index - 1].cum, False
        approximate = line.base_key is not None and t_ms < line.base_key[0]
        return line.base, approximate

    def constant_span(self, t_ms: int, allowance_ms: int) -> tuple[int, int]:
        """``[lo, hi)`` around ``t_ms`` where nothing ``state_at`` and ``states_in_force``
        (with ``allowance_ms``) answer for any controller depends on the time asked but
        ``at_ms``: no version, folded base, expiry, contact or erasure of any line takes
        effect inside it (each is a time ``b`` from which ``t >= b`` holds; with the
        allowance, also ``b + allowance_ms``)."""
        lo, hi = -(2**63), 2**63

        def at(b: int) -> None:
            nonlocal lo, hi
            if b <= t_ms:
                lo = max(lo, b)
            else:
                hi = min(hi, b)

        for line in self._lines.values():
            cums = [line.base]
            for version in line.versions:
                at(version.entry.at_ms)
                at(version.entry.at_ms + allowance_ms)
                cums.append(version.cum)
            if line.base_key is not None:
                at(line.base_key[0])
                at(line.base_key[0] + allowance_ms)
            for cum in cums:
                for entry in cum.entries:
                    if entry.expires_at_ms is not None:
                        at(entry.expires_at_ms)
            for c in line.contacts:
                at(c)
            if line.erased_at_ms is not None:
                at(line.erased_at_ms)
        return lo, hi

    def controllers(self) -> list[str]:
        """Controllers with a consent history, an erasure, a contact, a call or a message,
        sorted."""
        return sorted(self._lines)

    def is_first_message(self, controller: str, t_ms: int, event_id: str) -> bool:
        """Whether message ``event_id`` at ``t_ms`` is the first ``controller`` sent the
        person: no earlier message noted (R15, R18). The message itself may be noted."""
        line = self._lines.get(controller)
        return line is None or line.first is None or (t_ms, event_id) <= line.first

    def certificate(self, controller: str, certificate_id: str) -> CertificateResult | None:
        """The latest verification result of ``certificate_id`` for ``controller`` (R23);
        None while it is only claimed."""
        line = self._lines.get(controller)
        return None if line is None else line.certificates.get(certificate_id)

    def calls_at(self, controller: str, t_ms: int, event_id: str) -> CallsAt:
        """The call records R11 reads for call ``event_id`` at ``t_ms`` (see ``calls``)."""
        line = self._lines.get(controller)
        return CallsAt() if line is None else line.calls.at(t_ms, event_id)

    def states_at(self, t_ms: int) -> dict[str, ConsentState]:
        """Every controller's state at ``t_ms`` (for evidence and second-hop rules)."""
        return {c: self.state_at(c, t_ms) for c in self.controllers()}

    def is_erased(self, controller: str) -> bool:
        line = self._lines.get(controller)
        return line is not None and line.erased_at_ms is not None

    @property
    def subject_count(self) -> int:
        """1 when this history holds anything, else 0 (sum it over a table for metrics)."""
        return 1 if self._lines else 0

    @property
    def version_count(self) -> int:
        """Versions kept over all controllers (folded ones not counted)."""
        n = 0
        for line in self._lines.values():
            n += len(line.versions)
        return n

    # -- serialization -----------------------------------------------------------------

    def to_obj(self) -> dict[str, Any]:
        """A compact, JSON-safe form: only the events; cumulative states are recomputed.

        ``{"v": 3, "s": subject, "c": {controller: {"e": [entry...], "b": base,
        "x": [erased_at, erase_event_id], "k": [contact times], "cl": call log,
        "f": [first message time, event id], "ct": [[certificate id, status, verified at,
        event id, reason]...]}}}``; empty parts omitted. Each entry's dict is made once and
        shared with the history (encode the result; do not change it).
        """
        controllers: dict[str, Any] = {}
        for name, line in self._lines.items():
            obj: dict[str, Any] = {}
            if line.versions:
                obj["e"] = [v.to_obj() for v in line.versions]
            if line.base_key is not None:
                obj["b"] = _base_obj(line.base, line.base_key)
            if line.erased_at_ms is not None:
                obj["x"] = [line.erased_at_ms, line.erased_id]
            if line.contacts:
                obj["k"] = list(line.contacts)
            if line.calls:
                obj["cl"] = line.calls.to_obj()
            if line.first is not None:
                obj["f"] = [line.first[0], line.first[1]]
            if line.certificates:
                obj["ct"] = [
                    [r.certificate_id, str(r.status), r.at_ms, r.event_id, r.reason]
                    for r in sorted(line.certificates.values(), key=lambda r: r.order)
                ]
            controllers[name] = obj
        out: dict[str, Any] = {"v": FORMAT_VERSION, "s": self.subject_key, "c": controllers}
        if self.too_old_count:
            out["o"] = self.too_old_count
        return out

    @classmethod
    def from_obj(cls, obj: dict[str, Any], max_versions: int | None = None) -> ConsentHistory:
        """Rebuild from ``to_obj``; ``InvalidInput('ledger_state')`` when it is not one."""
        try:
            version = obj["v"]
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise InvalidInput(
                    "ledger_state",
                    f"stored consent history has format {version!r}; this code reads up to "
                    f"{FORMAT_VERSION}: upgrade the worker before reading this state",
                )
            history = cls(str(obj["s"]), max_versions or 64)
            history.too_old_count = int(obj.get("o", 0))
            for name, line_obj in obj["c"].items():
                line = _Line()
                if "b" in line_obj:
                    line.base, line.base_key = _base_from(line_obj["b"])
                if "x" in line_obj:
                    line.erased_at_ms, line.erased_id = int(line_obj["x"][0]), line_obj["x"][1]
                if "k" in line_obj:  # else none, as made
                    line.contacts = sorted(int(c) for c in line_obj["k"])
                if "cl" in line_obj:  # else an empty log, as made
                    line.calls = CallLog.from_obj(line_obj["cl"])
                if "f" in line_obj:
                    line.first = (int(line_obj["f"][0]), str(line_obj["f"][1]))
                for cert, status, at, event_id, reason in line_obj.get("ct", ()):
                    line.certificates[str(cert)] = CertificateResult(
                        str(cert), CertificateStatus(status), int(at), str(event_id), str(reason)
                    )
                # An entry written in this format is its own stored form (``_entry_obj`` of
                # what it decodes to, see ``_entry_from``): kept, so writing the history
                # again (a first message, a contact, a call noted) re-encodes no entry.
                # Older formats are written again from the decoded entry, as before.
                current = version == FORMAT_VERSION
                line.versions = sorted(
                    (
                        _Version(_key(entry), entry, _EMPTY, e if current else None)
                        for e in line_obj.get("e", ())
                        for entry in (_entry_from(e),)
                    ),
                    key=lambda v: v.key,
                )
                line.keys = [v.key for v in line.versions]
                line.ids = {v.entry.event_id for v in line.versions}
                line.recompute_from(0)
                line.fold(history.max_versions)
                history._lines[str(name)] = line
            return history
        except InvalidInput:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InvalidInput(
                "ledger_state",
                f"stored consent history is not readable ({type(exc).__name__}: {exc}); "
                f"rebuild the ledger from the consent topic",
            ) from None


# -- compact encoding --------------------------------------------------------------------

_PROOF_KEYS = (
    ("m", "method"),
    ("ca", "collected_at_ms"),
    ("cp", "collection_point"),
    ("nv", "notice_version"),
    ("th", "text_hash"),
    ("ih", "ip_hash"),
    ("ci", "certificate_id"),
    ("vr", "vendor_receipt"),
    ("rr", "record_ref"),
)


def _entry_obj(entry: ConsentEntry) -> dict[str, Any]:
    # Sorted items as tuples (encoded as the same JSON arrays as lists): a tuple of strings
    # leaves the garbage collector's sight at its first collection, and the entry's dict is
    # kept with the history (``_Version.stored``) as long as it is cached.
    obj: dict[str, Any] = {"i": entry.event_id, "t": entry.at_ms, "a": str(entry.action)}
    if not entry.all_purposes:  # absent = all purposes
        obj["p"] = tuple(sorted(entry.purposes))
    if not entry.all_channels:  # absent = all channels
        obj["c"] = tuple(sorted(entry.channels))
    if entry.recipients:
        obj["r"] = tuple(sorted(entry.recipients))
    if entry.collected_by is not None:
        obj["cb"] = entry.collected_by
    if entry.legal_basis is not LegalBasis.CONSENT:
        obj["lb"] = str(entry.legal_basis)
    if entry.scope is not None:
        obj["sc"] = entry.scope
    proof = entry.proof
    if proof is not None:
        pf: dict[str, Any] = {}
        for short, name in _PROOF_KEYS:
            value = getattr(proof, name)
            if value is not None:
                pf[short] = value
        obj["pf"] = pf
    if entry.expires_at_ms is not None:
        obj["ex"] = entry.expires_at_ms
    if entry.unmapped:
        obj["u"] = tuple(sorted(entry.unmapped))
    if entry.gpc:
        obj["gp"] = True
    return obj


#: Stored values -> members (a dict lookup is several times cheaper than ``Enum(value)``;
#: an unknown value is a KeyError, which ``from_obj`` reports as an unreadable state).
_ACTIONS = {a.value: a for a in ConsentAction}
_BASES = {b.value: b for b in LegalBasis}
#: An entry's stored lists of items (purposes, channels, recipients, unmapped purposes).
_ITEM_KEYS = ("p", "c", "r", "u")


def _entry_from(obj: dict[str, Any]) -> ConsentEntry:
    """The entry ``obj`` stores. Its item lists become tuples in ``obj`` (same JSON; a
    tuple of strings leaves the garbage collector's sight, as ``_entry_obj``'s do), so
    ``obj`` can be kept as the entry's stored form."""
    proof = None
    if "pf" in obj:
        proof = Proof(
            **{name: obj["pf"][short] for short, name in _PROOF_KEYS if short in obj["pf"]}
        )
    for items in _ITEM_KEYS:
        if items in obj:
            obj[items] = tuple(obj[items])
    get = obj.get
    return _new_entry(  # the fields in order, as ``ConsentEntry.from_event``
        str(obj["i"]),
        int(obj["t"]),
        _ACTIONS[obj["a"]],
        _shared_set(get("p", ())),
        "p" not in obj,
        _shared_set(get("c", ())),
        "c" not in obj,
        _shared_set(get("r", ())),
        get("cb"),
        _BASES[get("lb", "consent")],
        get("sc"),
        proof,
        get("ex"),
        _shared_set(get("u", ())),
        bool(get("gp", False)),
    )


def _base_obj(base: _Cum, key: _Key) -> dict[str, Any]:
    obj: dict[str, Any] = {"k": list(key), "e": [_entry_obj(e) for e in base.entries]}
    if base.last_action is not None:
        obj["la"] = str(base.last_action)
    if base.withdrawn_at_ms is not None:
        obj["w"] = base.withdrawn_at_ms
    if base.last_grant_ms is not None:
        obj["g"] = base.last_grant_ms
    return obj


def _base_from(obj: dict[str, Any]) -> tuple[_Cum, _Key]:
    t, rank, event_id = obj["k"]
    key: _Key = (int(t), int(rank), str(event_id))
    base = _Cum(
        entries=tuple(_entry_from(e) for e in obj.get("e", ())),
        last_action=_ACTIONS[obj["la"]] if "la" in obj else None,
        last_id=key[2],
        last_at_ms=key[0],
        withdrawn_at_ms=obj.get("w"),
        last_grant_ms=obj.get("g"),
    )
    return base, key
