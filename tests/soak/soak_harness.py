"""What the fault tests share: processes of the stack, signed load through the real ingest
server, the oracle of what must come out, and readers of the topics.

Used by tests/integration/test_cluster_faults.py (a broker SIGKILLed on a 3-node cluster)
and tests/soak/soak.py (the worker, ingest server and router SIGKILLed in turn). Loaded
with importlib (no tests/__init__.py).

The load is the demo's cast (deploy/demo/connectors.yaml and registry.yaml): reader N
subscribes to Le Quotidien's newsletter on Mailchimp (a consent), receives the newsletter
through Mandrill (a consented use, no alert), then Campagne 2027's political letter through
SendGrid (processed and delivered: uses outside the consent, alerts). Each request is signed
as its platform signs it and retried on 503/429/no answer, as platforms do. For every request
answered 2xx, the same connector, run in this process, says which events it carried: those
ids must be on the topics, and the pure policy over them says which verdicts and alerts
must follow. Addresses never leave this process except in the signed bodies.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from consentinel.connectors import config as connectors_config
from consentinel.connectors.contract import Connector, Edge, Request
from consentinel.connectors.demo import platforms as pf
from consentinel.connectors.demo.feed import RETRIED, HttpTransport
from consentinel.connectors.demo.platforms import Post
from consentinel.streams.events import codec, topics
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.records import (
    USE_KINDS,
    Alert,
    ConsentEvent,
    Declaration,
    UsageEvent,
    Verdict,
)
from consentinel.streams.events.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "consentinel"
CONNECTORS = ROOT / "deploy" / "demo" / "connectors.yaml"
REGISTRY = ROOT / "deploy" / "demo" / "registry.yaml"
KAFKA_SH = ROOT / "deploy" / "kafka.sh"

MAILCHIMP = "mailchimp-lequotidien"
MANDRILL = "mandrill-lequotidien"
SENDGRID = "sendgrid-campagne2027"
NEWSLETTER_LIST = "9e2f4a1c07"
MATINALE = "lq-matinale"
POLITICAL = "c2027-lettre-aux-lecteurs"
DAY_MS = 86_400_000


#: the worker tests' oracle and helpers (tests/streams/worker_harness.py)
import worker_harness as wh  # noqa: E402  (tests/streams is on the path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.5
) -> None:
    """Poll ``condition`` until true; ``AssertionError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


# -- the stack's processes --------------------------------------------------------------------


def stack_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of every subprocess: these settings, free ports of their own."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(settings.home)),
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(settings.home),
        "CONSENTINEL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "CONSENTINEL_TOPIC_PREFIX": settings.topic_prefix,
        "CONSENTINEL_APP_ID": settings.app_id,
        "CONSENTINEL_PARTITIONS": str(settings.partitions),
        "CONSENTINEL_GRACE_SECONDS": str(settings.grace_seconds),
        "CONSENTINEL_PEPPER": settings.pepper.reveal().decode(),
        "CONSENTINEL_TOKEN": settings.token.reveal().decode(),
        "CONSENTINEL_LOG_LEVEL": "info",
        **extra,
    }


class Proc:
    """One consentinel command as a subprocess, its output appended to ``log_path``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {self.name} start #{self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def since_last_start(self) -> str:
        text = self.log()
        return text[text.rfind(f"===== {self.name} start #{self.starts} =====") :]

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would; waits (up to 30 s) until it is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM and wait; SIGKILL if it has not stopped after ``timeout_s``."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def worker(settings: Settings, logs: Path, replication: int) -> Proc:
    # Faust reads TOPIC_REPLICATION_FACTOR for the changelog and internal topics it creates
    env = stack_env(
        settings,
        CONSENTINEL_METRICS_PORT=str(free_port()),
        CONSENTINEL_WORKER_PORT=str(free_port()),
        TOPIC_REPLICATION_FACTOR=str(replication),
    )
    return Proc("worker", [str(EXE), "worker"], env, logs / "worker.log")


def ingest(settings: Settings, logs: Path) -> tuple[Proc, str]:
    port = free_port()
    env = stack_env(
        settings, CONSENTINEL_INGEST_PORT=str(port), CONSENTINEL_METRICS_PORT=str(free_port())
    )
    argv = [str(EXE), "ingest", "--config", str(CONNECTORS)]
    return Proc("ingest", argv, env, logs / "ingest.log"), f"http://127.0.0.1:{port}"


def router(settings: Settings, logs: Path) -> Proc:
    env = stack_env(settings, CONSENTINEL_METRICS_PORT=str(free_port()))
    argv = [str(EXE), "router", "--metrics-port", "0"]
    return Proc("router", argv, env, logs / "router.log")


def worker_judging(proc: Proc) -> bool:
    """The worker's latest start has read the purpose registry (it judges from now on)."""
    if not proc.alive():
        raise AssertionError(f"the worker exited:\n{proc.log()[-3000:]}")
    return "purpose registry read" in proc.since_last_start()


def ingest_listening(proc: Proc) -> bool:
    if not proc.alive():
        raise AssertionError(f"the ingest server exited:\n{proc.log()[-3000:]}")
    return "listening on" in proc.since_last_start()


# -- topics -----------------------------------------------------------------------------------


def create_topics(settings: Settings, replication: int) -> None:
    """Every topic of DESIGN.md (``consentinel topics create``) and the worker's tick topic,
    with ``replication`` replicas.

    The tick topic is made here, not left to the worker: the workers of these runs keep the
    default CONSENTINEL_REPLICATION_FACTOR of 1, and on a cluster with min.insync.replicas=2
    a topic of one replica could never be written with acks=all. ``topics_admin.with_admin``
    tries again with a new admin client while a cluster just started is still settling."""
    from consentinel.streams import topics_admin
    from consentinel.streams.checker.ticks import TICK_TOPIC_CONFIG, tick_topic
    from consentinel.streams.registry import command as registry_cmd
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    topics_admin.create(replace(settings, replication_factor=replication), out=io.StringIO())
    tick = NewTopic(
        tick_topic(settings),
        settings.partitions,
        replication,
        topic_configs=dict(TICK_TOPIC_CONFIG),
    )

    def create_tick(admin: Any) -> None:
        if tick.name not in admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):  # an earlier attempt made it
                admin.create_topics([tick], timeout_ms=30_000)
        wait_for(lambda: tick.name in admin.list_topics(), 60, "the tick topic to be created")

    topics_admin.with_admin(settings.bootstrap_servers, create_tick)
    out = io.StringIO()
    assert registry_cmd.apply(settings, str(REGISTRY), out=out) == 0, out.getvalue()


def read_topic(settings: Settings, base: str, timeout_s: float = 60) -> list[bytes]:
    """Every value of a topic, from its beginning to its end as of now."""
    import topicread  # tests/ is on the path (pytest's pythonpath; soak.py puts it there)

    records = topicread.read_topic(settings.bootstrap_servers, settings.topic(base), timeout_s)
    return [value for _, value, _ in records]


# -- the load ----------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: Counter[int] = field(default_factory=Counter)  # final status per request
    retries: int = 0
    gave_up: int = 0


class Load:
    """Posts each reader's story through the ingest server and remembers what it accepted."""

    def __init__(self, settings: Settings, ingest_url: str, run: str) -> None:
        self.settings = settings
        self.run = run
        self.cfg = connectors_config.load(CONNECTORS, settings)
        self.transport = HttpTransport(ingest_url, timeout_s=30)
        pseudo = Pseudonymizer(settings.pepper.reveal())
        self.connectors: dict[str, Connector] = {}
        self.signers: dict[str, Callable[[Request, Any], Request]] = {}
        for name in (MAILCHIMP, MANDRILL, SENDGRID):
            inst = self.cfg.instances[name]
            self.connectors[name] = self.cfg.classes[name](inst, Edge(pseudo, inst.default_region))
            module = importlib.import_module(self.cfg.classes[name].__module__)
            self.signers[name] = module.sign
        self.usage: dict[str, UsageEvent] = {}
        self.consent: dict[str, ConsentEvent] = {}
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next = 0
        self.readers_done = 0

    # what reader n's platforms post
    def story(self, n: int, now: int) -> list[Post]:
        email = f"lecteur.{self.run}.{n}@lecteurs-soak.example"
        member = f"m{self.run}{n}"
        subscribe = pf.mailchimp_member(
            "subscribe",
            fired_at_ms=now - 30 * DAY_MS,
            list_id=NEWSLETTER_LIST,
            member_id=member,
            email=email,
            ip="198.51.100.7",
            first_name="Lecteur",
        )
        newsletter = pf.mandrill_event(
            "send",
            message_id=f"md-{self.run}-{n}",
            ts_s=now // 1000 - 120,
            email=email,
            subject="La Matinale",
            tags=[MATINALE, NEWSLETTER_LIST],
            metadata={"purpose": "newsletter", "campaign_id": MATINALE},
            subaccount="lequotidien",
        )
        political = [
            pf.sendgrid_event(
                kind,
                event_id=f"sg-{self.run}-{n}-{kind}",
                message_id=f"sgm-{self.run}-{n}",
                ts_s=now // 1000 - later,
                email=email,
                campaign_id=POLITICAL,
                campaign_name="Lettre aux lecteurs",
                categories=["politique"],
            )
            for kind, later in (("processed", 60), ("delivered", 58))
        ]
        return [
            Post(MAILCHIMP, subscribe, pf.FORM, "subscribe"),
            Post(MANDRILL, pf.mandrill_body([newsletter]), pf.FORM, "newsletter"),
            Post(SENDGRID, pf.sendgrid_body(political), pf.JSON, "political", events=2),
        ]

    def post(self, post: Post, deadline_s: float = 120) -> int:
        """Deliver one request, retrying as platforms do; record its events on a 2xx."""
        inst = self.cfg.instances[post.instance]
        deadline = time.monotonic() + deadline_s
        attempt = 0
        while True:
            request = Request(
                method="POST",
                url=self.transport.base_url(inst),
                path="/",
                query={},
                headers={"content-type": post.content_type, **post.headers},
                body=post.body,
                received_at_ms=int(time.time() * 1000),
            )
            signed = self.signers[post.instance](request, inst)
            answer = self.transport.deliver(inst, signed)
            if 200 <= answer.status < 300:
                output = self.connectors[post.instance].map_request(signed)
                with self._lock:
                    self.tally.requests[answer.status] += 1
                    self.usage.update((u.event_id, u) for u in output.usage)
                    self.consent.update((c.event_id, c) for c in output.consent)
                return answer.status
            if answer.status not in RETRIED or time.monotonic() > deadline:
                with self._lock:
                    self.tally.requests[answer.status] += 1
                    self.tally.gave_up += 1
                return answer.status
            with self._lock:
                self.tally.retries += 1
            attempt += 1
            time.sleep(min(4.0, 0.25 * 2 ** min(attempt, 4)))

    def _loop(self, pace_s: float) -> None:
        while not self._stop.is_set():
            with self._lock:
                n = self._next
                self._next += 1
            for post in self.story(n, int(time.time() * 1000)):
                self.post(post)  # in order: the consent is taken in before the uses
                time.sleep(pace_s)
            with self._lock:
                self.readers_done += 1

    def start(self, threads: int = 2, pace_s: float = 0.05) -> None:
        """Post in the background until ``stop``: ``threads`` readers at a time."""
        for i in range(threads):
            t = threading.Thread(target=self._loop, args=(pace_s,), name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 300) -> None:
        """Finish the readers under way (their retries included), then return."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
            assert not t.is_alive(), f"{t.name} did not finish within {timeout_s:.0f} s"

    def accepted(self) -> int:
        with self._lock:
            return len(self.usage) + len(self.consent)


# -- what must come out -----------------------------------------------------------------------


@dataclass
class Expected:
    usage_ids: set[str]
    consent_ids: set[str]
    verdict_ids: set[str]  # usage event ids that must get a verdict
    alert_ids: set[str]


def expected(settings: Settings, load: Load) -> Expected:
    """The pure policy over every accepted event: the verdicts and alerts the worker owes."""
    decls: dict[str, Declaration] = wh.declarations(REGISTRY)
    by_subject: dict[str, list[ConsentEvent]] = {}
    for c in load.consent.values():
        by_subject.setdefault(c.subject_key, []).append(c)
    verdicts: set[str] = set()
    alerts: set[str] = set()
    for u in load.usage.values():
        if u.kind not in USE_KINDS:
            continue
        verdicts.add(u.event_id)
        evaluation = wh.oracle(settings, u, by_subject.get(u.subject_key, []), decls)
        alerts |= wh.alert_ids(u, evaluation)
    return Expected(set(load.usage), set(load.consent), verdicts, alerts)


@dataclass
class Found:
    usage: Counter[str]
    consent: Counter[str]
    verdicts: Counter[str]  # first (non-correction) verdicts per usage event id
    alerts: Counter[str]  # alert records per alert id (first revision)

    @staticmethod
    def read(settings: Settings) -> Found:
        usage = Counter(
            codec.decode(UsageEvent, v).event_id for v in read_topic(settings, topics.USAGE)
        )
        consent = Counter(
            codec.decode(ConsentEvent, v).event_id for v in read_topic(settings, topics.CONSENT)
        )
        verdicts: Counter[str] = Counter()
        for v in read_topic(settings, topics.VERDICTS):
            verdict = codec.decode(Verdict, v)
            if not verdict.correction:
                verdicts[verdict.usage_event_id] += 1
        alerts: Counter[str] = Counter()
        for v in read_topic(settings, topics.ALERTS):
            alert = codec.decode(Alert, v)
            if alert.revision == 1:
                alerts[alert.alert_id] += 1
        return Found(usage, consent, verdicts, alerts)


def dupes(counter: Counter[str]) -> int:
    """Records beyond the first, over all ids."""
    return sum(n - 1 for n in counter.values() if n > 1)


def report(exp: Expected, found: Found, out: Callable[[str], None] = print) -> dict[str, int]:
    """Prints expected vs found per kind; returns the numbers missing per kind."""
    rows = [
        ("usage events", exp.usage_ids, found.usage),
        ("consent events", exp.consent_ids, found.consent),
        ("verdicts", exp.verdict_ids, found.verdicts),
        ("alerts", exp.alert_ids, found.alerts),
    ]
    missing: dict[str, int] = {}
    out(f"{'':16}{'expected':>10}{'found':>10}{'missing':>10}{'extra ids':>10}{'dup records':>12}")
    for label, want, got in rows:
        lost = want - set(got)
        missing[label] = len(lost)
        extra = len(set(got) - want)
        found_n = len(want & set(got))
        out(f"{label:16}{len(want):>10}{found_n:>10}{len(lost):>10}{extra:>10}{dupes(got):>12}")
    return missing
