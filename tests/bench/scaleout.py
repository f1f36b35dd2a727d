"""(f) Scale-out (issue #9, item 5): `consentinel worker` processes in one consumer group.

1. One worker builds the ledger from the preloaded consents, then drains a first batch of
   uses: events/s over the steady window (as in ``checker``).
2. A second batch of uses (new ids, same mix) is preloaded and two workers, each with its
   own state directory, drain it together: the second restores its partitions' state from
   the changelogs as it joins. Events/s over the steady window, and the ratio 2 / 1; the
   time from the second worker's start to its readiness (its restore included), and the
   changelog records it restored (its ``consentinel_changelog_records_restored_total``).
3. With both running, the partitions each one holds are read from the group (a member's
   metadata names its web port, so members map to processes); the second is SIGKILLed and
   a paced stream of uses over every partition starts at once. The time from the kill to
   the first verdict on a use of a partition the killed worker held is the take-over time
   (session timeout, rebalance, restore of the moved state, first judgement).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
import signal
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import benchtopics
import dataset
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from checker import end_offsets, steady_rate, wait_committed, wait_ready
from common import Proc, env_for, free_port, mib
from consentinel.streams import topics_admin
from consentinel.streams.events import codec, topics
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.settings import Settings
from kafka import KafkaAdminClient

URL = re.compile(rb'"url":\s*"http://[^"]*:(\d+)"')


@dataclass
class ScaleoutFigures:
    subjects: int = 0
    one_rate: float = 0.0
    two_rate: float = 0.0
    moved: list[int] = field(default_factory=list)
    takeover_s: float = float("nan")
    joined_ready_s: float = float("nan")
    restored: int = 0
    peak_rss: int = 0
    notes: list[str] = field(default_factory=list)


def holdings(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, set[int]]:
    """web port -> partitions of ``topic``, for each member of a stable group."""
    description = admin.describe_groups([group]).get(group) or {}
    if description.get("group_state") != "Stable":
        return {}
    out: dict[int, set[int]] = {}
    for member in description.get("members", []):
        meta = member.get("member_metadata")
        raw = meta if isinstance(meta, bytes) else repr(meta).encode()
        found = URL.search(raw)
        parts: set[int] = set()
        for entry in (member.get("member_assignment") or {}).get("assigned_partitions", []):
            if entry.get("topic") == topic:
                parts |= set(entry.get("partitions", []))
        if found:
            out[int(found.group(1))] = parts
    return out


async def _takeover(
    bootstrap: str, prefix: str, subjects: int, moved: set[int], killed_at: float, rate: float
) -> float:
    """Seconds from ``killed_at`` to the first verdict on a use of a ``moved`` partition,
    with a paced stream of uses over every partition (at most 180 s)."""
    consumer = AIOKafkaConsumer(
        prefix + topics.VERDICTS, bootstrap_servers=bootstrap, auto_offset_reset="latest"
    )
    await consumer.start()
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    on_moved: set[str] = set()
    rng = random.Random(5)
    mix = dataset.Mix(violation_share=0.0, out_of_order_share=0.0)  # decided at once
    n = 0
    try:
        while time.monotonic() < killed_at + 180:
            u = dataset.usage(20_000_000 + n, subjects, rng, mix, int(time.time() * 1000))
            u = dataclasses.replace(u, event_id=f"bench-takeover:{n}")
            key = subject_message_key(u.subject_key)
            if partition_for(key, dataset.PARTITIONS) in moved:
                on_moved.add(u.event_id)
            await producer.send(prefix + topics.USAGE, codec.encode(u), key=key)
            n += 1
            batches = await consumer.getmany(timeout_ms=int(1000 / rate))
            for records in batches.values():
                for rec in records:
                    if codec.loads(rec.value).get("usage_event_id") in on_moved:
                        return time.monotonic() - killed_at
    finally:
        await producer.stop()
        await consumer.stop()
    return float("nan")


def restored_records(metrics_port: int) -> int:
    """The changelog records a worker restored (its metric, summed over the tables); 0
    when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("consentinel_changelog_records_restored_total{")
        )
    )


def run(bootstrap: str, subjects: int, usages: int, drain_cap_s: float) -> ScaleoutFigures:
    fig = ScaleoutFigures(subjects=subjects)
    prefix = benchtopics.fresh_prefix("benchso")
    home = Path(tempfile.mkdtemp(prefix="consentinel-bench-scaleout-"))
    settings = Settings.from_env(
        {
            "CONSENTINEL_HOME": str(home / "w0"),
            "CONSENTINEL_TOPIC_PREFIX": prefix,
            "CONSENTINEL_BOOTSTRAP_SERVERS": bootstrap,
            "CONSENTINEL_PARTITIONS": str(dataset.PARTITIONS),
        }
    )
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    group = f"{prefix}consentinel"
    usage_topic = prefix + topics.USAGE
    logs = home / "logs"

    def env(n: int) -> dict[str, str]:
        e = env_for(
            prefix,
            home / f"w{n}",
            bootstrap,
            partitions=dataset.PARTITIONS,
            grace_seconds=5,
            metrics_port=free_port(),
            worker_port=free_port(),
            # every process of a group shares its secrets, as in a deployment
            pepper="bench-pepper-0123456789abcdef",
            token="bench-token-0123456789abcdef",
        )
        return e

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    workers: list[Proc] = []
    try:
        print(f"\n[scale-out, {subjects:,} subjects] preloading consent…", flush=True)
        dataset.preload_registry_and_consent(bootstrap, prefix, subjects)
        w0 = Proc("so-build", ["worker"], env(0), logs)
        workers.append(w0)
        if not wait_committed(admin, group, prefix + topics.CONSENT, subjects, w0, 1800):
            fig.notes.append("the ledger build did not finish in 30 min")
        w0.stop()

        # 1. one process
        dataset.preload_usage(bootstrap, prefix, subjects, usages, seed=7, first=0)
        target = end_offsets(bootstrap, usage_topic)
        w0 = Proc("so-one", ["worker"], env(0), logs)
        workers.append(w0)
        samples: list[tuple[float, int]] = []
        wait_committed(admin, group, usage_topic, target, w0, drain_cap_s, samples)
        fig.one_rate, _ = steady_rate(samples)
        w0.stop()
        print(f"  one worker: {fig.one_rate:,.0f} uses/s", flush=True)

        # 2. two processes on a second batch
        dataset.preload_usage(bootstrap, prefix, subjects, usages, seed=8, first=usages)
        target = end_offsets(bootstrap, usage_topic)
        env0, env1 = env(0), env(1)
        pair = [Proc("so-two-a", ["worker"], env0, logs), Proc("so-two-b", ["worker"], env1, logs)]
        joined_at = time.monotonic()
        workers += pair
        # the second worker starts with an empty state directory: ready once it has
        # restored its partitions' tables from the changelogs
        port1 = int(env1["CONSENTINEL_METRICS_PORT"])
        ready: list[float] = []
        watcher = threading.Thread(
            target=lambda: ready.append(wait_ready(pair[1], port1, timeout_s=drain_cap_s)),
            daemon=True,
        )
        watcher.start()
        samples = []
        wait_committed(admin, group, usage_topic, target, pair[0], drain_cap_s, samples)
        fig.two_rate, _ = steady_rate(samples)
        print(f"  two workers: {fig.two_rate:,.0f} uses/s", flush=True)
        watcher.join(timeout=5)
        if ready:
            fig.joined_ready_s = ready[0] - joined_at
        fig.restored = restored_records(port1)
        print(
            f"  second worker, empty state directory: ready after {fig.joined_ready_s:.1f} s, "
            f"{fig.restored:,} changelog records restored",
            flush=True,
        )

        # 3. SIGKILL one, time to the first verdict on a partition it held
        ports = {int(env1["CONSENTINEL_WORKER_PORT"]), int(env0["CONSENTINEL_WORKER_PORT"])}
        deadline = time.monotonic() + 120
        held: dict[int, set[int]] = {}
        while time.monotonic() < deadline:
            held = holdings(admin, group, usage_topic)
            if set(held) == ports and all(held.values()):
                break
            time.sleep(1)
        fig.moved = sorted(held.get(int(env1["CONSENTINEL_WORKER_PORT"]), set()))
        if not fig.moved:
            fig.notes.append(f"could not tell which partitions the second worker held: {held}")
        else:
            pair[1].stop(signal.SIGKILL)
            killed_at = time.monotonic()
            fig.takeover_s = asyncio.run(
                _takeover(bootstrap, prefix, subjects, set(fig.moved), killed_at, rate=50)
            )
            print(f"  kill to first verdict on a moved partition: {fig.takeover_s:.1f} s")
    finally:
        admin.close()
        for w in workers:
            w.stop()
        fig.peak_rss = max((w.peak_rss for w in workers), default=0)
    return fig


def report(fig: ScaleoutFigures) -> str:
    ratio = fig.two_rate / fig.one_rate if fig.one_rate else float("nan")
    lines = [
        f"\nScale-out at {fig.subjects:,} subjects ({dataset.PARTITIONS} partitions, one group)",
        f"  1 worker : {fig.one_rate:,.0f} uses/s",
        f"  2 workers: {fig.two_rate:,.0f} uses/s  (2 / 1 = {ratio:.2f})",
        f"  second worker (empty state directory) ready after {fig.joined_ready_s:.1f} s: "
        f"{fig.restored:,} changelog records restored",
        f"  SIGKILL of one -> first verdict on a partition it held ({fig.moved}): "
        f"{fig.takeover_s:.1f} s",
        f"  peak RSS of one process: {mib(fig.peak_rss)}",
    ]
    lines += [f"  note: {n}" for n in fig.notes]
    return "\n".join(lines)
