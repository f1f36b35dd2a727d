"""List-level sends ("fan-out" uses): never a subject; expanded per member, per partition.

A platform that reports one event per campaign (Mailchimp's ``campaign`` webhook) names no
recipient: its connector writes ONE usage event whose subject key is a fan-out key for the
list and whose attribute ``fan_out`` says so (``"list"``). That key is nobody: the checker
never judges it, holds it, or writes a ledger entry for it.

Members are spread over every partition, so the checker expands the send in two hops:

1. the list-level use (in the partition its fan-out key hashes to) is re-published once
   to EVERY partition of the usage topic as a *leg* (attribute ``fan_out_partition`` = the
   partition; message key = the fan-out key plus a suffix that hashes there, see
   ``leg_key``). The legs are outputs of the batch like verdicts: acknowledged before the
   list-level record is committed, so a crash repeats them, never loses one;
2. each leg waits in its partition until the consent written before it is read (see
   "legs waiting" below), then is expanded there against that partition's membership index
   (``members.MembershipIndex``): one use per member, with a deterministic event id
   (``member_event_id``: the campaign's event id and the member's subject key), judged
   exactly like a use the platform had reported for that member. A redelivery gives the
   same ids, which the holds recognise as repeats. Non-members get nothing.

Why the worker re-publishes rather than the connector writing to every partition: only
the checker knows the partition count it runs with, every connector (and the file import,
and a replay of the usage topic) gets the expansion for free, and the usage topic keeps
the one record the platform sent.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

from consentinel.streams.events import codec
from consentinel.streams.events.partitioning import partition_for
from consentinel.streams.events.records import UsageEvent

#: On a list-level use: what it fans out to (``"list"``: the members of ``list_id``).
FAN_OUT = "fan_out"
#: On a leg: the partition it is to be expanded in.
LEG = "fan_out_partition"
#: On a member's use: the event id of the list-level use it was expanded from.
OF = "fan_out_of"


def is_fan_out(usage: UsageEvent) -> bool:
    """Whether ``usage`` is a list-level use (or one of its legs): never a subject's."""
    return usage.attributes.get(FAN_OUT) not in (None, "", False)


def leg_partition(usage: UsageEvent) -> int | None:
    """The partition a leg is for; ``None`` for the list-level use itself."""
    value = usage.attributes.get(LEG)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def list_ref(processor: str, controller: str, list_id: str) -> str:
    """The identity of a list in the membership index: platform, controller, list id.

    The platform (connector type), not the instance name: a webhook instance and the CSV
    import of the same audience name the same list."""
    return "\x1f".join((processor, controller, list_id))


def usage_list_ref(usage: UsageEvent) -> str | None:
    """The list a list-level use goes to, or ``None`` (no list id: nothing to expand)."""
    if usage.attributes.get(FAN_OUT) != "list" or not usage.list_id:
        return None
    return list_ref(usage.processor, usage.controller, usage.list_id)


@functools.lru_cache(maxsize=4096)
def leg_key(fan_out_key: str, partition: int, partitions: int) -> bytes:
    """A message key that Kafka's default partitioner puts in ``partition``: the fan-out
    key and the first ``/n`` suffix that hashes there (a few tries per partition)."""
    n = 0
    while True:
        key = f"{fan_out_key}/{n}".encode("ascii")
        if partition_for(key, partitions) == partition:
            return key
        n += 1


def leg(usage: UsageEvent, partition: int) -> UsageEvent:
    """The copy of a list-level use to expand in ``partition``."""
    return dataclasses.replace(usage, attributes={**usage.attributes, LEG: partition})


def member_event_id(event_id: str, subject_key: str) -> str:
    """The event id of a member's use: the same for every redelivery of the campaign."""
    digest = hashlib.sha256(f"{event_id}\x1f{subject_key}".encode()).hexdigest()
    return f"fan:{digest[:40]}"


def member_use(usage: UsageEvent, subject_key: str, hint: str) -> UsageEvent:
    """The use of one member's address by the list-level use ``usage``."""
    attributes = {k: v for k, v in usage.attributes.items() if k not in (FAN_OUT, LEG)}
    attributes[OF] = usage.event_id
    return dataclasses.replace(
        usage,
        event_id=member_event_id(usage.event_id, subject_key),
        subject_key=subject_key,
        hint=hint,
        attributes=attributes,
    )


# -- legs waiting for their partition's consent ------------------------------------------
#
# Consent and usage are separate topics: a leg can be read before consent produced earlier
# in its partition (a subscription, a withdrawal). So a leg waits, like a use without
# consent, until a tick made after its deadline (read time + the grace period) finds the
# partition's consent read up to that tick's end offsets; then it is expanded. Waiting legs
# live beside the consent histories in the ledger table (``waiting_key``), so a restart
# finds them.

#: the ledger keys of the legs waiting to be expanded start with it (a subject key, a hex
#: digest, never does): a store in key order lists them without reading the histories
WAITING_PREFIX = b"f:"


def waiting_key(fan_out_key: str, partition: int, partitions: int) -> bytes:
    """The ledger-table key of the legs of one list waiting in ``partition``."""
    return WAITING_PREFIX + leg_key(fan_out_key, partition, partitions)


def is_waiting_key(key: bytes) -> bool:
    return key.startswith(WAITING_PREFIX)


def waiting_from(raw: bytes | None) -> list[tuple[int, UsageEvent]]:
    """(deadline, leg) of the legs stored under one key."""
    if not raw:
        return []
    return [(int(d), codec.from_obj(UsageEvent, u)) for d, u in codec.loads(raw)]


def waiting_to(legs: list[tuple[int, UsageEvent]]) -> bytes | None:
    if not legs:
        return None
    raw: bytes = codec.dumps([[d, codec.to_obj(u)] for d, u in legs])
    return raw


def next_due(legs: list[tuple[int, UsageEvent]]) -> int | None:
    return min((d for d, _ in legs), default=None)
