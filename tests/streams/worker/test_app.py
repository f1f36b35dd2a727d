"""The Faust app's configuration: the traps of reference/streaming.md are avoided."""

from __future__ import annotations

from consentinel.streams.events.partitioning import partition_for
from consentinel.streams.worker.agent import BATCH_MAX
from consentinel.streams.worker.app import (
    CHANGELOG_BUFFER,
    FETCH_MAX_WAIT_MS,
    ROCKSDB_OPTIONS,
    app_id,
    build,
    is_loopback,
)
from faust.types.enums import ProcessingGuarantee


def test_the_app_is_configured_against_the_known_traps(make_settings) -> None:
    settings = make_settings(topic_prefix="tA.", partitions=4)
    rt = build(settings, store="memory://", monitor=False)
    conf = rt.app.conf
    assert conf.id == app_id(settings) == "tA.consentinel"
    assert conf.processing_guarantee is ProcessingGuarantee.AT_LEAST_ONCE
    assert conf.table_standby_replicas == 0
    assert conf.web_tables_enabled is False
    assert conf.web_bind == "127.0.0.1" and conf.web_enabled is True
    assert conf.producer_acks == -1
    assert conf.stream_wait_empty is True
    # Faust's 100 made the conductor wait for the changelog of every batch (a batch writes
    # a ledger and a holds record per subject it changed)
    assert rt.app.producer.buffer.max_messages == CHANGELOG_BUFFER > 2 * BATCH_MAX
    assert {t.name for t in rt.app.tables.values()} == {"ledger", "holds", "stats"}
    assert all(t.partitions == 4 for t in rt.app.tables.values())
    assert rt.names.tick == "tA.consentinel-tick"
    agent = next(iter(rt.app.agents.values()))
    assert agent.concurrency == 1
    assert set(agent.channel.topics) == {rt.names.consent, rt.names.usage, rt.names.tick}


async def test_the_consumer_fetch_waits_at_most_fetch_max_wait(make_settings) -> None:
    """Faust hard-codes 1,500 ms; aiokafka leaves a partition with unconsumed records out of
    the fetch in flight, so its next records waited up to that long for it to return."""
    rt = build(make_settings(topic_prefix="tF."), store="memory://", monitor=False)
    consumer = rt.app.consumer._thread._create_worker_consumer(rt.app.transport)
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS <= 100
    await consumer.stop()


def test_the_web_server_stays_off_unless_on_loopback(make_settings) -> None:
    rt = build(make_settings(web_host="0.0.0.0"), store="memory://", monitor=False)
    assert rt.app.conf.web_enabled is False
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.org")


def test_rocksdb_memory_is_capped_per_partition() -> None:
    for name, opts in ROCKSDB_OPTIONS.items():
        worst = (
            opts["block_cache_size"] + opts["write_buffer_size"] * opts["max_write_buffer_number"]
        )
        assert worst <= 32 * 1024 * 1024, f"{name}: {worst} bytes per partition"


def test_the_memory_store_scan_keeps_to_one_partition(make_settings) -> None:
    from consentinel.streams.worker.faust_compat import scanner as _scanner

    class FakeStore:
        data = {f"{i:064x}".encode(): b"{}" for i in range(40)}

    class FakeTable:
        data = FakeStore()

    scan = _scanner(6)
    seen: set[bytes] = set()
    for p in range(6):
        keys = {k for k, _ in scan(FakeTable(), p, b"")}  # type: ignore[arg-type]
        assert all(partition_for(k, 6) == p for k in keys)
        seen |= keys
    assert seen == set(FakeStore.data)
    zeros = b"0" * 63  # the keys of subjects 0 to 15
    prefixed = {k for p in range(6) for k, _ in scan(FakeTable(), p, zeros)}  # type: ignore[arg-type]
    assert prefixed == {f"{i:064x}".encode() for i in range(16)}


def test_a_stop_signal_spares_the_state_a_full_collection() -> None:
    """Faust's RocksDB stop runs gc.collect() per table on the loop: at 1e6 events a
    SIGTERM outlived its 60 s. The signal freezes the heap first, then stops as before."""
    import gc
    import signal

    from consentinel.streams.worker.faust_compat import prompt_shutdown

    class Worker:
        def __init__(self) -> None:
            self.scheduled: list[tuple[object, int]] = []

        def _schedule_shutdown(self, sig: object) -> None:
            self.scheduled.append((sig, gc.get_freeze_count()))

    worker = Worker()
    prompt_shutdown(worker)
    assert gc.get_freeze_count() == 0
    try:
        worker._schedule_shutdown(signal.SIGTERM)
        assert worker.scheduled and worker.scheduled[0][0] is signal.SIGTERM
        assert worker.scheduled[0][1] > 0  # frozen before Faust begins to stop
    finally:
        gc.unfreeze()
