"""consentinel's own code alone, without Kafka or Faust, against a plain dict-based check.

The same records (the bench's synthetic world: consent of every subject, then uses, 1 %
of them violations, 2 % out of order) go through:

- ``consentinel``: ``checker.Processor`` with dict tables and a producer that acknowledges
  at once, in batches of ``--batch`` records per partition (what the worker's agent does);
- ``plain``: what a user writes in an afternoon: orjson-decode, a dict of granted
  (purpose, channel) per subject, a verdict dict encoded per use.

Prints uses per CPU second for both (process time: the machine is shared, so wall time
would measure the neighbours) and the ratio, and consents per CPU second of consentinel's
consent phase (the ledger build: every subject's consent applied and written).
``--profile`` prints the top of a cProfile of the consentinel side. A benchmark prints
figures; it asserts nothing about speed.

    .venv/bin/python tests/bench/own_code.py --subjects 20000 --uses 100000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import dataset
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import TickClock
from consentinel.streams.events import codec
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings
from consentinel.streams.worker.gctune import tune_gc

N = dataset.PARTITIONS
NAMES = Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter")


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def records(subjects: int, uses: int) -> tuple[list[Rec], list[Rec]]:
    consent, usage = [], []
    for i in range(subjects):
        event = dataset.consent(i)
        key = subject_message_key(event.subject_key)
        consent.append(Rec("consent", partition_for(key, N), i, key, codec.encode(event)))
    rng = random.Random(7)
    received = dataset.T0 + 86_400_000
    for n in range(uses):
        use = dataset.usage(n, subjects, rng, dataset.Mix(), received)
        key = subject_message_key(use.subject_key)
        usage.append(Rec("usage", partition_for(key, N), n, key, codec.encode(use)))
    return consent, usage


def by_partition(recs: list[Rec], batch: int) -> list[list[Rec]]:
    """Consecutive records split per partition, ``batch`` records a time (the agent's way)."""
    out: list[list[Rec]] = []
    for start in range(0, len(recs), batch):
        groups: dict[int, list[Rec]] = {}
        for rec in recs[start : start + batch]:
            groups.setdefault(rec.partition, []).append(rec)
        out += groups.values()
    return out


class Acked:
    def __init__(self) -> None:
        self.count = 0
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        self.done.set_result(None)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.count += 1
        return self.done


async def run_consentinel(
    consent: list[Rec], usage: list[Rec], batch: int
) -> tuple[float, int, float]:
    """CPU seconds of the usage phase, outputs of it, CPU seconds of the consent phase."""
    decls = {d.decl_id: d for d in dataset.declarations()}
    producer = Acked()
    proc = Processor(
        judge=Judge(PolicySettings(), decls.get),
        names=NAMES,
        partitions=N,
        ledger={},
        holds={},
        stats={},
        send=producer.send,
        scan=lambda table, p: [(k, v) for k, v in table.items() if partition_for(k, N) == p],
        ticks=TickClock(lambda p: 0),
        sealer=Sealer(b"k" * 32),
    )
    start = time.process_time()
    for group in by_partition(consent, batch):
        await proc.submit_batch(group)
    await proc.drain()
    consent_s = time.process_time() - start
    sent = producer.count
    start = time.process_time()
    for group in by_partition(usage, batch):
        await proc.submit_batch(group)
    await proc.drain()
    return time.process_time() - start, producer.count - sent, consent_s


def run_plain(consent: list[Rec], usage: list[Rec]) -> tuple[float, int]:
    import orjson

    granted: dict[str, list[tuple[int, frozenset[tuple[str, str]]]]] = {}
    for rec in consent:
        obj = orjson.loads(rec.value or b"")
        pairs = frozenset((p, c) for p in obj["purposes"] for c in obj["channels"])
        granted.setdefault(obj["subject_key"], []).append((obj["occurred_at_ms"], pairs))
    purpose = {d.ref: d.purpose for d in dataset.declarations()}
    out = 0
    start = time.process_time()
    for rec in usage:
        obj = orjson.loads(rec.value or b"")
        want = (purpose.get(obj.get("campaign_id"), ""), obj["channel"])
        ok = any(
            at <= obj["occurred_at_ms"] and want in pairs
            for at, pairs in granted.get(obj["subject_key"], ())
        )
        verdict = {
            "usage_event_id": obj["event_id"],
            "subject_key": obj["subject_key"],
            "decision": "allowed" if ok else "violation",
        }
        orjson.dumps(verdict)
        out += 1
    return time.process_time() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--uses", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side this many times (a fresh processor each time) and keep the "
        "best: on a shared machine the neighbours only ever slow a run down",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=0,
        help="tune the garbage collector as the worker does (CONSENTINEL_GC_THRESHOLD); "
        "0: Python's defaults",
    )
    parser.add_argument(
        "--no-plain",
        action="store_true",
        help="skip the plain check (to count the instructions of consentinel's side alone)",
    )
    args = parser.parse_args(argv)
    consent, usage = records(args.subjects, args.uses)
    thresholds = tune_gc(args.gc_threshold)
    print(
        f"{args.subjects:,} subjects, {args.uses:,} uses, batches of {args.batch}, "
        f"gc thresholds {thresholds}"
    )
    plain_s, plain_n = (
        (float("nan"), 0)
        if args.no_plain
        else min(run_plain(consent, usage) for _ in range(max(1, args.repeat)))
    )
    profiler = cProfile.Profile() if args.profile else None
    own_s, own_n, consent_s = float("inf"), 0, float("inf")
    for _ in range(max(1, args.repeat)):
        if profiler:
            profiler.enable()
        run_s, own_n, run_consent_s = asyncio.run(run_consentinel(consent, usage, args.batch))
        own_s = min(own_s, run_s)
        consent_s = min(consent_s, run_consent_s)
        if profiler:
            profiler.disable()
    own_rate, plain_rate = args.uses / own_s, args.uses / plain_s
    best = f", best of {args.repeat}" if args.repeat > 1 else ""
    print(
        f"  consentinel (checker.Processor): {own_rate:>10,.0f} uses/CPU-s  ({own_n:,} out{best})"
    )
    print(
        f"  consentinel consent phase (ledger): {args.subjects / consent_s:>7,.0f} "
        f"consents/CPU-s{best}"
    )
    print(f"  plain dict-based check:          {plain_rate:>10,.0f} uses/CPU-s  ({plain_n:,} out)")
    print(f"  consentinel / plain: {own_rate / plain_rate:.2f}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
