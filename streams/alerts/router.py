"""``consentinel router``: alerts topic -> incident store -> sinks.

- Consumes ``consentinel.alerts.v1`` as group ``<app_id>-router`` (aiokafka, manual
  commits), and ``consentinel.audit.v1`` for erasure requests, which redact a subject's
  evidence in the store (``erasure``, ``router_intake``). Each fetched batch is ingested
  into the store in ONE SQLite transaction; the Kafka offsets are committed only after it
  committed. A crash in between replays the batch, and the store ignores what it already
  has (``alert_id`` + revision; an erasure applied twice changes nothing more).
- One delivery worker per configured sink drains the store's outbox (``delivery``).
  Sinks come from a YAML file (``--sinks FILE`` or ``CONSENTINEL_SINKS_FILE``, see
  ``config``); none configured means console only, and the router says so at start.
- Metrics on ``http://127.0.0.1:<metrics_port + 2>/metrics`` (or ``--metrics-port``;
  0 picks a free port, printed at start), ``/healthz`` beside it: loopback unless
  ``CONSENTINEL_METRICS_HOST`` says otherwise, behind ``CONSENTINEL_METRICS_TOKEN`` when
  set (``ops_endpoints``).
- SIGTERM or Ctrl-C: stops fetching, lets the current batch commit, stops the workers
  (an interrupted delivery stays in the outbox), closes the store. Exit status 0.

An alert that fails validation is logged with its partition, offset and the reason (never
its content) and skipped (``router_intake``); its offset is committed with the batch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from consentinel.streams.events import codec, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.metrics import (
    INCIDENT_TRANSITIONS,
    INCIDENTS_OPEN,
    SINK_BACKLOG,
)
from consentinel.streams.events.ops_access import OpsAccess
from consentinel.streams.events.records import Alert
from consentinel.streams.events.settings import Settings

from . import config as router_config
from . import kafka_logs, router_intake
from .delivery import DeliveryWorker
from .erasure import Erasure
from .model import Change, ChangeKind
from .openapi import router_document
from .ops_endpoints import metrics, ops_app, serve
from .sinks.base import RefreshingSink
from .store import DAY_MS, IncidentStore

log = logging.getLogger("consentinel.router")

_TRANSITION_LABEL = {
    ChangeKind.OPENED: "open",
    ChangeKind.REOPENED: "open",
    ChangeKind.ACKNOWLEDGED: "acknowledged",
    ChangeKind.RESOLVED: "resolved",
}


class Router:
    def __init__(
        self,
        settings: Settings,
        cfg: router_config.RouterConfig,
        metrics_port: int | None = None,
        housekeeping_s: float = 5.0,
        ops: OpsAccess | None = None,
    ) -> None:
        self.settings = settings
        self.ops = OpsAccess() if ops is None else ops
        self.cfg = cfg
        self.metrics_port = settings.metrics_port + 2 if metrics_port is None else metrics_port
        self.housekeeping_s = housekeeping_s
        self.topic = settings.topic(topics.ALERTS)
        self.audit_topic = settings.topic(topics.AUDIT)
        self.group = f"{settings.app_id}-router"
        self.store = IncidentStore.open(
            settings,
            window_ms=int(cfg.window_hours * 3_600_000),
            max_samples=cfg.sample_alert_ids,
            group_by=cfg.group_by,
        )
        self.workers = [
            DeliveryWorker(self.store, spec.sink, spec.backoff, cfg.console_url)
            for spec in cfg.sinks
        ]
        self.bound_port: int | None = None
        self._noise = kafka_logs.CoordinatorNoise(self.group)
        self._open_labels: set[tuple[str, str]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._noise = kafka_logs.install(self.group)
        await asyncio.to_thread(self.store.register_sinks, [w.sink.name for w in self.workers])
        runner = await self._serve_metrics()
        self._announce()
        tasks = [asyncio.create_task(w.run(stop), name=f"sink-{w.sink.name}") for w in self.workers]
        tasks += [
            asyncio.create_task(self._refresh(w.sink, stop), name=f"refresh-{w.sink.name}")
            for w in self.workers
            if isinstance(w.sink, RefreshingSink)
        ]
        tasks.append(asyncio.create_task(self._housekeeping(stop), name="housekeeping"))
        try:
            await self._consume(stop)
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in self.workers:
                with contextlib.suppress(Exception):
                    await w.sink.close()
            await runner.cleanup()
            kafka_logs.uninstall(self._noise)
            self.store.close()
            log.info("router stopped; every ingested alert is committed to %s", self.store.path)

    def _announce(self) -> None:
        where = f"http://{self.ops.host}:{self.bound_port}"
        log.info(
            "router consuming %s (and erasure requests on %s) as group %s; incidents in %s; "
            "metrics at %s/metrics",
            self.topic,
            self.audit_topic,
            self.group,
            self.store.path,
            where,
        )
        if not self.workers:
            log.info(
                "no sinks configured (%s): incidents reach the operator console only; "
                "give --sinks FILE or CONSENTINEL_SINKS_FILE to notify Alertmanager, a "
                "webhook, Slack or e-mail",
                self.cfg.source,
            )
        for w in self.workers:
            log.info("sink %s: %s", w.sink.name, type(w.sink).__name__)

    # -- alerts in ---------------------------------------------------------------------

    async def _start_consumer(self, stop: asyncio.Event) -> AIOKafkaConsumer | None:
        delay = 1.0
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                self.topic,
                self.audit_topic,
                bootstrap_servers=self.settings.bootstrap_servers.split(","),
                group_id=self.group,
                client_id=f"{self.group}-{os.getpid()}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
            )
            try:
                await consumer.start()
                return consumer
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                log.warning(
                    "no Kafka broker answers at %s (%s); retrying in %.0fs. Start the broker "
                    "(`make broker`) or set CONSENTINEL_BOOTSTRAP_SERVERS",
                    self.settings.bootstrap_servers,
                    type(exc).__name__,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
        return None

    async def _consume(self, stop: asyncio.Event) -> None:
        consumer = await self._start_consumer(stop)
        if consumer is None:
            return
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=1000, max_records=500))
                halt = asyncio.ensure_future(stop.wait())
                await asyncio.wait({fetch, halt}, return_when=asyncio.FIRST_COMPLETED)
                halt.cancel()
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, KafkaError):
                        await fetch
                    break
                batches = fetch.result()
                if consumer.assignment():
                    self._noise.settled()
                alerts, erasures = router_intake.decode(batches, self.topic)
                if alerts or erasures:
                    changes = await self._ingest(alerts, stop, erasures)
                    if changes is None:
                        break  # stopped while the store was unavailable: do not commit
                    self._after(changes)
                if batches:
                    try:
                        await consumer.commit()
                    except KafkaError as exc:
                        log.warning(
                            "could not commit alert offsets (%s); the batch is in the store "
                            "and will be replayed and recognized after a rebalance",
                            type(exc).__name__,
                        )
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _ingest(
        self, alerts: Sequence[Alert], stop: asyncio.Event, erasures: Sequence[Erasure] = ()
    ) -> list[Change] | None:
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(
                    router_intake.take_in, self.store, alerts, erasures, now_ms()
                )
            except sqlite3.Error as exc:
                log.error(
                    "cannot write %d alert(s) to %s (%s); retrying in %.1fs, offsets not "
                    "committed. Check the disk and that only one router runs per store",
                    len(alerts),
                    self.store.path,
                    exc,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return None
            delay = min(delay * 2, 30.0)

    def _after(self, changes: list[Change]) -> None:
        notify = False
        for c in changes:
            label = _TRANSITION_LABEL.get(c.kind)
            if label is not None:
                INCIDENT_TRANSITIONS.labels(label).inc()
                notify = True
            if c.kind in (ChangeKind.OPENED, ChangeKind.REOPENED, ChangeKind.RESOLVED):
                log.info("incident %s %s (revision %d)", c.incident_id, c.kind.value, c.revision)
            elif c.kind is ChangeKind.ALERT_ADDED:
                notify = True  # count milestones notify too; a wake is cheap
        if notify:
            for w in self.workers:
                w.wake()

    # -- periodic ----------------------------------------------------------------------

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        last_prune = 0
        while not stop.is_set():
            try:
                backlog = await asyncio.to_thread(self.store.backlog)
                for name, n in backlog.items():
                    SINK_BACKLOG.labels(name).set(n)
                counts = await asyncio.to_thread(self.store.open_counts)
                for key in self._open_labels - set(counts):
                    INCIDENTS_OPEN.labels(*key).set(0)
                for key, n in counts.items():
                    INCIDENTS_OPEN.labels(*key).set(n)
                self._open_labels |= set(counts)
                if now_ms() - last_prune > 3_600_000:
                    await asyncio.to_thread(self.store.prune, now_ms() - 7 * DAY_MS)
                    last_prune = now_ms()
            except sqlite3.Error as exc:
                log.warning("housekeeping could not read %s (%s)", self.store.path, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.housekeeping_s)

    async def _refresh(self, sink: RefreshingSink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), sink.refresh_seconds)
            if stop.is_set():
                return
            backlog = await asyncio.to_thread(self.store.backlog)
            if backlog.get(sink.name, 0):
                continue  # the worker is catching up; it states the newest state itself
            incidents = await asyncio.to_thread(self.store.list_incidents, "active", 10_000)
            try:
                await sink.refresh(incidents, self.cfg.console_url)
            except Exception as exc:
                log.warning(
                    "sink %s: refresh of %d incident(s) failed: %s", sink.name, len(incidents), exc
                )

    # -- metrics -----------------------------------------------------------------------

    def ops_app(self) -> web.Application:
        """``/metrics``, ``/healthz`` and ``/openapi.json``, behind ``self.ops``."""

        async def healthz(_: web.Request) -> web.Response:
            backlog = await asyncio.to_thread(self.store.backlog)
            return web.Response(
                body=codec.dumps({"ok": True, "backlog": backlog}),
                content_type="application/json",
            )

        async def openapi(_: web.Request) -> web.Response:
            body = codec.dumps(router_document())
            return web.Response(body=body, content_type="application/json")

        routes = [("/metrics", metrics), ("/healthz", healthz), ("/openapi.json", openapi)]
        return ops_app(self.ops, routes)

    async def _serve_metrics(self) -> web.AppRunner:
        runner, self.bound_port = await serve(self.ops_app(), self.metrics_port)
        return runner


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="consentinel router",
        description="Group alerts into incidents and notify the on-call sinks.",
    )
    p.add_argument(
        "--sinks",
        default=os.environ.get("CONSENTINEL_SINKS_FILE") or None,
        help="YAML file of sinks (default: $CONSENTINEL_SINKS_FILE; none: console only)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of /metrics (default: CONSENTINEL_METRICS_PORT + 2; 0 = any free port)",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # coordinator noise: kafka_logs
    cfg = router_config.load(args.sinks, settings)
    router = Router(settings, cfg, metrics_port=args.metrics_port, ops=OpsAccess.from_env())

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await router.run(stop)

    asyncio.run(_run())
    return 0
