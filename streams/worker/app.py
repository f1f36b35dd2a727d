"""The Faust application: one agent over consent, usage and ticks, three tables, two timers.

``create_app(settings)`` builds it; ``build`` also returns the processor and the registry
view (for the worker and tests). Choices, with the traps they avoid (reference/streaming.md):

- ``processing_guarantee="at_least_once"``; exactly-once is not used (open bugs, and it
  cannot cover the alerts topic, which the app does not consume). A record is acknowledged
  to Faust only once its outputs are acknowledged (acks=all) and then its state written
  (``Processor.submit``, pipelined: the next records are handled meanwhile) and the
  changelog records of that state acknowledged (``worker.batches.StateWriter``: the state
  of a batch written to the stores at once and its changelog records sent in produce
  batches, on a producer of their own; outputs in produce batches on another, so verdicts
  never queue behind changelog records), so offsets never run ahead of outputs or state;
  ids are deterministic, so repeats are recognized downstream.
- ONE agent, ``concurrency=1``, reads the three co-partitioned topics: the consent ledger
  and the usage checker are separate modules but one stream, so a usage being judged and a
  consent being applied for the same subject never interleave (#606 is avoided too).
- Tables hold bytes (raw serializers) encoded with our codec; changelog writes go to the
  current record's partition, which is the subject's partition in all three topics.
- RocksDB options cap memory per partition database (the default is a 2 GiB block cache
  plus 3 x 64 MiB write buffers per partition per table).
- ``table_standby_replicas=0`` (one node; standbys are pointless and had bugs);
  ``web_tables_enabled=False``; the web server only on loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

import faust
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor, subject_of
from consentinel.streams.checker.ticks import (
    Tick,
    TickClock,
    TickSkips,
    tick_interval,
    tick_topic,
)
from consentinel.streams.events import metrics, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.events.settings import Settings
from consentinel.streams.policy.engine import PolicySettings
from consentinel.streams.registry.view import RegistryView
from consentinel.streams.worker import faust_compat
from consentinel.streams.worker.agent import BATCH_MAX, CheckerAgent
from consentinel.streams.worker.batches import (
    Lanes,
    OutputSender,
    StateReader,
    StateWriter,
    producer_for,
)
from consentinel.streams.worker.health import Readiness
from consentinel.streams.worker.holes import HoleReader
from consentinel.streams.worker.restore import ChangelogRestorer
from faust.types import TP

log = logging.getLogger("consentinel.worker")

_MiB = 1024 * 1024

#: RocksDB options per table, per partition database. Worst case per partition:
#: block cache + write_buffer_size x max_write_buffer_number. Bloom filters of 10 bits a key
#: (RocksDB's usual; Faust's default of 3 lets about a quarter of the misses read a block):
#: most reads of the holds table are misses (a subject with no held and no kept uses), and
#: a miss took 0.9-1.3 us against 1.9-2.1 us with 3 bits, a hit on the ledger 5.9-6.3 us
#: against 6.8-7.1 (a bench ledger and holds store of one partition at 1e6 subjects,
#: compacted, 2026-12); the filters take about 1.25 bytes a key.
ROCKSDB_OPTIONS: dict[str, dict[str, int]] = {
    # consent histories: the hot read path of every use
    "ledger": {
        "block_cache_size": 16 * _MiB,
        "write_buffer_size": 4 * _MiB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * _MiB,
        "max_open_files": 256,
        "bloom_filter_size": 10,
    },
    # pending and alerted uses: small, short-lived
    "holds": {
        "block_cache_size": 4 * _MiB,
        "write_buffer_size": 2 * _MiB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 8 * _MiB,
        "max_open_files": 128,
        "bloom_filter_size": 10,
    },
    # one counter record per partition
    "stats": {
        "block_cache_size": 1 * _MiB,
        "write_buffer_size": 1 * _MiB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 2 * _MiB,
        "max_open_files": 32,
    },
}

#: Changelog records Faust's producer buffer holds before the stream waits for it (Faust's
#: default is 100: the conductor stalled after every batch; ``faust_compat.changelog_buffer``).
#: The tables' own changelog records go around it now (``worker.batches.StateWriter``): only
#: what is still sent through Faust's topics (ticks) passes through this buffer.
CHANGELOG_BUFFER = 10_000

#: Longest time the broker holds the consumer's fetch when there is nothing to send (Faust
#: hard-codes 1,500 ms; ``faust_compat.fetch_max_wait``): also the longest a busy partition's
#: next records can wait for a fetch in flight without it. An idle worker fetches 40 times
#: a second.
FETCH_MAX_WAIT_MS = 25

METRICS_INTERVAL_S = 5.0
#: Longest wait at a rebalance for the changelog records sent to be acknowledged.
REVOKE_FLUSH_S = 60.0
#: Longest wait for the consent end offsets a tick carries (then the tick is skipped).
TICK_QUERY_TIMEOUT_S = 10.0


def app_id(settings: Settings) -> str:
    """The consumer group and the prefix of the changelog topics."""
    return f"{settings.topic_prefix}{settings.app_id}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def names_for(settings: Settings) -> Names:
    return Names(
        consent=settings.topic(topics.CONSENT),
        usage=settings.topic(topics.USAGE),
        tick=tick_topic(settings),
        verdicts=settings.topic(topics.VERDICTS),
        alerts=settings.topic(topics.ALERTS),
        deadletter=settings.topic(topics.DEADLETTER),
    )


_faust_metrics: Any = None


def _prometheus_monitor() -> Any:
    """Faust's own sensors (messages, commits, rebalances...) in our registry, once per
    process; not those of each table operation and stream event (``lean_prometheus_monitor``)."""
    global _faust_metrics
    from faust.sensors.prometheus import FaustMetrics

    if _faust_metrics is None:
        _faust_metrics = FaustMetrics.create(metrics.REGISTRY, "consentinel_faust")
    return faust_compat.lean_prometheus_monitor(_faust_metrics)


@dataclass
class Runtime:
    app: faust.App
    processor: Processor
    registry: RegistryView
    names: Names
    readiness: Readiness


def build(settings: Settings, *, store: str = "rocksdb://", monitor: bool = True) -> Runtime:
    web = is_loopback(settings.web_host)
    datadir = settings.state_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id(settings),
        broker=[f"kafka://{s.strip()}" for s in settings.bootstrap_servers.split(",")],
        store=store,
        datadir=str(datadir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        stream_wait_empty=True,
        table_standby_replicas=0,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        # a worker that died (SIGKILL, OOM) is noticed in 10 s, so a restart does not wait
        # a minute for its partitions; heartbeats run in the consumer thread
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=web,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.worker_port,
        web_tables_enabled=False,
        # its changelog sends are kept: a batch is acknowledged once they are acknowledged
        Table=faust_compat.changelog_tracked_table(),
    )
    if monitor:
        app.monitor = _prometheus_monitor()
    faust_compat.changelog_buffer(app, CHANGELOG_BUFFER)
    faust_compat.fetch_max_wait(app, FETCH_MAX_WAIT_MS)
    faust_compat.keep_store_options()
    names = names_for(settings)
    rocks = store.startswith("rocksdb")

    def table(name: str, help: str) -> Any:
        return app.Table(
            name,
            key_type=bytes,  # bytes: Faust's raw serializer; values are our codec's JSON
            value_type=bytes,
            partitions=settings.partitions,
            options=dict(ROCKSDB_OPTIONS[name]) if rocks else None,
            help=help,
        )

    ledger = table(
        "ledger",
        "subject key -> consent history (policy.history.ConsentHistory); "
        "m: + subject key -> its list memberships (checker.members); "
        "f: + list key -> list-level sends waiting to be expanded (checker.fanout)",
    )
    holds = table("holds", "subject key -> pending and alerted uses (holds.Holds)")
    stats = table("stats", "partition -> ledger and pending counters, for the gauges")

    def committed(topic: str, partition: int) -> int | None:
        return faust_compat.committed_offset(app.consumer, TP(topic, partition))

    clock = TickClock(lambda p: committed(names.consent, p))
    out = {
        name: app.topic(name, key_serializer="raw", value_serializer="raw")
        for name in (names.verdicts, names.alerts, names.deadletter, names.tick)
    }

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        # Straight to Faust's producer (its public ``ProducerT.send``): the Topic/channel
        # path costs a FutureMessage, a buffer round trip and a task per record, and the
        # processor waits for the acknowledgements itself.
        return await app.producer.send(topic, key, value, None, None, None)

    # Outputs and state in produce batches, each on a producer (a connection) of its own:
    # verdicts never wait behind a changelog backlog (``worker.batches``).
    output_lanes = Lanes(producer_for(settings.bootstrap_servers, f"{app_id(settings)}-outputs"))
    changelog_lanes = Lanes(
        producer_for(settings.bootstrap_servers, f"{app_id(settings)}-changelogs")
    )

    registry = RegistryView(settings.bootstrap_servers, settings.topic(topics.REGISTRY))
    processor = Processor(
        judge=Judge(
            PolicySettings.from_settings(settings),
            registry.get,
            max_versions=settings.ledger_max_versions,
        ),
        names=names,
        partitions=settings.partitions,
        ledger=ledger,
        holds=holds,
        stats=stats,
        send=send,
        send_batch=OutputSender(output_lanes),
        write=StateWriter(changelog_lanes, faust_compat.changelog_sends(app)),
        read=StateReader(),
        scan=faust_compat.scanner(settings.partitions, subject_of),
        ticks=clock,
        sealer=Sealer(settings.pepper.reveal()),
    )
    source = app.topic(
        names.consent,
        names.usage,
        names.tick,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    restored = {
        t.name: metrics.CHANGELOG_RECORDS_RESTORED.labels(table=t.name)
        for t in (ledger, holds, stats)
    }
    restorer = ChangelogRestorer(
        settings.bootstrap_servers,
        client_id=f"{app_id(settings)}-restore",
        on_restored=lambda table, count: restored[table].inc(count),
    )
    faust_compat.restore_changelogs_in_batches(app, restorer.restore)

    holes = HoleReader(settings.bootstrap_servers, client_id=f"{app_id(settings)}-holes")

    # created at start, so a worker that never had to read anything back shows 0, not nothing
    read_back = {
        name: metrics.RECORDS_READ_BACK.labels(topic=base)
        for name, base in (
            (names.consent, topics.CONSENT),
            (names.usage, topics.USAGE),
            (names.tick, "tick"),
        )
    }

    async def read_hole(topic: str, partition: int, start: int, end: int) -> list[Any]:
        # Faust counted the hole as acknowledged when it skipped it: not until it is handled
        faust_compat.forget_gap(app.consumer, TP(topic, partition))
        records = await holes.read(topic, partition, start, end)
        read_back[topic].inc(len(records))
        return records

    def hole_handled(topic: str, partition: int, start: int, end: int) -> None:
        faust_compat.count_as_acked(app.consumer, TP(topic, partition), start, end)

    agent = CheckerAgent(
        processor,
        read_hole,
        hole_handled,
        faust_compat.changelog_sends(app).take,
        linger_s=settings.batch_linger_ms / 1000,
    )
    # the source topics' records bypass Faust's per-event stream path: taken at the
    # conductor, buffered per partition, judged in batches (``faust_compat.BatchIntake``)
    intake = faust_compat.BatchIntake(app, (names.consent, names.usage, names.tick), BATCH_MAX)
    intake.install()
    faust_compat.seek_uncommitted_to_beginning(
        app, (names.consent, names.usage, names.tick), on_sought=agent.guard.sought
    )

    async def forget(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        agent.forget()

    app.on_partitions_revoked.connect(forget)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(forget)  # type: ignore[arg-type]

    readiness = Readiness()

    @app.agent(source, name="checker", concurrency=1)
    async def checker(stream: Any) -> None:
        # ``stream`` is not iterated: Faust creating it subscribes the source topics (and
        # enables their acks); their records come through ``intake``
        await registry.wait_ready()
        await faust_compat.tables_recovered(app)  # the tables hold their changelogs
        readiness.set()
        log.info(
            "ready: topics and changelogs visible, tables recovered, purpose registry read; "
            "judging %s and %s",
            names.consent,
            names.usage,
        )
        await agent.run(intake)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_registry() -> None:
        await registry.run()

    async def flush_changelogs(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Before the tables are recovered from their changelogs: a batch's state is in the
        # store before its changelog records are acknowledged, and recovery replays the
        # changelog from the persisted offset; a record still on its way would be replayed
        # missing, and the older value it replaced written back over the newer one. Faust
        # flushes its own producer here (``App._on_partitions_revoked``), not this one.
        try:
            await asyncio.wait_for(changelog_lanes.flush(), REVOKE_FLUSH_S)
        except TimeoutError:
            log.warning(
                "changelog records still unacknowledged after %.0f s at a rebalance: a table "
                "recovered now may miss them until the next restart",
                REVOKE_FLUSH_S,
            )

    app.on_partitions_revoked.connect(flush_changelogs)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def batch_producers() -> None:
        try:  # connected at start (the first verdicts wait for no connection); flushed and
            # closed when Faust stops
            await output_lanes.warm([names.verdicts, names.alerts, names.deadletter])
            await changelog_lanes.warm(
                [faust_compat.changelog_topic_name(t) for t in (ledger, holds, stats)]
            )
            await asyncio.Event().wait()
        finally:
            await output_lanes.stop()
            await changelog_lanes.stop()

    @app.task  # type: ignore[untyped-decorator]
    async def close_hole_reader() -> None:
        try:  # the reader connects on its first hole; closed when Faust cancels its tasks
            await asyncio.Event().wait()
        finally:
            await holes.stop()

    def owned(topic: str) -> list[TP]:
        return sorted(tp for tp in app.assignor.assigned_actives() if tp.topic == topic)

    skips = TickSkips(log)

    async def tick() -> None:
        if not registry.ready.is_set():
            skips.skipped("the purpose registry is not read yet")
            return
        tps = owned(names.consent)
        if not tps:
            skips.skipped(f"no partition of {names.consent} is assigned to this worker")
            return
        t = now_ms()
        try:
            # The end offsets as of now, asked of the broker (the consumer's cached
            # highwater can predate consent written just before this tick). Bounded: a
            # consumer thread that does not answer must not stop the ticks for good.
            ends = await asyncio.wait_for(app.consumer.highwaters(*tps), TICK_QUERY_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not started, rebalancing: the next tick will do
            skips.skipped(f"the consent end offsets were not read ({type(exc).__name__}: {exc})")
            return
        skips.sent()
        for tp in tps:
            end = ends.get(tp)
            await out[names.tick].send(
                value=Tick(t, end if isinstance(end, int) else None).encode(),
                partition=tp.partition,
            )

    @app.task  # type: ignore[untyped-decorator]
    async def ticker() -> None:
        # A loop rather than a timer: asking the broker for end offsets goes through the
        # consumer thread and can take about a second; ticks must not pile up behind it.
        interval = tick_interval(settings)
        while not app.should_stop:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a tick lost is made good by the next one
                log.warning("tick not sent (%s: %s); the next one follows", type(exc).__name__, exc)
            await asyncio.sleep(interval)

    @app.timer(interval=METRICS_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def sample_metrics() -> None:
        mine = {tp.partition for tp in owned(names.consent)}
        stats_now = [processor.partition_stats[p] for p in mine if p in processor.partition_stats]
        metrics.PENDING.set(sum(s.pending for s in stats_now))
        metrics.LEDGER_SUBJECTS.set(sum(s.subjects for s in stats_now))
        metrics.LEDGER_VERSIONS.set(sum(s.versions for s in stats_now))
        for base, topic in ((topics.CONSENT, names.consent), (topics.USAGE, names.usage)):
            tps = owned(topic)
            if not tps:
                metrics.CONSUMER_LAG.labels(topic=base).set(0)
                continue
            lag = 0
            for tp in tps:
                try:
                    end = app.consumer.highwater(tp)  # as of the last fetch response
                except Exception as exc:
                    log.debug("lag not sampled: %s", exc)
                    break
                done = max(
                    processor.progress.get((topic, tp.partition), 0),
                    committed(topic, tp.partition) or 0,
                )
                if isinstance(end, int):
                    lag += max(0, end - done)
            metrics.CONSUMER_LAG.labels(topic=base).set(lag)

    return Runtime(
        app=app, processor=processor, registry=registry, names=names, readiness=readiness
    )


def create_app(settings: Settings, *, store: str = "rocksdb://") -> faust.App:
    """The Faust app of the worker (``memory://`` store for tests)."""
    return build(settings, store=store).app
