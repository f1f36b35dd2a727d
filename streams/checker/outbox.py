"""A batch's outputs kept in the checker's state until Kafka has them (an outbox).

Why: a batch's verdicts and alerts must never be seen by Kafka's readers unless the state
that decided them is durable. Otherwise a crash in between replays the batch against the
state as it was before it, and the replay may decide differently: Faust interleaves the
consent, usage and tick topics as their fetches return, so the replay can read a consent
before a use that the first run read after it. The first run's alert then stays firing
with no state behind it that could ever resolve it (seen in the differential test with
SIGKILLs, 2026-12).

So a batch's outputs are written INTO its state, in the holds table under a key of their
own (``key``: one of ``SLOTS`` slots per partition), in the same write as the state they
came from (first in it: one RocksDB write batch, and the first record of the batch's
changelog records of that partition). Only once Kafka acknowledged that write are the
outputs sent; once they are acknowledged, the slot is deleted. After a crash the state
knows every use decided (a replay skips it, as any redelivery), and the outputs of every
slot still written are sent again (``Processor``: on the first batch of a partition newly
assigned), under the same ids, so nothing is decided twice and nothing is lost.

A slot's value: a sequence number, then for each output its topic, key (absent or bytes)
and value, framed with their lengths (``encode``/``read``). Slots are reused lowest
first, so the sequence number, not the slot, says which batch came first: after a crash
the slots are sent again in that order, so a correction sent before the crash is repeated
after the first decision it corrected, never before it (a reader that keeps the last
verdict of a use keeps the right one). Pure: no Kafka, no Faust.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from consentinel.streams.events.errors import InvalidInput

Output = tuple[str, bytes | None, bytes]

#: Bytes of outputs per slot, at most (one changelog record each: Kafka refuses records
#: over 1 MiB; a batch of 1,000 uses gives over 1 MiB of verdicts and alerts), except a
#: single output larger than that, alone in its slot.
SLOT_BYTES = 240 * 1024
#: Slots per partition: more than the batches a partition can have in flight at once
#: (``processor.MAX_IN_FLIGHT`` + 1, some in several slots: a large list expanded gives
#: parts of up to ``processor.EXPAND_PART`` verdicts and their alerts), and the slots
#: found after a restart being sent again. A partition newly assigned reads each once.
SLOTS = 1024
PREFIX = b"o:"
_MAGIC = b"O2"
_SEQ = struct.Struct(">q")
_HEAD = struct.Struct(">Hii")  # topic length, key length (-1: no key), value length


def key(partition: int, slot: int) -> bytes:
    """The holds-table key of one slot of ``partition`` (never a subject key: those are hex)."""
    return b"o:%d:%d" % (partition, slot)


def is_outbox_key(table_key: bytes) -> bool:
    return table_key.startswith(PREFIX)


def encode(outputs: Sequence[Output], seq: int = 0) -> bytes:
    """One slot's value (see ``chunks`` for outputs that may not fit one)."""
    return _MAGIC + _SEQ.pack(seq) + b"".join(_frames(outputs))


def chunks(outputs: Sequence[Output], seq: int = 0, limit: int = SLOT_BYTES) -> list[bytes]:
    """The values of the slots ``outputs`` need, in order, each of at most ``limit`` bytes
    of outputs (an output larger than that alone in its slot), numbered ``seq``,
    ``seq + 1``..."""
    out: list[bytes] = []
    frames = _frames(outputs)
    current: list[bytes] = []
    size = 0
    for i in range(0, len(frames), 4):  # head, topic, key, value
        n = len(frames[i]) + len(frames[i + 1]) + len(frames[i + 2]) + len(frames[i + 3])
        if size and size + n > limit:
            out.append(_MAGIC + _SEQ.pack(seq + len(out)) + b"".join(current))
            current, size = [], 0
        current.extend(frames[i : i + 4])
        size += n
    if size:
        out.append(_MAGIC + _SEQ.pack(seq + len(out)) + b"".join(current))
    return out


def _frames(outputs: Sequence[Output]) -> list[bytes]:
    """Four parts per output: its lengths, topic, key (or b"") and value."""
    parts: list[bytes] = []
    pack = _HEAD.pack
    for topic, k, value in outputs:
        t = topic.encode("utf-8")
        parts.append(pack(len(t), -1 if k is None else len(k), len(value)))
        parts.append(t)
        parts.append(b"" if k is None else k)
        parts.append(value)
    return parts


def decode(raw: bytes) -> list[Output]:
    """The outputs of one slot's value; InvalidInput if it is not one (never a crash)."""
    return read(raw)[1]


def read(raw: bytes) -> tuple[int, list[Output]]:
    """The sequence number and the outputs of one slot's value; InvalidInput if it is not
    one (never a crash)."""
    if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + _SEQ.size:
        raise InvalidInput("outbox_format", "an outbox value this version cannot read")
    (seq,) = _SEQ.unpack_from(raw, len(_MAGIC))
    out: list[Output] = []
    at, end, size = len(_MAGIC) + _SEQ.size, len(raw), _HEAD.size
    try:
        while at < end:
            n_topic, n_key, n_value = _HEAD.unpack_from(raw, at)
            at += size
            topic = raw[at : at + n_topic].decode("utf-8")
            at += n_topic
            k = None
            if n_key >= 0:
                k = raw[at : at + n_key]
                at += n_key
            value = raw[at : at + n_value]
            at += n_value
            if at > end or n_value < 0:
                raise ValueError("truncated")
            out.append((topic, k, value))
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(
            "outbox_format", f"an outbox value that does not decode ({exc})"
        ) from None
    return seq, out


class Slots:
    """Which slots of each partition hold outputs not yet acknowledged (in this process).

    ``take`` gives the lowest free slot of a partition; ``free`` gives it back once its
    outputs are acknowledged and its deletion written. Kept across rebalances: a batch in
    flight keeps its slots until it is finished."""

    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        self._busy: dict[int, set[int]] = {}

    def busy(self, partition: int, slot: int) -> bool:
        return slot in self._busy.get(partition, ())

    def hold(self, partition: int, slot: int) -> None:
        """Mark ``slot`` as in use (a slot found written after a restart, being sent again)."""
        self._busy.setdefault(partition, set()).add(slot)

    def take(self, partition: int) -> int:
        busy = self._busy.setdefault(partition, set())
        for slot in range(self.slots):
            if slot not in busy:
                busy.add(slot)
                return slot
        # more batches in flight than slots: the in-flight bound was raised without SLOTS
        raise RuntimeError(f"every outbox slot of partition {partition} is in use")

    def free(self, partition: int, slot: int) -> None:
        self._busy.get(partition, set()).discard(slot)
