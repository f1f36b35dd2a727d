"""Helpers of the alert router's tests: alerts as the core emits them, the privacy scan.

Loaded by ``conftest.py`` as the module ``alerting`` (tests run with
``--import-mode=importlib``, so a test file cannot import a sibling by its name).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import privacy  # noqa: F401  (tests/ is on pytest's pythonpath; re-exported to the alert tests)
from consentinel.streams.events import codec, ids, topics
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    AuditEvent,
    Channel,
    ConsentSummary,
    Proof,
    Severity,
)
from consentinel.streams.events.settings import Settings

T0 = 1_760_000_000_000  # a fixed detection time (ms)
HOUR = 3_600_000


def alert(
    event: str = "ev-1",
    *,
    rule: str = "R2",
    controller: str = "broker-lists",
    campaign: str | None = "politics-27",
    status: AlertStatus = AlertStatus.FIRING,
    revision: int = 1,
    at: int = T0,
    severity: Severity = Severity.CRITICAL,
    **extra: Any,
) -> Alert:
    """An alert as the checker emits it (masked hint, consent evidence with proof)."""
    usage = f"newsletter-x:{event}"
    return Alert(
        alert_id=ids.alert_id(usage, rule),
        rule_id=rule,
        rule_source="[S6 art. 5(1)(b), 6(4)]",
        severity=severity,
        incident_key=ids.incident_key(controller, campaign, rule),
        usage_event_id=usage,
        subject_key="sk-" + event,
        hint="a***@e***.org",
        controller=controller,
        channel=Channel.EMAIL,
        summary="political e-mail to a newsletter reader (a***@e***.org) who consented to "
        "editorial.newsletter only",
        occurred_at_ms=at - 1000,
        detected_at_ms=at,
        status=status,
        campaign_id=campaign,
        purpose_used="political.communication",
        decl_id=f"campaign:{campaign}",
        source="newsletter-x",
        consent=ConsentSummary(
            state="given",
            consent_event_ids=["cmp:abc"],
            purposes=["editorial.newsletter"],
            channels=["email"],
            legal_basis="consent",
            proof=Proof(method="double_opt_in", collected_at_ms=T0 - 86_400_000),
            valid_from_ms=T0 - 86_400_000,
        ),
        revision=revision,
        **extra,
    )


# -- integration helpers -------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout_s: float = 90.0,
    explain: Callable[[], str] = lambda: "",
) -> None:
    """Wait until ``check()`` holds; the timeout only bounds a hung test (never asserted on)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not true after {timeout_s:.0f}s\n{explain()}")
        await asyncio.sleep(0.2)


async def produce(settings: Settings, alerts: Iterable[Alert]) -> None:
    """Alerts onto the alerts topic, keyed by incident key (as the checker does)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for a in alerts:
            await producer.send(
                settings.topic(topics.ALERTS), codec.encode(a), key=a.incident_key.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


class RouterProcess:
    """``consentinel router`` as a real process, with its own log file."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        sinks: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.sinks = sinks
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTINEL_")}
        env.update(
            CONSENTINEL_ENV="test",
            CONSENTINEL_HOME=str(s.home),
            CONSENTINEL_TOPIC_PREFIX=s.topic_prefix,
            CONSENTINEL_BOOTSTRAP_SERVERS=s.bootstrap_servers,
            CONSENTINEL_APP_ID=s.app_id,
            CONSENTINEL_PEPPER=s.pepper.reveal().decode(),
            CONSENTINEL_TOKEN=s.token.reveal().decode(),
            CONSENTINEL_LOG_LEVEL="info",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        args = [sys.executable, "-m", "consentinel.streams.cli", "router", "--metrics-port", "0"]
        if self.sinks is not None:
            args += ["--sinks", str(self.sinks)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self) -> str:
        return "router log (tail):\n" + "\n".join(self.log().splitlines()[-25:])

    def metrics_url(self) -> str | None:
        found = re.findall(r"metrics at (http://\S+/metrics)", self.log())
        return found[-1] if found else None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, the worst case for durability."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: the clean shutdown path."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                return -9
        return int(self.proc.returncode)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def store_text(path: Path) -> str:
    """Every value of every table of an incident store file, as text (the privacy checks)."""
    import sqlite3

    db = sqlite3.connect(path)
    out = []
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in db.execute(f"SELECT * FROM {table}"):
            out += [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row]
    db.close()
    return "\n".join(out)


def topic_records(settings: Settings, topic: str) -> list[Any]:
    """Every record of one of the deployment's topics (all partitions), read to its end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
    name = settings.topic(topic)
    tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    got: list[Any] = []
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for batch in consumer.poll(timeout_ms=1000).values():
            got += batch
    consumer.close()
    return got


def audit_records(settings: Settings) -> list[AuditEvent]:
    """The audit topic's records, in order."""
    return [codec.decode(AuditEvent, m.value) for m in topic_records(settings, topics.AUDIT)]
