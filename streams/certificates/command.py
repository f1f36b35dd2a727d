"""``consentinel certificates verify [--once] [--metrics-port N]``: the certificate
service on Kafka.

Reads the consent topic as the consumer group ``<app_id>-certificates`` (from its committed
offsets, else the beginning), verifies each claimed lead certificate through its issuer's
verifier, chosen by the certificate's shape: TrustedForm URLs through the TrustedForm
verifier (``CONSENTINEL_CERTIFICATE_ENDPOINT``, key from ``CONSENTINEL_CERTIFICATE_KEY``),
Jornaya LeadiD tokens through the LeadiD verifier (account code from
``CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT``),
and writes each result to the consent topic, keyed by the subject key; offsets are
committed after the results are acknowledged. ``--once`` stops when it has caught up with
the end of the topic (for cron jobs and tests).

While it runs (not with ``--once``) it serves ``/metrics`` and ``/healthz`` on
``CONSENTINEL_METRICS_PORT + 3`` (or ``--metrics-port``; 0 picks a free port, printed at
start), loopback unless ``CONSENTINEL_METRICS_HOST`` says otherwise, behind
``CONSENTINEL_METRICS_TOKEN`` when set: the router's ``ops_endpoints``, run in a thread.
``/healthz`` is 503 until the consent topic's partitions are assigned, then 200.
SIGTERM or Ctrl-C: it finishes the record in hand, commits, and exits 0.

Settings are checked at start: at least one issuer configured, every key reference
resolvable, endpoints https; anything else stops it with every problem listed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from consentinel.streams.alerts.ops_endpoints import ThreadedOps, metrics, ops_app, serve_in_thread
from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import FatalConfigError, InvalidInput, RetriableError
from consentinel.streams.events.ops_access import OpsAccess
from consentinel.streams.events.partitioning import subject_message_key
from consentinel.streams.events.records import ConsentEvent
from consentinel.streams.events.secrets import UnresolvedSecret, resolve
from consentinel.streams.events.settings import Secret, Settings

from .by_shape import ByShape
from .leadid import LeadidVerifier
from .service import CertificateService, declare_metrics
from .trustedform import TrustedFormVerifier
from .verifier import Verifier

log = logging.getLogger("consentinel.certificates")


def _secret(reference: str, variable: str, problems: list[str]) -> Secret | None:
    try:
        return resolve(reference, environ=os.environ)
    except UnresolvedSecret as exc:
        problems.append(f"{variable}: {exc.problem}")
        return None


def verifier_from(settings: Settings) -> ByShape:
    """The configured verifiers, one per issuer configured (TrustedForm: a key; LeadiD: an
    account code); ``FatalConfigError`` naming everything to fix."""
    problems: list[str] = []
    trustedform: TrustedFormVerifier | None = None
    leadid: LeadidVerifier | None = None
    tf_key = lid_key = None
    if settings.certificate_key:
        tf_key = _secret(settings.certificate_key, "CONSENTINEL_CERTIFICATE_KEY", problems)
    if settings.certificate_leadid_key:
        lid_key = _secret(
            settings.certificate_leadid_key, "CONSENTINEL_CERTIFICATE_LEADID_KEY", problems
        )
        if not settings.certificate_leadid_account:
            problems.append(
                "CONSENTINEL_CERTIFICATE_LEADID_KEY is set but "
                "CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT is not: set the LeadiD account code"
            )
    if not settings.certificate_key and not settings.certificate_leadid_account:
        problems.append(
            "CONSENTINEL_CERTIFICATE_KEY is not set: name the TrustedForm API key as "
            "env:NAME or file:PATH (and/or set CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT for "
            "Jornaya LeadiD tokens)"
        )
    for build in (
        lambda: TrustedFormVerifier(tf_key, endpoint=settings.certificate_endpoint)
        if tf_key is not None else None,
        lambda: LeadidVerifier(
            settings.certificate_leadid_account, key=lid_key,
            endpoint=settings.certificate_leadid_endpoint,
        ) if settings.certificate_leadid_account else None,
    ):  # fmt: skip
        try:
            built = build()
        except FatalConfigError as exc:
            problems += exc.problems
            continue
        if isinstance(built, TrustedFormVerifier):
            trustedform = built
        elif isinstance(built, LeadidVerifier):
            leadid = built
    if problems:
        raise FatalConfigError(problems, "consentinel certificates")
    return ByShape(trustedform, leadid)


def run(
    settings: Settings,
    verifier: Verifier,
    *,
    once: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    on_ready: Callable[[], None] = lambda: None,
) -> int:
    """Verify claimed certificates until stopped (or, with ``once``, caught up); returns
    how many results were written. ``on_ready`` is called once the partitions are
    assigned."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    topic = settings.topic(topics.CONSENT)
    servers = settings.bootstrap_servers.split(",")
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=servers, group_id=f"{settings.app_id}-certificates",
            enable_auto_commit=False, auto_offset_reset="earliest",
            client_id="consentinel-certificates", request_timeout_ms=15_000,
        )  # fmt: skip
        producer = KafkaProducer(bootstrap_servers=servers, acks="all", max_block_ms=10_000)
    except KafkaError as exc:
        raise RetriableError(f"no Kafka broker answers at {servers} ({exc})") from None

    def send(event: ConsentEvent) -> None:
        try:
            producer.send(
                topic, key=subject_message_key(event.subject_key), value=codec.encode(event)
            ).get(timeout=30)
        except KafkaError as exc:
            raise RetriableError(f"a certificate result was not written ({exc})") from None

    service = CertificateService(verifier, send)
    written = 0
    try:
        deadline = time.monotonic() + 30
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RetriableError(f"the consent topic {topic} does not exist: create the topics")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        on_ready()
        while not should_stop():
            batch = consumer.poll(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    try:
                        event = codec.decode(ConsentEvent, record.value or b"")
                    except InvalidInput as exc:  # the worker dead-letters it
                        log.warning("skipped an unreadable consent record (%s)", exc.code)
                        continue
                    if service.handle(event) is not None:
                        written += 1
            if batch:
                consumer.commit()
            elif once:
                end = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= end[tp] for tp in tps):
                    break
    finally:
        consumer.close()
        producer.close()
    return written


class Health:
    """``/healthz``: ready once the partitions are assigned. Set from the main thread,
    read from the ops thread; blocks on nothing."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self.since_ms: int | None = None

    def set(self) -> None:
        if not self._ready.is_set():
            self.since_ms = int(time.time() * 1000)
            self._ready.set()

    def is_set(self) -> bool:
        return self._ready.is_set()


def serve_ops(port: int, health: Health, access: OpsAccess | None = None) -> ThreadedOps:
    """``/metrics`` and ``/healthz`` on ``port`` (0: any free one), through the router's
    ``ops_endpoints`` (same bind address, same token); ``FatalConfigError`` when the port
    is taken."""
    from aiohttp import web

    access = access or OpsAccess.from_env()

    async def healthz(_: Any) -> Any:
        ready = health.is_set()
        return web.Response(
            status=200 if ready else 503,
            body=codec.dumps({"ready": ready, "since_ms": health.since_ms}),
            content_type="application/json",
        )

    try:
        return serve_in_thread(
            ops_app(access, [("/metrics", metrics), ("/healthz", healthz)]), port
        )
    except OSError as exc:
        raise FatalConfigError(
            [f"cannot serve metrics on {access.host}:{port} ({exc.strerror}): another process "
             f"has the port; pass --metrics-port with a free one (or set "
             f"CONSENTINEL_METRICS_PORT)"],
            "consentinel certificates",
        ) from None  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="consentinel certificates", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    verify = sub.add_parser("verify", help="verify claimed lead certificates (R23)")
    verify.add_argument("--once", action="store_true", help="stop once caught up")
    verify.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of /metrics and /healthz (default: CONSENTINEL_METRICS_PORT + 3; 0 = any "
        "free port); not served with --once",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    verifier = verifier_from(settings)
    declare_metrics()
    health = Health()
    ops: ThreadedOps | None = None
    if not args.once:
        port = settings.metrics_port + 3 if args.metrics_port is None else args.metrics_port
        ops = serve_ops(port, health)
        print(
            f"consentinel certificates: verifying for TrustedForm "
            f"{'on' if verifier.trustedform else 'off'}, LeadiD "
            f"{'on' if verifier.leadid else 'off'}; metrics at "
            f"http://{OpsAccess.from_env().host}:{ops.port}/metrics (readiness: /healthz)",
            file=sys.stderr,
            flush=True,
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        written = run(settings, verifier, once=args.once, should_stop=stop.is_set,
                      on_ready=health.set)  # fmt: skip
    finally:
        if ops is not None:
            ops.close()
    print(f"{written} certificate result(s) written")
    return 0
