"""(e) The peers: the checker's job written plainly with Quix Streams and as a plain Faust
agent (``quix_peer``, ``faust_peer``), run as subprocesses on the same topics as the worker,
measured the same way (committed offsets of their consumer group, sampled every second).

1. Ledger build: the group's usage offsets are moved to the end first, so the peer reads
   the consent topic alone; consent events/s until its committed consent offsets reach
   the number of subjects (process start included, as for the worker).
2. Drain: the peer is stopped, its usage offsets moved back to the beginning, and it is
   started again on its own state; usage events/s over the steady window.
3. Peak RSS over both runs and its state directory on disk.

Then ``agreement`` reads every system's verdicts and compares the decisions on the uses
they all handled.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peer_job
from checker import committed, end_offsets, steady_rate, wait_committed
from common import Proc, dir_size
from consentinel.streams.events import codec, topics
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

HERE = Path(__file__).resolve().parent
SCRIPTS = {"quix": HERE / "quix_peer.py", "faust": HERE / "faust_peer.py"}
LABELS = {
    "quix": "Quix Streams peer (state keyed by subject)",
    "faust": "plain Faust agent (one Table)",
}


@dataclass
class PeerFigures:
    name: str
    consent_rate: float = 0.0
    drain_rate: float = 0.0
    drained: int = 0
    peak_rss: int = 0
    state_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def missing(name: str) -> str | None:
    """Why a peer cannot run in this environment (None: it can)."""
    module = {"quix": "quixstreams", "faust": "faust"}[name]
    if importlib.util.find_spec(module) is None:
        return (
            f"{module} is not installed in {sys.prefix}: run the bench with `make bench`, "
            "which builds its own environment (build/bench-venv) with the peers"
        )
    return None


def verdicts_topic(prefix: str, name: str) -> str:
    return f"{prefix}bench.{name}.verdicts"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def move_offsets(bootstrap: str, group: str, topic: str, to_end: bool) -> None:
    """Commit the start or the end of ``topic`` for a group with no live member."""
    c = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or []]
    offsets = c.end_offsets(tps) if to_end else c.beginning_offsets(tps)
    c.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
    c.close()


def run(
    name: str,
    bootstrap: str,
    prefix: str,
    home: Path,
    subjects: int,
    partitions: int,
    drain_cap_s: float,
) -> PeerFigures:
    fig = PeerFigures(name)
    group = f"{prefix}peer-{name}"
    state_dir = home / f"peer-{name}"
    state_dir.mkdir(parents=True, exist_ok=True)
    consent_topic, usage_topic = prefix + topics.CONSENT, prefix + topics.USAGE
    out = verdicts_topic(prefix, name)
    create_topic(bootstrap, out, partitions)
    cmd = [sys.executable, str(SCRIPTS[name])]
    args = [
        *("--bootstrap", bootstrap, "--group", group),
        *("--consent", consent_topic, "--usage", usage_topic, "--verdicts", out),
        *("--state-dir", str(state_dir)),
    ]
    if name == "faust":
        args += ["--partitions", str(partitions)]
    env = dict(os.environ)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    proc: Proc | None = None
    try:
        # 1. ledger build, the usage topic skipped
        move_offsets(bootstrap, group, usage_topic, to_end=True)
        proc = Proc(f"peer-{name}-build", args, env, home / "logs", cmd=cmd)
        t0 = time.monotonic()
        ok = wait_committed(admin, group, consent_topic, subjects, proc, timeout_s=1800)
        fig.consent_rate = subjects / (time.monotonic() - t0) if ok else 0.0
        if not ok:
            fig.notes.append(f"{name}: the ledger build did not finish in 30 min")
        proc.stop()
        fig.peak_rss = proc.peak_rss
        print(
            f"  {name} peer: ledger built at {fig.consent_rate:,.0f} consent events/s", flush=True
        )

        # 2. drain of the whole usage topic, on the state built above
        move_offsets(bootstrap, group, usage_topic, to_end=False)
        target = end_offsets(bootstrap, usage_topic)
        proc = Proc(f"peer-{name}-drain", args, env, home / "logs", cmd=cmd)
        samples: list[tuple[float, int]] = []
        wait_committed(admin, group, usage_topic, target, proc, drain_cap_s, samples)
        fig.drain_rate, fig.drained = steady_rate(samples)
        proc.stop()
        fig.peak_rss = max(fig.peak_rss, proc.peak_rss)
        if committed(admin, group, usage_topic) < target:
            fig.notes.append(
                f"{name}: drain measured on {fig.drained:,} of {target:,} events "
                f"({drain_cap_s:.0f} s cap)"
            )
        print(f"  {name} peer: drain {fig.drain_rate:,.0f} events/s", flush=True)
        for phase in ("build", "drain"):
            log = home / "logs" / f"peer-{name}-{phase}.log"
            if "Traceback" in log.read_text(errors="replace"):
                fig.notes.append(
                    f"{name}: the peer logged a traceback, its figures are void: {log}"
                )
    finally:
        admin.close()
        if proc is not None:  # interrupted: leave no peer running
            proc.stop()
    fig.state_bytes = dir_size(state_dir)
    return fig


def read_decisions(
    bootstrap: str, topic: str, decision: Callable[[dict[str, Any]], str | None]
) -> dict[str, str]:
    """usage event id -> the first final decision on it, from a whole verdicts topic."""
    c = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or []]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    ends = c.end_offsets(tps)
    out: dict[str, str] = {}
    while any(c.position(tp) < ends[tp] for tp in tps):
        for records in c.poll(timeout_ms=1000, max_records=5000).values():
            for rec in records:
                value = codec.loads(rec.value)
                d = decision(value)
                if d is not None:
                    out.setdefault(value["usage_event_id"], d)
    c.close()
    return out


def agreement(bootstrap: str, systems: dict[str, str]) -> list[str]:
    """Lines saying whether every system (name -> verdicts topic) decided the same on the
    uses they all handled."""
    decided = {
        name: read_decisions(bootstrap, topic, peer_job.final_decision)
        for name, topic in systems.items()
    }
    common = set.intersection(*(set(d) for d in decided.values())) if decided else set()
    names = list(decided)
    lines = [
        "verdicts read: " + ", ".join(f"{n} {len(decided[n]):,}" for n in names),
        f"uses handled by all {len(names)} systems: {len(common):,}",
    ]
    first = names[0]
    for other in names[1:]:
        differ = [u for u in common if decided[first][u] != decided[other][u]]
        verdict = "the same decisions" if not differ else f"{len(differ):,} different decisions"
        lines.append(f"  {first} vs {other}: {verdict}")
        for u in sorted(differ)[:5]:
            lines.append(f"    {u}: {first} {decided[first][u]}, {other} {decided[other][u]}")
    mix: dict[str, int] = {}
    for u in common:
        mix[decided[first][u]] = mix.get(decided[first][u], 0) + 1
    lines.append(
        "  decisions on those uses: " + ", ".join(f"{k} {v:,}" for k, v in sorted(mix.items()))
    )
    return lines
