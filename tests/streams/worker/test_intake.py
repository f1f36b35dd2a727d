"""The batched intake (``faust_compat.BatchIntake``) on Faust's own consumer, not started:
its ``getmany`` is fed fetched records as aiokafka hands them to Faust, and its ``ack`` and
commit bookkeeping are Faust's. No broker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from consentinel.streams.worker import faust_compat
from faust.types import TP

SOURCES = ("consent", "usage")


def record(topic: str, partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"k",
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=(),
    )


class Rig:
    """A Faust app whose consumer fetches what the test gives it, with an intake over
    ``SOURCES``."""

    def __init__(self, max_per_partition: int = 1000) -> None:
        self.app = faust.App(
            f"intake-test-{uuid.uuid4().hex[:6]}",
            broker="kafka://127.0.0.1:1",  # never connected
            store="memory://",
            autodiscover=False,
            web_enabled=False,
        )
        self.app.finalize()
        self.app.flow_control.resume()  # Faust resumes it once the partitions are assigned
        self.intake = faust_compat.BatchIntake(self.app, SOURCES, max_per_partition)
        self.intake.install()
        self.consumer: Any = self.app.consumer
        self.consumer.highwater = lambda tp: 100  # no broker to ask
        self.fetched: list[dict[TP, list[Any]]] = []

        async def wait_next_records(timeout: float) -> Any:
            return (self.fetched.pop(0) if self.fetched else {}), None

        self.consumer._wait_next_records = wait_next_records
        for topic in SOURCES:  # the agent's channel subscribes them with acks
            self.app.topics._acking_topics.add(topic)

    async def fetch(self, *records: ConsumerRecord[bytes, bytes]) -> list[tuple[str, int, int]]:
        """One fetch through Faust's ``getmany``; what it passes on to the conductor."""
        batch: dict[TP, list[Any]] = {}
        for r in records:
            batch.setdefault(TP(r.topic, r.partition), []).append(r)
        self.fetched.append(batch)
        return [(m.topic, m.partition, m.offset) async for _, m in self.consumer.getmany(1.0)]


def offsets(batches: dict[int, list[Any]]) -> dict[int, list[tuple[str, int]]]:
    return {p: [(m.topic, m.offset) for m in ms] for p, ms in batches.items()}


async def test_source_records_are_taken_per_partition_in_offset_order_changelogs_go_on() -> None:
    rig = Rig()
    passed = await rig.fetch(
        record("consent", 0, 0),
        record("usage", 1, 5),
        record("consent", 0, 1),
        record("app-ledger-changelog", 0, 7),
        record("usage", 0, 3),
        record("consent", 0, 2),
    )
    assert passed == [("app-ledger-changelog", 0, 7)]  # table recovery's, to the conductor
    batches = await rig.intake.take()
    assert offsets(batches) == {
        0: [("consent", 0), ("consent", 1), ("usage", 3), ("consent", 2)],
        1: [("usage", 5)],
    }
    assert rig.intake.buffered == 0


async def test_wait_ready_returns_once_a_source_record_is_buffered() -> None:
    """What the agent's linger waits on before it counts what is buffered."""
    rig = Rig()
    waiting = asyncio.ensure_future(rig.intake.wait_ready())
    await rig.fetch(record("app-ledger-changelog", 0, 7))  # not a source: not buffered
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done() and rig.intake.buffered == 0
    await rig.fetch(record("usage", 2, 0), record("usage", 2, 1))
    await asyncio.wait_for(waiting, 5)
    assert rig.intake.buffered == 2
    await rig.intake.take()
    assert rig.intake.buffered == 0


async def test_a_full_partition_buffer_holds_fetching_until_the_agent_takes() -> None:
    rig = Rig(max_per_partition=2)
    fetching = asyncio.ensure_future(
        rig.fetch(*(record("usage", 0, o) for o in range(3)), record("usage", 1, 0))
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert not fetching.done()  # the third record of partition 0 waits for room
    assert rig.intake.buffered == 3  # Faust's fetch goes round the partitions
    first = await rig.intake.take()
    assert offsets(first) == {0: [("usage", 0), ("usage", 1)], 1: [("usage", 0)]}
    await fetching
    assert offsets(await rig.intake.take()) == {0: [("usage", 2)]}


async def test_a_take_with_a_limit_leaves_the_newest_records_for_the_next_take() -> None:
    """The agent asks for no more records than it has room for in flight
    (``agent.MAX_RECORDS_IN_FLIGHT``): the oldest of each partition are taken, in order,
    the rest stay buffered and come first in the next take."""
    rig = Rig()
    await rig.fetch(
        *(record("usage", 0, o) for o in range(3)), *(record("usage", 1, o) for o in range(3))
    )
    assert offsets(await rig.intake.take(4)) == {
        0: [("usage", 0), ("usage", 1), ("usage", 2)],
        1: [("usage", 0)],
    }
    assert rig.intake.buffered == 2
    await rig.fetch(record("usage", 0, 3))
    assert offsets(await rig.intake.take(2)) == {1: [("usage", 1), ("usage", 2)]}
    assert offsets(await rig.intake.take(2)) == {0: [("usage", 3)]}
    assert rig.intake.buffered == 0
    with pytest.raises(ValueError, match="at least 1"):
        await rig.intake.take(0)


async def test_taken_records_are_tracked_and_their_acks_let_faust_commit_past_them() -> None:
    rig = Rig()
    tp = TP("consent", 2)
    rig.consumer._committed_offset[tp] = None
    await rig.fetch(*(record("consent", 2, o) for o in (10, 11, 12)))
    (taken,) = (await rig.intake.take()).values()
    assert {m.offset for m in rig.consumer.unacked} == {10, 11, 12}
    rig.intake.ack(taken[:2])
    assert {m.offset for m in rig.consumer.unacked} == {12}
    assert rig.consumer._new_offset(tp) == 12  # Faust would commit up to 11 inclusive
    rig.intake.ack(taken[2:])
    rig.intake.ack(taken[2:])  # a second ack changes nothing
    assert not rig.consumer.unacked
    assert rig.consumer._new_offset(tp) == 13


async def test_a_revocation_drops_buffered_records_untracked_and_its_waiting_fetch_too() -> None:
    """What Faust does on a revocation (``App._on_partitions_revoked``): stop the flow, clear
    the flow-controlled queues, then wait until every tracked record is acknowledged. The
    buffered records of revoked partitions are dropped, not judged, and nothing waits for
    them; the record that waited for room is of the old generation, dropped when taken."""
    rig = Rig(max_per_partition=1)
    fetching = asyncio.ensure_future(rig.fetch(record("usage", 3, 0), record("usage", 3, 1)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not fetching.done()
    rig.app.flow_control.suspend()
    rig.app.flow_control.clear()
    assert rig.intake.buffered == 0
    assert not rig.consumer.unacked
    rig.app.consumer_generation_id += 1  # the new assignment
    rig.app.flow_control.resume()
    await fetching
    rig.consumer._read_offset[TP("usage", 3)] = 0  # the seek to the committed offset
    again = asyncio.ensure_future(rig.fetch(record("usage", 3, 0), record("usage", 3, 1)))
    first = await rig.intake.take()
    assert offsets(first) == {3: [("usage", 0)]}
    await again
    second = await rig.intake.take()
    assert offsets(second) == {3: [("usage", 1)]}
    generation = rig.app.consumer_generation_id
    assert [m.generation_id for m in (*first[3], *second[3])] == [generation, generation]


async def test_records_buffered_when_recovery_resumes_the_flow_are_kept() -> None:
    """After recovery Faust seeks to the committed offsets, THEN resumes the flow, which
    clears its queues (``Recovery.on_recovery_completed``): a record dropped then is not
    fetched again, and with no later record of its partition to reveal the hole it would
    never be judged."""
    rig = Rig()
    await rig.fetch(record("consent", 5, 0), record("consent", 5, 1))
    rig.app.flow_control.resume()  # clears, the flow active
    assert rig.intake.buffered == 2
    assert offsets(await rig.intake.take()) == {5: [("consent", 0), ("consent", 1)]}


async def test_records_fetched_before_the_current_rebalance_are_dropped() -> None:
    rig = Rig()
    await rig.fetch(record("consent", 0, 4))
    rig.app.consumer_generation_id += 1  # a rebalance after the fetch
    await rig.fetch(record("consent", 1, 9))
    taken = await rig.intake.take()  # held: Faust tracks records in a WeakSet
    assert offsets(taken) == {1: [("consent", 9)]}
    assert {m.offset for m in rig.consumer.unacked} == {9}


async def test_a_record_below_the_read_offset_is_dropped_and_a_jump_is_a_gap() -> None:
    """``Consumer._drain_messages``' bookkeeping, which these records no longer go through:
    a record older than one handed on is a stale fetch; skipped offsets count as acked
    (``_gap``) until the agent reads them back (``forget_gap``)."""
    rig = Rig()
    tp = TP("usage", 0)
    rig.consumer._committed_offset[tp] = None
    await rig.fetch(record("usage", 0, 5), record("usage", 0, 3), record("usage", 0, 9))
    assert offsets(await rig.intake.take()) == {0: [("usage", 5), ("usage", 9)]}
    gap = rig.consumer._gap[tp]
    assert [o for o in range(3, 9) if gap.overlaps(o)] == [6, 7, 8]


async def test_a_commit_is_made_every_commit_every_acks_as_faust_does() -> None:
    rig = Rig()
    rig.consumer._commit_every = 2
    commits: list[int] = []

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append(rig.consumer._n_acked)
        return True

    rig.consumer.commit = commit
    rig.consumer._committed_offset[TP("usage", 0)] = None
    await rig.fetch(record("usage", 0, 0), record("usage", 0, 1))
    rig.intake.ack((await rig.intake.take())[0])
    assert commits == []
    await rig.fetch(record("usage", 0, 2))
    assert commits == [0]  # reset, then committed
    assert offsets(await rig.intake.take()) == {0: [("usage", 2)]}


def test_a_buffer_must_hold_a_record() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        faust_compat.BatchIntake(object(), SOURCES, 0)


async def test_the_sensors_hear_of_taken_and_acknowledged_records_once_per_topic_partition() -> (
    None
):
    """A sensor with the batch methods (the lean monitor) hears once per topic partition
    of a take and of an acknowledgement; any other sensor, of each record, as Faust tells
    it; both end with the same counts."""
    from faust.sensors.monitor import Monitor
    from faust.sensors.prometheus import FaustMetrics
    from prometheus_client import CollectorRegistry

    rig = Rig()
    lean = faust_compat.lean_prometheus_monitor(FaustMetrics.create(CollectorRegistry(), "t"))
    plain = Monitor()
    calls: list[tuple[str, str, int]] = []
    batched_in, batched_out = lean.on_messages_in, lean.on_messages_out

    def heard_in(tp: TP, messages: list[Any]) -> None:
        calls.append(("in", tp.topic, len(messages)))
        batched_in(tp, messages)

    def heard_out(tp: TP, messages: list[Any]) -> None:
        calls.append(("out", tp.topic, len(messages)))
        batched_out(tp, messages)

    lean.on_messages_in, lean.on_messages_out = heard_in, heard_out
    rig.app.sensors.add(lean)
    rig.app.sensors.add(plain)
    for topic in SOURCES:
        rig.consumer._committed_offset[TP(topic, 0)] = None
    await rig.fetch(record("consent", 0, 0), record("consent", 0, 1), record("usage", 0, 7))
    (taken,) = (await rig.intake.take()).values()
    assert sorted(calls) == [("in", "consent", 2), ("in", "usage", 1)]
    for sensor in (lean, plain):
        assert (sensor.messages_received_total, sensor.messages_active) == (3, 3)
        assert sensor.tp_read_offsets == {TP("consent", 0): 1, TP("usage", 0): 7}
    calls.clear()
    rig.intake.ack(taken)
    rig.intake.ack(taken)  # acknowledged already: nobody hears of it again
    assert sorted(calls) == [("out", "consent", 2), ("out", "usage", 1)]
    assert lean.messages_active == plain.messages_active == 0
