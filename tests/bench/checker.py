"""(b)-(d): the real checker (``consentinel worker``) on the preloaded topics.

1. Consent and declarations are preloaded; the worker builds its ledger: consent events/s
   from the worker's start (start-up included), from its readiness (as the drain), and the
   worker's CPU per consent after readiness (the figure the neighbours on a shared machine
   move least). ``--ledger-only`` (bench.py) stops after this phase.
2. The worker is stopped, the usage events are preloaded, the worker is started again and
   its committed offsets on the usage topic are sampled every second: the drain rate is
   what it committed from its readiness (/healthz) to its last commit, over that whole
   wall time (commit delays included: conservative; the peers' rate, without a readiness
   signal, is taken from their first commit on).
3. The rest of the backlog is skipped (the group's offsets moved to the end while the
   worker is stopped), and an open-loop producer sends at half the drain rate; each event
   carries its *scheduled* send time, and a collector on the verdicts topic records
   ``arrival - scheduled``: p50/p99 (coordinated omission avoided). The loop starts once the
   worker is ready and runs ``warmup_s`` (10 s) plus ``latency_s`` (30 s) without a break;
   two figures are printed, both from that one loop: *steady*, the events scheduled after
   the warm-up (the target's figure), and *cold*, the events of the first ``warmup_s``
   (a worker just started: caches empty, first fetches). The steady latency is also split
   at the verdict's ``decided_at_ms`` (the worker's clock, the same machine's): the time to
   the decision and the time after it.
4. Peak RSS of the worker over the whole run, and its state directory on disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from common import Proc, dir_size, env_for, free_port, percentile
from consentinel.streams.events import codec, topics
from consentinel.streams.events.partitioning import subject_message_key
from dataset import Mix, usage
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition


@dataclass
class CheckerFigures:
    consent_rate: float = 0.0
    drain_rate: float = 0.0
    drained: int = 0
    p50_ms: float = float("nan")  # steady: after the warm-up
    p99_ms: float = float("nan")
    cold_p50_ms: float = float("nan")  # the warm-up: the first seconds of a started worker
    cold_p99_ms: float = float("nan")
    latency_samples: int = 0
    latency_rate: float = 0.0
    peak_rss: int = 0
    state_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def committed(admin: KafkaAdminClient, group: str, topic: str) -> int:
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except Exception:  # the group does not exist yet: nothing committed
        return 0
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def end_offsets(bootstrap: str, topic: str) -> int:
    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","))
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or []]
    total = sum(c.end_offsets(tps).values())
    c.close()
    return total


def skip_to_end(bootstrap: str, group: str, topic: str) -> None:
    """Move a stopped group's committed offsets on ``topic`` to the end."""
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or []]
    ends = c.end_offsets(tps)
    c.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
    c.close()


def wait_committed(
    admin,
    group,
    topic,
    target,
    proc: Proc,
    timeout_s: float,
    samples: list[tuple[float, int]] | None = None,
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = committed(admin, group, topic)
        if samples is not None:
            samples.append((time.monotonic(), done))
        if done >= target:
            return True
        if not proc.alive():
            raise RuntimeError(f"the worker died:\n{proc.tail()}")
        time.sleep(1.0)
    return False


def _ready(port: int) -> bool:
    """The worker's readiness: /healthz answers 200 once it judges."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def wait_ready(worker: Proc, port: int, timeout_s: float = 120.0) -> float:
    """Wait until the worker judges (/healthz: topics seen, tables recovered, registry
    read); the monotonic time it was seen ready."""
    t0 = time.monotonic()
    while not _ready(port) and time.monotonic() - t0 < timeout_s:
        if not worker.alive():
            raise RuntimeError(f"the worker died:\n{worker.tail()}")
        time.sleep(0.2)
    return time.monotonic()


def drain_rate(samples: list[tuple[float, int]]) -> tuple[float, int]:
    """events/s from the worker's readiness (the first sample) to the first sample where
    the committed count reached its last value: everything judged over the whole wall time
    it took, commit delays included. (A rate between two later samples is inflated when
    commits come in bursts: one commit can cover seconds of work.)"""
    if len(samples) < 2:
        return 0.0, 0
    (t0, start), final = samples[0], samples[-1][1]
    t_end = next(t for t, n in samples if n >= final)
    total = final - start
    if t_end <= t0:
        return 0.0, total
    return total / (t_end - t0), total


def steady_rate(samples: list[tuple[float, int]]) -> tuple[float, int]:
    """events/s between 10 % and the last sample of what was drained."""
    if len(samples) < 3:
        return 0.0, 0
    total = samples[-1][1] - samples[0][1]
    floor = samples[0][1] + total * 0.10
    window = [s for s in samples if s[1] >= floor]
    # the first sample where the count moved past 10 %, the last sample where it moved
    last = max(range(len(window)), key=lambda i: window[i][1])
    start, end = window[0], window[last]
    if end[0] <= start[0]:
        return 0.0, total
    return (end[1] - start[1]) / (end[0] - start[0]), total


@dataclass
class Loop:
    """What an open loop measured: the latencies (ms) of the probes scheduled in the
    warm-up (``cold``) and after it (``steady``), and the number of probes sent."""

    cold: list[float]
    steady: list[float]
    sent: int


async def open_loop(
    bootstrap: str,
    prefix: str,
    subjects: int,
    rate: float,
    seconds: float,
    first: int = 0,
    warmup_s: float = 0.0,
) -> Loop:
    """Probes at ``rate`` for ``warmup_s + seconds`` (numbered from ``first``: a later loop
    on the same topics needs new ids, or its probes are taken for replays); their
    latencies, split at ``warmup_s`` of scheduled time."""
    verdicts = prefix + topics.VERDICTS
    scheduled: dict[str, float] = {}
    latencies: list[float] = []
    cold: list[float] = []
    steady: list[float] = []
    consumer = AIOKafkaConsumer(
        verdicts,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        # the collector must not add latency of its own: aiokafka leaves a partition whose
        # records are not consumed yet out of the fetch in flight, so with the default 500 ms
        # a verdict could wait that long for the collector's next fetch
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    await consumer.seek_to_end()
    for tp in consumer.assignment():  # resolve the end offsets now
        await consumer.position(tp)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    stop = asyncio.Event()
    rng = random.Random(11)
    mix = Mix(violation_share=0.01, out_of_order_share=0.0)  # probes decided at once

    async def collect() -> None:
        while not stop.is_set() or len(latencies) < len(scheduled):
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                for rec in records:
                    v = codec.loads(rec.value)
                    t = scheduled.get(v.get("usage_event_id", ""))
                    if t is not None and v.get("decision") != "pending":
                        ms = (now - t) * 1000
                        latencies.append(ms)
                        (cold if t - start < warmup_s else steady).append(ms)
                        if t - start >= warmup_s:
                            decided = v.get("decided_at_ms", 0) / 1000
                            to_decision.append((decided - t) * 1000)
                            after_decision.append((now - decided) * 1000)
                        windows.setdefault(int((t - start) // 5), []).append(ms)
            if stop.is_set() and time.time() > stop_at + 30:
                break

    stop_at = float("inf")
    windows: dict[int, list[float]] = {}
    to_decision: list[float] = []
    after_decision: list[float] = []
    start = time.time()
    collector = asyncio.create_task(collect())
    start = time.time()
    n = 0
    topic = prefix + topics.USAGE
    while True:
        due = start + n / rate
        if due > start + warmup_s + seconds:
            break
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        u = usage(10_000_000 + n, subjects, rng, mix, int(due * 1000))
        u = dataclasses.replace(u, event_id=f"bench-probe:{first + n}")
        scheduled[u.event_id] = due
        await producer.send(topic, codec.encode(u), key=subject_message_key(u.subject_key))
        n += 1
    await producer.flush()
    stop_at = time.time()
    stop.set()
    await collector
    await producer.stop()
    await consumer.stop()
    # the latency over the run, per 5 s of scheduled time: a backlog that grows shows here
    print(
        "  p50 ms per 5 s: "
        + " ".join(f"{percentile(v, 50):,.0f}" for _, v in sorted(windows.items())),
        flush=True,
    )
    print(
        "  steady latency split at the verdict's decided_at_ms, p50 / p99 ms: to the "
        "decision (fetch, queue, judging) "
        f"{percentile(to_decision, 50):,.0f} / {percentile(to_decision, 99):,.0f}; "
        "after it (state durable, verdict produced and fetched) "
        f"{percentile(after_decision, 50):,.0f} / {percentile(after_decision, 99):,.0f}",
        flush=True,
    )
    return Loop(cold, steady, n)


def run(
    bootstrap: str,
    prefix: str,
    home: Path,
    subjects: int,
    usages: int,
    logdir: Path,
    produce_usage,
    drain_cap_s: float = 150.0,
    latency_s: float = 30.0,
    ledger_only: bool = False,
    warmup_s: float = 10.0,
) -> CheckerFigures:
    fig = CheckerFigures()
    env = env_for(
        prefix,
        home,
        bootstrap,
        partitions=6,
        grace_seconds=5,
        metrics_port=free_port(),
        worker_port=free_port(),
    )
    group = f"{prefix}consentinel"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    consent_topic, usage_topic = prefix + topics.CONSENT, prefix + topics.USAGE

    # 1. ledger build
    worker = Proc("worker-build", ["worker"], env, logdir)
    t0 = time.monotonic()
    ready_at = wait_ready(worker, int(env["CONSENTINEL_METRICS_PORT"]), timeout_s=1800)
    built: list[tuple[float, int]] = [(ready_at, committed(admin, group, consent_topic))]
    cpu_ready = worker.cpu_s
    ok = wait_committed(admin, group, consent_topic, subjects, worker, 1800, built)
    build_s = time.monotonic() - t0
    fig.consent_rate = subjects / build_s if ok else 0.0
    from_ready, _ = drain_rate(built)
    print(
        f"  ledger built: {fig.consent_rate:,.0f} consent events/s (worker start included); "
        f"{from_ready:,.0f}/s from readiness ({ready_at - t0:.1f} s to ready)",
        flush=True,
    )
    cpu_s = worker.cpu_s  # sampled every 0.5 s: start-up included
    print(
        f"  ledger build worker CPU: {cpu_s:.1f} s, {1e6 * cpu_s / max(1, subjects):,.0f} µs "
        f"per consent (start-up included); {cpu_ready:.1f} s to ready, then "
        f"{1e6 * (cpu_s - cpu_ready) / max(1, subjects - built[0][1]):,.0f} µs per consent",
        flush=True,
    )
    if not ok:
        fig.notes.append("the ledger build did not finish in 30 min")
    worker.stop()
    fig.peak_rss = worker.peak_rss
    print(f"  ledger build: worker peak RSS {worker.peak_rss / 2**20:,.0f} MiB", flush=True)
    if ledger_only:
        admin.close()
        return fig

    # 2. drain
    produce_usage()
    target = end_offsets(bootstrap, usage_topic)
    worker = Proc("worker-drain", ["worker"], env, logdir)
    ready_at = wait_ready(worker, int(env["CONSENTINEL_METRICS_PORT"]))
    samples: list[tuple[float, int]] = [(ready_at, committed(admin, group, usage_topic))]
    wait_committed(admin, group, usage_topic, target, worker, drain_cap_s, samples)
    fig.drain_rate, fig.drained = drain_rate(samples)
    cpu_s = worker.cpu_s  # sampled every 0.5 s: start-up and recovery included
    print(f"  drain: {fig.drain_rate:,.0f} events/s over {fig.drained:,} events", flush=True)
    print(
        f"  drain worker CPU: {cpu_s:.1f} s, {1e6 * cpu_s / max(1, usages):,.0f} µs per use "
        "(start-up and recovery included)",
        flush=True,
    )
    worker.stop()
    fig.peak_rss = max(fig.peak_rss, worker.peak_rss)
    print(f"  drain: worker peak RSS {worker.peak_rss / 2**20:,.0f} MiB", flush=True)
    if fig.drained < usages:
        fig.notes.append(
            f"drain measured on {fig.drained:,} of {usages:,} events ({drain_cap_s:.0f} s cap)"
        )

    # 3. latency at half the drain rate
    skip_to_end(bootstrap, group, usage_topic)
    worker = Proc("worker-latency", ["worker"], env, logdir)
    # the open loop starts once the worker judges (/healthz: topics seen, tables recovered,
    # registry read), then one more tick interval: a start-up is not the latency measured
    t0 = time.monotonic()
    wait_ready(worker, int(env["CONSENTINEL_METRICS_PORT"]))
    print(f"  worker ready in {time.monotonic() - t0:.1f} s", flush=True)
    time.sleep(2)
    fig.latency_rate = max(50.0, fig.drain_rate / 2)
    loop = asyncio.run(
        open_loop(bootstrap, prefix, subjects, fig.latency_rate, latency_s, warmup_s=warmup_s)
    )
    fig.latency_samples = len(loop.cold) + len(loop.steady)
    fig.p50_ms, fig.p99_ms = percentile(loop.steady, 50), percentile(loop.steady, 99)
    fig.cold_p50_ms, fig.cold_p99_ms = percentile(loop.cold, 50), percentile(loop.cold, 99)
    print(
        f"  latency at {fig.latency_rate:,.0f}/s, p50 / p99 ms: cold (the first "
        f"{warmup_s:.0f} s after ready) {fig.cold_p50_ms:,.0f} / {fig.cold_p99_ms:,.0f}; "
        f"steady (the {latency_s:.0f} s after) {fig.p50_ms:,.0f} / {fig.p99_ms:,.0f}",
        flush=True,
    )
    if fig.latency_samples < loop.sent:
        fig.notes.append(
            f"latency: {loop.sent - fig.latency_samples} of {loop.sent} probes had no verdict "
            "in time"
        )
    worker.stop()
    fig.peak_rss = max(fig.peak_rss, worker.peak_rss)
    print(f"  latency: worker peak RSS {worker.peak_rss / 2**20:,.0f} MiB", flush=True)
    fig.state_bytes = dir_size(home / "state" / "faust")
    admin.close()
    return fig
