"""The one adapter between the differential harness and the checker's pure core.

``run`` feeds a generated history, in arrival order, to the checker in-process: the
``Processor`` with plain dict tables, a fake producer that acknowledges at once, and a
simulated clock. Before each event, when the simulated time has moved on by a tick
interval, one tick record (carrying the consent end offset, as the worker's ticker does)
lets the processor decide the uses whose grace period has passed. At the end, time is
moved past every deadline. What comes out are the verdicts and alerts the checker sent, in
order.

When the checker's API changes (issue #9), re-point this module only: the harness needs
``run(history, settings) -> Outputs``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor, subject_of
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import Alert, ConsentEvent, Verdict
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings

if TYPE_CHECKING:  # loaded by path beside this module (no tests/__init__.py)
    from generator import History

PARTITIONS = 2
NAMES = Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter")


@dataclass
class Outputs:
    """What the checker sent, in order."""

    verdicts: list[Verdict] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    deadletters: int = 0


@dataclass
class _Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _Producer:
    def __init__(self, out: Outputs) -> None:
        self.out = out
        #: what the checker re-published to the usage topic (a list-level send's legs)
        self.legs: list[tuple[bytes, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        if topic == NAMES.usage and key is not None:
            self.legs.append((key, value))
        elif topic == NAMES.verdicts:
            self.out.verdicts.append(codec.decode(Verdict, value))
        elif topic == NAMES.alerts:
            self.out.alerts.append(codec.decode(Alert, value))
        else:
            self.out.deadletters += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def policy(grace_ms: int) -> PolicySettings:
    return PolicySettings(grace_ms=grace_ms)


async def _run(history: History, grace_ms: int, tick_ms: int) -> Outputs:
    out = Outputs()
    tables: dict[str, dict[bytes, bytes]] = {"ledger": {}, "holds": {}, "stats": {}}
    decls = {d.decl_id: d for d in history.declarations}
    now = [0]
    producer = _Producer(out)
    offsets = {(t, p): 0 for t in ("consent", "usage", "tick") for p in range(PARTITIONS)}
    proc = Processor(
        judge=Judge(policy(grace_ms), decls.get),
        names=NAMES,
        partitions=PARTITIONS,
        ledger=tables["ledger"],
        holds=tables["holds"],
        stats=tables["stats"],
        send=producer.send,
        scan=lambda table, p, prefix: [
            (k, v)
            for k, v in list(table.items())
            if k.startswith(prefix) and partition_for(subject_of(k), PARTITIONS) == p
        ],
        ticks=TickClock(lambda p: None),
        sealer=Sealer(b"k" * 32),
        clock=lambda: now[0],
    )

    async def feed(topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] = offset + 1
        await proc.handle(_Rec(topic, partition, offset, key, value))
        while producer.legs:  # re-published records are read back, in their partition
            leg_key, leg = producer.legs.pop(0)
            await feed(
                topic="usage", partition=partition_for(leg_key, PARTITIONS), key=leg_key, value=leg
            )

    async def tick(t_ms: int) -> None:
        for p in range(PARTITIONS):
            value = Tick(t_ms, offsets[("consent", p)]).encode()
            await feed("tick", p, None, value)

    last_tick = None
    for arrival in history.arrivals:
        now[0] = arrival.at_ms
        if last_tick is None or arrival.at_ms - last_tick >= tick_ms:
            await tick(arrival.at_ms)
            last_tick = arrival.at_ms
        event = arrival.event
        key = subject_message_key(event.subject_key)
        topic = "consent" if isinstance(event, ConsentEvent) else "usage"
        await feed(topic, partition_for(key, PARTITIONS), key, codec.encode(event))
    now[0] += 2 * max(grace_ms, policy(grace_ms).certificate_wait_ms) + tick_ms
    await tick(now[0])
    return out


def run(history: History, grace_ms: int = 120_000, tick_ms: int = 30_000) -> Outputs:
    """Feed ``history`` to the checker's pure core; returns what it sent.

    Blocks until every event is handled (no I/O: an event loop of its own). Raises what the
    checker raises (it dead-letters bad records itself; ``Outputs.deadletters`` counts them).
    """
    return asyncio.run(_run(history, grace_ms, tick_ms))
