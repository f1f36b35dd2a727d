"""Helpers for the worker's integration tests: a worker subprocess, a scenario builder that
produces consent and usage events like the connectors do, an oracle (the pure policy over
the same events), and a reader of the verdicts and alerts topics.

Loaded with importlib by the tests (no tests/__init__.py)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consentinel.streams import topics_admin
from consentinel.streams.events import codec, topics
from consentinel.streams.events.identity import Pseudonymizer, mask, normalize
from consentinel.streams.events.partitioning import subject_message_key
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    Proof,
    UsageEvent,
    UsageKind,
    Verdict,
)
from consentinel.streams.events.settings import Settings
from consentinel.streams.policy import engine
from consentinel.streams.policy import registry as policy_registry
from consentinel.streams.policy.engine import Evaluation, PolicySettings
from consentinel.streams.policy.history import ConsentHistory
from consentinel.streams.registry import command as registry_cmd
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

EXE = Path(sys.executable).parent / "consentinel"
DAY = 86_400_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    every_s: float = 0.25,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after a generous timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(every_s)


# -- the worker as a subprocess --------------------------------------------------------------


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        self.settings = settings
        self.log_path = log_path
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CONSENTINEL_ENV": "test",
            "CONSENTINEL_HOME": str(settings.home),
            "CONSENTINEL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "CONSENTINEL_TOPIC_PREFIX": settings.topic_prefix,
            "CONSENTINEL_PARTITIONS": str(settings.partitions),
            "CONSENTINEL_GRACE_SECONDS": str(settings.grace_seconds),
            "CONSENTINEL_CERTIFICATE_WAIT_SECONDS": str(settings.certificate_wait_seconds),
            "CONSENTINEL_PEPPER": settings.pepper.reveal().decode(),
            "CONSENTINEL_TOKEN": settings.token.reveal().decode(),
            "CONSENTINEL_METRICS_PORT": str(free_port()),
            "CONSENTINEL_WORKER_PORT": str(free_port()),
            "CONSENTINEL_LOG_LEVEL": "info",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['CONSENTINEL_METRICS_PORT']}/metrics"

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        log.write(f"\n===== start #{self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [str(EXE), "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_judging(self, timeout_s: float = 90) -> None:
        """Until this start of the worker has read the registry (the checker is ready)."""
        marker = f"===== start #{self.starts} ====="

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"the worker exited early:\n{self.log()[-4000:]}")
            text = self.log()
            return "purpose registry read" in text[text.rfind(marker) :]

        wait_for(ready, timeout_s, "the worker to read the purpose registry")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL only if it does not stop)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(
                f"the worker did not stop on SIGTERM:\n{self.log()[-4000:]}"
            ) from None


# -- producing events ------------------------------------------------------------------------

FULL_PROOF = Proof(
    method="double_opt_in",
    collected_at_ms=1_700_000_000_000,
    collection_point="https://lequotidien.example/newsletter",
    notice_version="notice-v3",
    ip_hash="iphash-1",
)


def prepare(settings: Settings, registry: Path) -> Settings:
    """The topics of ``settings`` created and the purpose registry at ``registry`` applied:
    what a worker needs before it starts."""
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    assert registry_cmd.apply(settings, str(registry), out=io.StringIO()) == 0
    return settings


@contextlib.contextmanager
def running_worker(settings: Settings, log_path: Path, **env: str) -> Iterator[WorkerProcess]:
    """A worker started for the block and stopped after it, whatever happened in it."""
    proc = WorkerProcess(settings, log_path, **env)
    proc.start()
    try:
        yield proc
    finally:
        if proc.alive():
            proc.stop()


def import_file(
    settings: Settings,
    connectors_yaml: str,
    instance: str,
    path: Path,
    fmt: str,
    environ: dict[str, str],
) -> Any:
    """``consentinel import`` of ``path`` through ``instance`` of ``connectors_yaml`` (its
    secrets from ``environ``), on the real broker; the importer's summary."""
    from consentinel.connectors import config
    from consentinel.connectors.contract import Edge
    from consentinel.connectors.runtime.file_import import Importer
    from consentinel.connectors.runtime.producer import EventProducer

    cfg = config.load_text(connectors_yaml, settings, environ=environ)
    inst = cfg.get(instance)
    connector = cfg.classes[inst.name](inst, Edge(Pseudonymizer(settings.pepper.reveal()), "FR"))

    async def run() -> Any:
        producer = EventProducer(settings, client_id=f"{instance}-test", ack_timeout=30.0)
        try:
            importer = Importer(settings, connector, producer, stream=io.StringIO())
            return await importer.run(path, fmt)
        finally:
            await producer.stop()

    return asyncio.run(run())


@dataclass
class Scenario:
    """Consent and usage events for test addresses; keeps them for the oracle."""

    settings: Settings
    t0: int = field(default_factory=lambda: now_ms() - DAY)
    consents: list[ConsentEvent] = field(default_factory=list)
    usages: list[UsageEvent] = field(default_factory=list)
    _n: int = 0

    def __post_init__(self) -> None:
        self.pseudo = Pseudonymizer(self.settings.pepper.reveal())

    def person(self, i: int, channel: Channel = Channel.EMAIL) -> tuple[str, str]:
        """(subject key, hint) of test address number ``i`` (never leaves this process)."""
        raw = f"reader{i}@lequotidien-test.example" if channel is Channel.EMAIL else f"+336{i:08d}"
        normalized = normalize(raw, str(channel), "FR")
        return self.pseudo.subject_key(normalized), mask(normalized, str(channel))

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}:{self._n:06d}"

    def consent(
        self,
        i: int,
        *,
        controller: str = "le-quotidien",
        action: ConsentAction = ConsentAction.GRANT,
        purposes: Iterable[str] = ("editorial.newsletter",),
        channel: Channel = Channel.EMAIL,
        at: int | None = None,
        proof: Proof | None = FULL_PROOF,
    ) -> ConsentEvent:
        key, hint = self.person(i, channel)
        event = ConsentEvent(
            event_id=self._id("cmp-test"),
            occurred_at_ms=self.t0 if at is None else at,
            received_at_ms=now_ms(),
            source="cmp-test",
            processor="test",
            subject_key=key,
            hint=hint,
            controller=controller,
            action=action,
            purposes=list(purposes) if action is ConsentAction.GRANT else [],
            channels=[channel],
            proof=proof if action is ConsentAction.GRANT else None,
        )
        self.consents.append(event)
        return event

    def use(
        self,
        i: int,
        *,
        controller: str = "le-quotidien",
        channel: Channel = Channel.EMAIL,
        kind: UsageKind = UsageKind.SEND,
        campaign_id: str | None = None,
        list_id: str | None = None,
        sender: str | None = None,
        at: int | None = None,
    ) -> UsageEvent:
        key, hint = self.person(i, channel)
        event = UsageEvent(
            event_id=self._id("esp-test"),
            occurred_at_ms=self.t0 + DAY // 2 if at is None else at,
            received_at_ms=now_ms(),
            source="esp-test",
            processor="test",
            channel=channel,
            kind=kind,
            subject_key=key,
            hint=hint,
            controller=controller,
            campaign_id=campaign_id,
            list_id=list_id,
            sender=sender,
        )
        self.usages.append(event)
        return event


class Producer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","), acks="all", linger_ms=5
        )

    def send(self, events: Iterable[ConsentEvent | UsageEvent]) -> None:
        futures = []
        for event in events:
            base = topics.CONSENT if isinstance(event, ConsentEvent) else topics.USAGE
            futures.append(
                self.kafka.send(
                    self.settings.topic(base),
                    key=subject_message_key(event.subject_key),
                    value=codec.encode(event),
                )
            )
        self.kafka.flush(timeout=30)
        for fut in futures:
            fut.get(timeout=30)

    def close(self) -> None:
        self.kafka.close(timeout=10)


# -- reading outputs -------------------------------------------------------------------------


class Outputs:
    """Everything on the verdicts and alerts topics, read incrementally."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5000,
        )
        names = [settings.topic(topics.VERDICTS), settings.topic(topics.ALERTS)]
        self.verdict_topic, self.alert_topic = names
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(self.consumer.partitions_for_topic(name) or [])
        ]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.verdicts: list[Verdict] = []
        self.alerts: list[Alert] = []
        self.raw: list[bytes] = []

    def poll(self) -> Outputs:
        for tp, records in self.consumer.poll(timeout_ms=300).items():
            for rec in records:
                self.raw.append(rec.value)
                if tp.topic == self.verdict_topic:
                    self.verdicts.append(codec.decode(Verdict, rec.value))
                else:
                    self.alerts.append(codec.decode(Alert, rec.value))
        return self

    def first_verdicts(self) -> dict[str, Verdict]:
        """usage event id -> the (first) non-correction verdict."""
        out: dict[str, Verdict] = {}
        for v in self.verdicts:
            if not v.correction:
                out.setdefault(v.usage_event_id, v)
        return out

    def alert_status(self) -> dict[str, AlertStatus]:
        """alert id -> status of its highest revision."""
        best: dict[str, Alert] = {}
        for a in self.alerts:
            if a.alert_id not in best or a.revision >= best[a.alert_id].revision:
                best[a.alert_id] = a
        return {k: a.status for k, a in best.items()}

    def close(self) -> None:
        self.consumer.close()


# -- the oracle ------------------------------------------------------------------------------


def declarations(path: str | Path) -> dict[str, Declaration]:
    from consentinel.streams.registry import file as registry_file

    loaded = registry_file.load(path)
    assert loaded.ok, loaded.problems
    return {d.decl_id: d for d in loaded.declarations}


def oracle(
    settings: Settings,
    usage: UsageEvent,
    consents: Iterable[ConsentEvent],
    decls: dict[str, Declaration],
) -> Evaluation:
    """What the pure policy decides for ``usage`` given ``consents`` (its subject's only)."""
    policy = PolicySettings.from_settings(settings)
    mine = [c for c in consents if c.subject_key == usage.subject_key]
    history = None
    if mine:
        history = ConsentHistory(usage.subject_key, settings.ledger_max_versions)
        for c in mine:
            history.apply(c)
    decl = policy_registry.resolve(usage, decls.get)
    return engine.evaluate(usage, history, decl, policy, final=True)


def alert_ids(usage: UsageEvent, evaluation: Evaluation) -> set[str]:
    return {a.alert_id for a in engine.make_alerts(usage, evaluation, 0)}


def summary(evaluation: Evaluation) -> tuple[str, tuple[str, ...]]:
    return str(evaluation.decision), tuple(sorted(evaluation.rule_ids))


def describe(items: dict[str, Any]) -> str:
    return "\n".join(f"  {k}: {v}" for k, v in sorted(items.items()))
