"""List membership: per subject, the lists it is on; per partition, each list's members.

Membership comes from the consent events that name a list in ``scope`` (Mailchimp,
Brevo, Mailjet put the list id there): a grant scoped to a list joins it, and so does a
``join`` (membership without consent: an operator imported a file into the list; the
consent history ignores it, so a campaign to the list is judged against no consent); a
withdrawal, refusal or expiry scoped to it leaves it (the platform unsubscribed, cleaned
or replaced the address, so it sends nothing there any more); an erasure leaves every
list of its controller. A consent event without a scope (a preference centre, a CMP)
changes no membership: the platform still has the address on its list, and a campaign to
the list is judged against the consent in force, which that event may have withdrawn.
That is the case to catch.

A list is named by ``fanout.list_ref`` (platform, controller, list id). Events are
applied in event time per list: one that happened before the last one applied for that
list changes nothing. Each membership is a span (joined at, left at): a campaign reaches
those on the list when it was sent, even one who left right after it (an unsubscribe
from that very campaign) before it was expanded. A list left is remembered
``LEFT_KEPT_MS``; a subject is remembered on at most ``MAX_LISTS`` lists (lists left
first, then the oldest joined), so the state stays bounded.

State: one record per subject beside its consent history in the ledger table, under
``m:`` + the subject key (``member_key``), so it has the ledger's changelog and survives
a restart. The per-partition index (``MembershipIndex``) is in memory only: a partition
newly assigned is built once from its table, then kept up to date as events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from consentinel.streams.checker.fanout import list_ref
from consentinel.streams.events import codec
from consentinel.streams.events.records import ConsentAction, ConsentEvent

#: The actions that put a subject on the list in their scope.
_JOINS = frozenset({ConsentAction.GRANT, ConsentAction.JOIN})
#: Lists a subject is remembered on, at most.
MAX_LISTS = 64
#: the ledger keys of the memberships start with it (a subject key, a hex digest, never
#: does): a store in key order lists them without reading the histories
MEMBER_PREFIX = b"m:"


def member_key(subject_message_key: bytes) -> bytes:
    """The ledger-table key of a subject's memberships."""
    return MEMBER_PREFIX + subject_message_key


def is_member_key(key: bytes) -> bool:
    return key.startswith(MEMBER_PREFIX)


#: How long a list left is remembered (a campaign sent before the member left, expanded
#: after: the grace period and a tick later, must still reach them).
LEFT_KEPT_MS = 7 * 86_400_000

#: A membership: (joined at, left at or None), event times.
Span = tuple[int, int | None]


def on_at(span: Span, t_ms: int) -> bool:
    """Whether the subject was on the list at ``t_ms``."""
    joined, left = span
    return joined <= t_ms and (left is None or left > t_ms)


@dataclass
class Memberships:
    """One subject's lists: list ref -> (joined at, left at or None)."""

    hint: str
    lists: dict[str, Span] = field(default_factory=dict)

    def spans(self) -> Iterator[tuple[str, Span]]:
        return iter(self.lists.items())

    def joined(self) -> Iterator[tuple[str, int]]:
        """(list ref, joined at) of the lists the subject is on now."""
        return ((ref, j) for ref, (j, left) in self.lists.items() if left is None)

    def to_bytes(self) -> bytes | None:
        """The record to store; ``None`` (delete it) when it remembers no list."""
        if not self.lists:
            return None
        lists = {ref: [j, left] for ref, (j, left) in self.lists.items()}
        raw: bytes = codec.dumps({"h": self.hint, "l": lists})
        return raw

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Memberships | None:
        if not raw:
            return None
        obj = codec.loads(raw)
        lists: dict[str, Span] = {
            str(ref): (int(j), None if left is None else int(left))
            for ref, (j, left) in obj.get("l", {}).items()
        }
        return cls(str(obj.get("h", "")), lists)


def apply(current: Memberships | None, event: ConsentEvent) -> tuple[bool, Memberships | None]:
    """(changed, the memberships after ``event``). Pure; ``current`` is not modified."""
    if event.action is ConsentAction.ERASE:  # the controller's lists, like its history
        if current is None:
            return False, None
        mine = f"\x1f{event.controller}\x1f"
        kept = {r: span for r, span in current.lists.items() if mine not in r}
        if len(kept) == len(current.lists):
            return False, current
        return True, Memberships(current.hint, kept) if kept else None
    if not event.scope:
        return False, current
    ref = list_ref(event.processor, event.controller, event.scope)
    t = event.occurred_at_ms
    known = current.lists.get(ref) if current is not None else None
    if known is not None and t < (known[1] if known[1] is not None else known[0]):
        return False, current  # an older event, reported late: the later one stands
    joins = event.action in _JOINS
    if joins:
        if known is not None and known[1] is None:
            return False, current  # on the list already
        span: Span = (t, None)
    elif known is None or known[1] is not None:
        return False, current  # leaving a list it is not on
    else:
        span = (known[0], t)
    lists = dict(current.lists) if current is not None else {}
    lists[ref] = span
    for r, (_, left) in list(lists.items()):
        if left is not None and left < t - LEFT_KEPT_MS:
            del lists[r]
    while len(lists) > MAX_LISTS:  # lists left first, then the oldest joined
        del lists[min(lists, key=lambda r: (lists[r][1] is None, lists[r][0]))]
    hint = event.hint if current is None or joins else current.hint
    changed = current is None or lists != current.lists or hint != current.hint
    return changed, Memberships(hint, lists) if lists else None


class MembershipIndex:
    """Per partition: list ref -> {subject key: (span, hint)}. Blocks on nothing."""

    def __init__(self) -> None:
        self._lists: dict[int, dict[str, dict[str, tuple[Span, str]]]] = {}

    def built(self, partition: int) -> bool:
        return partition in self._lists

    def build(self, partition: int, entries: Iterable[tuple[str, Memberships | None]]) -> None:
        """Index the (subject key, memberships) read from the partition's table."""
        self._lists[partition] = {}
        for subject, memberships in entries:
            self.set(partition, subject, None, memberships)

    def set(
        self, partition: int, subject: str, before: Memberships | None, after: Memberships | None
    ) -> None:
        """Move ``subject`` from the lists of ``before`` to those of ``after`` (no-op for a
        partition not built: its table has the change, read when it is built)."""
        index = self._lists.get(partition)
        if index is None:
            return
        if before is not None:
            for ref, _ in before.spans():
                members = index.get(ref)
                if members is not None:
                    members.pop(subject, None)
                    if not members:
                        del index[ref]
        if after is not None:
            for ref, span in after.spans():
                index.setdefault(ref, {})[subject] = (span, after.hint)

    def members(self, partition: int, ref: str, at_ms: int) -> list[tuple[str, str]]:
        """(subject key, hint) of those on ``ref`` at ``at_ms``, sorted."""
        members = self._lists.get(partition, {}).get(ref, {})
        return sorted((s, hint) for s, (span, hint) in members.items() if on_at(span, at_ms))

    def forget(self) -> None:
        self._lists.clear()
