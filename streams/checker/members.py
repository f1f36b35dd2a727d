"""List membership: per subject, the lists it is on; per partition, each list's members.

Membership comes from the consent events that name a list in ``scope`` (Mailchimp,
Brevo, Mailjet put the list id there): a grant scoped to a list joins it; a withdrawal,
refusal or expiry scoped to it leaves it (the platform unsubscribed, cleaned or replaced
the address, so it sends nothing there any more); an erasure leaves every list. A consent
event without a scope (a preference centre, a CMP) changes no membership: the platform
still has the address on its list, and a campaign to the list is judged against the
consent in force, which that event may have withdrawn. That is the case to catch.

A list is named by ``fanout.list_ref`` (platform, controller, list id). Events are
applied in event time per list: one that happened before the last one applied for that
list changes nothing. A subject is on at most ``MAX_LISTS`` lists (the least recently
changed are forgotten first), so the state stays bounded.

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

#: Lists a subject is remembered on, at most.
MAX_LISTS = 64
_PREFIX = b"m:"


def member_key(subject_message_key: bytes) -> bytes:
    """The ledger-table key of a subject's memberships."""
    return _PREFIX + subject_message_key


def is_member_key(key: bytes) -> bool:
    return key.startswith(_PREFIX)


@dataclass
class Memberships:
    """One subject's lists: list ref -> (on the list, event time of the last change)."""

    hint: str
    lists: dict[str, tuple[bool, int]] = field(default_factory=dict)

    def joined(self) -> Iterator[tuple[str, int]]:
        """(list ref, joined at) of the lists the subject is on."""
        return ((ref, at) for ref, (on, at) in self.lists.items() if on)

    def to_bytes(self) -> bytes | None:
        """The record to store; ``None`` (delete it) when the subject is on no list."""
        if not any(on for on, _ in self.lists.values()):
            return None
        lists = {ref: [1 if on else 0, at] for ref, (on, at) in self.lists.items()}
        raw: bytes = codec.dumps({"h": self.hint, "l": lists})
        return raw

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Memberships | None:
        if not raw:
            return None
        obj = codec.loads(raw)
        lists = {str(ref): (bool(on), int(at)) for ref, (on, at) in obj.get("l", {}).items()}
        return cls(str(obj.get("h", "")), lists)


def apply(current: Memberships | None, event: ConsentEvent) -> tuple[bool, Memberships | None]:
    """(changed, the memberships after ``event``). Pure; ``current`` is not modified."""
    if event.action is ConsentAction.ERASE:
        return current is not None, None
    if not event.scope:
        return False, current
    ref = list_ref(event.processor, event.controller, event.scope)
    joins = event.action is ConsentAction.GRANT
    known = current.lists.get(ref) if current is not None else None
    if known is not None and known[1] > event.occurred_at_ms:
        return False, current  # an older event, reported late: the later one stands
    if known is None and not joins:
        return False, current  # leaving a list it was never seen on
    lists = dict(current.lists) if current is not None else {}
    lists[ref] = (joins, event.occurred_at_ms)
    while len(lists) > MAX_LISTS:
        del lists[min(lists, key=lambda r: (lists[r][0], lists[r][1]))]  # left first, oldest
    hint = event.hint if joins or current is None else current.hint
    return True, Memberships(hint, lists)


class MembershipIndex:
    """Per partition: list ref -> {subject key: (joined at, hint)}. Blocks on nothing."""

    def __init__(self) -> None:
        self._lists: dict[int, dict[str, dict[str, tuple[int, str]]]] = {}

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
            for ref, _ in before.joined():
                members = index.get(ref)
                if members is not None:
                    members.pop(subject, None)
                    if not members:
                        del index[ref]
        if after is not None:
            for ref, at in after.joined():
                index.setdefault(ref, {})[subject] = (at, after.hint)

    def members(self, partition: int, ref: str, at_ms: int) -> list[tuple[str, str]]:
        """(subject key, hint) of the members of ``ref`` who joined by ``at_ms``, sorted."""
        members = self._lists.get(partition, {}).get(ref, {})
        return sorted((s, hint) for s, (joined, hint) in members.items() if joined <= at_ms)

    def forget(self) -> None:
        self._lists.clear()
