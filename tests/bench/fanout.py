"""How fast the checker expands and judges a list-level send, in process (no broker).

The processor over dict tables with a producer that acknowledges at once, one partition:
N members subscribe (a grant scoped to the list; every tenth withdrew everywhere later),
then the campaign's leg is expanded at a tick. Printed: members judged per second by
the expansion, and, for comparison, the same N uses reported one per member (what a
platform naming each recipient gives) handed in batches of 1,000, the checker's normal
path. Run: ``.venv/bin/python tests/bench/fanout.py [N ...]`` (default 10000 100000).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sys
import time
from typing import Any

from consentinel.streams.checker import fanout
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    Proof,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings
from own_code import Rec

T0 = 1_767_225_600_000
DAY = 86_400_000
LIST = "bench-list"
DECL = Declaration(f"list:{LIST}", "list", LIST, "le-quotidien", "marketing.direct", Channel.EMAIL)
PROOF = Proof(method="double_opt_in", collected_at_ms=T0 - 60 * DAY, notice_version="3")


def processor() -> tuple[Processor, list[int]]:
    sent = [0]

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        sent[0] += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    proc = Processor(
        judge=Judge(PolicySettings(grace_ms=60_000), {DECL.decl_id: DECL}.get),
        names=Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter"),
        partitions=1,
        ledger={},
        holds={},
        stats={},
        send=send,
        scan=lambda table, p: list(table.items()),
        ticks=TickClock(lambda p: 10**9),
        sealer=Sealer(b"k" * 32),
        clock=lambda: T0 + DAY,
    )
    return proc, sent


def consents(n: int) -> list[ConsentEvent]:
    out = []
    for i in range(n):
        base = ConsentEvent(
            event_id=f"c:{i}",
            occurred_at_ms=T0 - 60 * DAY,
            received_at_ms=T0,
            source="mailchimp-bench",
            processor="mailchimp",
            subject_key=f"{i:064x}",
            hint="m***@x.test",
            controller="le-quotidien",
            action=ConsentAction.GRANT,
            purposes=["marketing.direct"],
            channels=[Channel.EMAIL],
            proof=PROOF,
            scope=LIST,
        )
        out.append(base)
        if i % 10 == 0:
            out.append(
                dataclasses.replace(
                    base,
                    event_id=f"w:{i}",
                    occurred_at_ms=T0 - 30 * DAY,
                    action=ConsentAction.WITHDRAW,
                    purposes=[],
                    channels=[],
                    proof=None,
                    scope=None,
                )
            )
    return out


CAMPAIGN = UsageEvent(
    event_id="mc:bench-campaign",
    occurred_at_ms=T0,
    received_at_ms=T0,
    source="mailchimp-bench",
    processor="mailchimp",
    channel=Channel.EMAIL,
    kind=UsageKind.SEND,
    subject_key="f" * 64,
    hint=f"* (list {LIST})",
    controller="le-quotidien",
    campaign_id="bench",
    list_id=LIST,
    attributes={"fan_out": "list"},
)


async def feed(proc: Processor, topic: str, values: list[bytes], offsets: Any) -> None:
    for i in range(0, len(values), 1000):
        batch = [Rec(topic, 0, next(offsets), None, v) for v in values[i : i + 1000]]
        await proc.submit_batch(batch)
    await proc.drain()


async def run(n: int) -> None:
    offsets = itertools.count()
    events = [codec.encode(c) for c in consents(n)]
    # the list-level send, expanded
    proc, sent = processor()
    await feed(proc, "consent", events, offsets)
    leg = codec.encode(fanout.leg(CAMPAIGN, 0))
    await proc.handle(Rec("usage", 0, next(offsets), None, leg))
    start = time.perf_counter()
    await proc.handle(Rec("tick", 0, next(offsets), None, Tick(T0 + 3 * DAY, 0).encode()))
    fan = time.perf_counter() - start
    expanded = sent[0]
    # the same uses, one record per member (the normal path)
    proc, sent = processor()
    await feed(proc, "consent", events, offsets)
    uses = [codec.encode(fanout.member_use(CAMPAIGN, f"{i:064x}", "m***@x.test")) for i in range(n)]
    start = time.perf_counter()
    await feed(proc, "usage", uses, offsets)
    normal = time.perf_counter() - start
    print(
        f"N={n:>8}: list-level send expanded and judged in {fan:.2f} s "
        f"({n / fan:,.0f} members/s, {expanded} outputs); one use per member in batches "
        f"of 1000: {normal:.2f} s ({n / normal:,.0f} uses/s, {sent[0]} outputs)"
    )


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    for size in sizes:
        asyncio.run(run(size))
