"""The agent's handling of records Faust skipped: read from the broker, judged in offset
order before the record that revealed the hole, counted as acknowledged only once their
state is written. No broker: the hole reader and the processor are stand-ins that record
what they were asked."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from consentinel.streams.worker.agent import CheckerAgent


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes = b""


class Intake:
    """Records what the agent acknowledges (``faust_compat.BatchIntake.ack``)."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    async def take(self) -> dict[int, list[Any]]:
        raise AssertionError("the tests hand batches to ``handle``")

    def ack(self, messages: list[Msg]) -> None:
        self.acked.extend(message.offset for message in messages)


def batch(*msgs: Msg) -> dict[int, list[Any]]:
    """A take: the records per partition, in the order given."""
    batches: dict[int, list[Any]] = {}
    for msg in msgs:
        batches.setdefault(msg.partition, []).append(msg)
    return batches


class Processor:
    """Records each batch; finishes it at once, noting the order of write and acks."""

    def __init__(self, log: list[str]) -> None:
        self.batches: list[list[int]] = []
        self.log = log

    async def submit_batch(self, records: list[Any], finish: Any, write_in: Any = None) -> None:
        self.batches.append([r.offset for r in records])
        await finish(lambda: self.log.append("write"))

    def forget(self) -> None:
        self.log.append("forget")


def agent_with(log: list[str], holes: list[tuple[str, int, int, int]]) -> CheckerAgent:
    async def read_hole(topic: str, partition: int, start: int, end: int) -> list[Any]:
        holes.append((topic, partition, start, end))
        return [Msg(topic, partition, o) for o in range(start, end)]

    def hole_handled(topic: str, partition: int, start: int, end: int) -> None:
        log.append(f"hole {start}..{end - 1} counted as acked")

    return CheckerAgent(Processor(log), read_hole, hole_handled)  # type: ignore[arg-type]


def test_a_hole_is_read_and_judged_before_the_record_that_revealed_it() -> None:
    log: list[str] = []
    holes: list[tuple[str, int, int, int]] = []
    agent = agent_with(log, holes)
    stream = Intake()
    agent.guard.sought("consent", 0, 10)  # committed offset 10; Faust dropped 10..13
    events = batch(*(Msg("consent", 0, o) for o in (14, 15)))
    asyncio.run(agent.handle(stream, events))
    assert holes == [("consent", 0, 10, 14)]
    assert agent.processor.batches == [[10, 11, 12, 13, 14, 15]]  # type: ignore[attr-defined]
    # the state is written, then the hole counts as acked, then Faust's events are acked
    assert log == ["write", "hole 10..13 counted as acked"]
    assert stream.acked == [14, 15]


def test_records_after_a_filled_hole_flow_on_and_repeats_are_only_acknowledged() -> None:
    log: list[str] = []
    holes: list[tuple[str, int, int, int]] = []
    agent = agent_with(log, holes)
    stream = Intake()
    agent.guard.sought("usage", 1, 5)
    asyncio.run(agent.handle(stream, batch(Msg("usage", 1, 8))))
    # Faust delivers the records it had dropped after all, then the next one
    later = batch(*(Msg("usage", 1, o) for o in (6, 7, 8, 9)))
    asyncio.run(agent.handle(stream, later))
    assert holes == [("usage", 1, 5, 8)]
    # the repeats go through the processor as an empty batch, acknowledged in their turn
    assert agent.processor.batches == [[5, 6, 7, 8], [], [9]]  # type: ignore[attr-defined]
    assert stream.acked == [8, 6, 7, 8, 9]


def test_partitions_are_judged_apart_and_only_the_one_with_a_hole_is_read() -> None:
    log: list[str] = []
    holes: list[tuple[str, int, int, int]] = []
    agent = agent_with(log, holes)
    stream = Intake()
    agent.guard.sought("consent", 0, 3)
    agent.guard.sought("consent", 1, 3)
    events = batch(Msg("consent", 0, 3), Msg("consent", 1, 5), Msg("consent", 0, 4))
    asyncio.run(agent.handle(stream, events))
    assert holes == [("consent", 1, 3, 5)]
    assert agent.processor.batches == [[3, 4], [3, 4, 5]]  # type: ignore[attr-defined]


# -- a batch is acknowledged once the changelog records of its state are -----------------------


class WritingProcessor(Processor):
    """Finishes each batch at once; its state write sends one changelog record (a future
    the test resolves, as Kafka's acknowledgement would)."""

    def __init__(self, log: list[str], sent: list[asyncio.Future[Any]]) -> None:
        super().__init__(log)
        self.sent = sent

    async def submit_batch(self, records: list[Any], finish: Any, write_in: Any = None) -> None:
        self.batches.append([r.offset for r in records])

        def write() -> None:
            self.log.append("write")
            self.sent.append(asyncio.get_running_loop().create_future())

        await finish(write)


async def settle() -> None:
    """Let the tasks woken by the acknowledgements run to their end (no timing)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def stop(running: asyncio.Future[Any]) -> None:
    """Cancel the agent's run and wait until it is stopped."""
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


def changelog_agent(log: list[str], sent: list[asyncio.Future[Any]]) -> CheckerAgent:
    async def read_hole(topic: str, partition: int, start: int, end: int) -> list[Any]:
        return [Msg(topic, partition, o) for o in range(start, end)]

    def hole_handled(topic: str, partition: int, start: int, end: int) -> None:
        log.append(f"hole {start}..{end - 1} counted as acked")

    taken = 0

    def take() -> list[Any]:
        nonlocal taken
        new, taken = sent[taken:], len(sent)
        return new

    return CheckerAgent(WritingProcessor(log, sent), read_hole, hole_handled, take)


async def test_records_are_acknowledged_only_once_the_changelog_of_their_state_is() -> None:
    """Faust's pre-commit flush can return while a changelog record is on its way (out of
    Faust's buffer, not yet in aiokafka's): records acknowledged then are committed with
    their state unsent, and a SIGKILL loses it. The acks wait for Kafka's."""
    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()
    agent.guard.sought("consent", 0, 10)  # Faust dropped 10..11
    await agent.handle(stream, batch(*(Msg("consent", 0, o) for o in (12, 13))))
    assert log == ["write"] and len(sent) == 1
    await asyncio.sleep(0)
    assert stream.acked == []  # the state is written, its changelog record not acknowledged
    assert agent.acknowledging == 1
    sent[0].set_result(None)  # Kafka acknowledged it
    await settle()
    assert log == ["write", "hole 10..11 counted as acked"]
    assert stream.acked == [12, 13]
    assert agent.acknowledging == 0


async def test_a_batch_whose_changelog_record_failed_is_never_acknowledged(caplog) -> None:
    from consentinel.streams.events import metrics

    failed_before = metrics.REGISTRY.get_sample_value("consentinel_changelog_sends_failed_total")
    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()
    await agent.handle(stream, batch(Msg("usage", 2, 0)))
    await agent.handle(stream, batch(Msg("usage", 2, 1)))
    sent[0].set_exception(RuntimeError("NotLeaderForPartition"))
    sent[1].set_result(None)
    await settle()
    # offset 1 is acknowledged, offset 0 never: Faust commits nothing past 0, so both are
    # judged again after a restart
    assert stream.acked == [1]
    assert agent.acknowledging == 0
    failed_after = metrics.REGISTRY.get_sample_value("consentinel_changelog_sends_failed_total")
    assert failed_after == (failed_before or 0) + 1
    assert "NOT acknowledged" in caplog.text and "usage[2]" in caplog.text


async def test_a_batch_whose_changelog_is_already_acknowledged_is_acknowledged_at_once() -> None:
    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()

    class Acked(WritingProcessor):
        async def submit_batch(self, records: list[Any], finish: Any, write_in: Any = None) -> None:
            def write() -> None:
                done = asyncio.get_running_loop().create_future()
                done.set_result(None)
                self.sent.append(done)

            await finish(write)

    agent.processor = Acked(log, sent)  # type: ignore[assignment]
    await agent.handle(stream, batch(Msg("consent", 1, 4)))
    assert stream.acked == [4]  # no task, no wait
    assert agent.acknowledging == 0


async def test_a_repeat_is_acknowledged_only_after_the_batch_that_handled_it() -> None:
    """Faust may deliver again records the agent read back itself (a hole): acknowledging
    the repeat at once would let Faust commit it ahead of the state its first handling
    wrote, whose changelog record may still be on its way."""
    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()
    agent.guard.sought("usage", 0, 5)
    await agent.handle(stream, batch(Msg("usage", 0, 7)))  # 5, 6 read back: a hole
    await agent.handle(stream, batch(*(Msg("usage", 0, o) for o in (5, 6, 7))))  # repeats
    await settle()
    assert stream.acked == []  # the first batch's changelog is not acknowledged yet
    sent[0].set_result(None)
    for later in sent[1:]:  # the repeats' empty batch wrote nothing that needs waiting for
        later.set_result(None)
    await settle()
    assert stream.acked == [7, 5, 6, 7]
    assert log == ["write", "write", "hole 5..6 counted as acked"]


async def test_after_a_failed_changelog_record_repeats_wait_for_a_rebalance() -> None:
    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()
    await agent.handle(stream, batch(Msg("consent", 3, 0)))
    sent[0].set_exception(RuntimeError("RequestTimedOut"))
    await settle()
    # Faust gives offset 0 again (say after a seek): it must not be committed as handled
    await agent.handle(stream, batch(Msg("consent", 3, 0)))
    for s in sent[1:]:
        s.set_result(None)
    await settle()
    assert stream.acked == []
    agent.forget()  # a rebalance: Faust reads again from the committed offsets
    agent.guard.sought("consent", 3, None)
    await agent.handle(stream, batch(Msg("consent", 3, 0)))
    for s in sent[1:]:
        if not s.done():
            s.set_result(None)
    await settle()
    assert stream.acked == [0]


async def test_finishing_waits_once_too_many_batches_wait_for_their_changelog() -> None:
    """A worker judging faster than Kafka acknowledges its changelog records must not hold
    every batch's records meanwhile: past ``MAX_ACKING`` batches waiting, finishing the
    next one waits for the oldest (and so the processor and the intake wait too)."""
    from consentinel.streams.worker.agent import MAX_ACKING

    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()
    for offset in range(MAX_ACKING):
        await agent.handle(stream, batch(Msg("consent", 0, offset)))
    assert agent.acknowledging == MAX_ACKING and stream.acked == []
    one_more = asyncio.ensure_future(agent.handle(stream, batch(Msg("consent", 0, MAX_ACKING))))
    await settle()
    assert not one_more.done()  # held back: MAX_ACKING + 1 batches would wait
    sent[0].set_result(None)  # the oldest batch's changelog record is acknowledged
    await settle()
    assert one_more.done() and stream.acked == [0]
    for future in sent[1:]:
        future.set_result(None)
    for _ in range(MAX_ACKING + 1):  # the acks run in a chain, each after the one before
        await settle()
    assert stream.acked == list(range(MAX_ACKING + 1)) and agent.acknowledging == 0


class Feeding:
    """An intake with records of partition 0 always there: counts what the agent asks for
    and takes (``take(limit)``), ``per_take`` at a time."""

    def __init__(self, per_take: int) -> None:
        self.per_take = per_take
        self.next = 0
        self.limits: list[int | None] = []
        self.acked: list[int] = []

    async def take(self, limit: int | None = None) -> dict[int, list[Any]]:
        self.limits.append(limit)
        n = self.per_take if limit is None else min(self.per_take, limit)
        msgs = [Msg("usage", 0, o) for o in range(self.next, self.next + n)]
        self.next += n
        await asyncio.sleep(0)
        return batch(*msgs)

    def ack(self, messages: list[Msg]) -> None:
        self.acked.extend(message.offset for message in messages)


async def test_records_in_flight_are_bounded_not_batches() -> None:
    """Batches of every size wait for their changelog: past half of ``max_in_flight``
    records taken and not acknowledged the agent takes no more until no more than half are,
    and it asks the intake for no more than the room left, so the records held stay under
    the bound whatever the batch sizes (the batch bound alone let ``MAX_ACKING`` full
    batches and the processor's 32 wait: 48,000 records)."""
    from consentinel.streams.worker.agent import MAX_ACKING

    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    agent.max_in_flight = 25
    intake = Feeding(per_take=10)
    running = asyncio.ensure_future(agent.run(intake))
    await settle()
    # 10 taken (10 <= 12 in flight: one more take, of at most 15), 10 more: 20 > 12, it waits
    assert intake.limits == [25, 15] and intake.next == 20
    assert agent.in_flight == 20 and len(sent) == 2 < MAX_ACKING
    sent[0].set_result(None)  # the first batch's changelog: its 10 records acknowledged
    await settle()
    assert intake.acked == list(range(10))
    assert intake.limits == [25, 15, 15] and intake.next == 30 and agent.in_flight == 20
    for future in sent[1:]:
        future.set_result(None)
    await settle()
    await settle()
    assert agent.in_flight <= 25 and intake.acked[:30] == list(range(30))
    await stop(running)


async def test_a_failed_batch_no_longer_counts_as_in_flight() -> None:
    """A batch whose changelog record failed is never acknowledged (read again after a
    restart), and no longer held: it must not stop the agent from taking more."""
    log: list[str] = []
    sent: list[asyncio.Future[Any]] = []
    agent = changelog_agent(log, sent)
    stream = Intake()
    await agent.handle(stream, batch(Msg("usage", 1, 0), Msg("usage", 1, 1)))
    assert agent.in_flight == 2
    sent[0].set_exception(RuntimeError("RequestTimedOut"))
    await settle()
    assert agent.in_flight == 0 and stream.acked == []


class Arriving:
    """An intake records arrive at, ``add`` at a time, as Faust's fetches bring them: it
    gives what is buffered at each take, and notes the sizes of the takes."""

    def __init__(self) -> None:
        self.buffer: list[Msg] = []
        self.next = 0
        self.taken: list[int] = []
        self._ready = asyncio.Event()

    def add(self, n: int) -> None:
        self.buffer += [Msg("usage", 0, o) for o in range(self.next, self.next + n)]
        self.next += n
        self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    async def take(self, limit: int | None = None) -> dict[int, list[Any]]:
        await self._ready.wait()
        msgs, self.buffer = self.buffer, []
        self._ready.clear()
        self.taken.append(len(msgs))
        return batch(*msgs)

    def ack(self, messages: list[Msg]) -> None:
        pass


async def test_with_a_linger_few_records_wait_for_more_and_are_taken_together() -> None:
    """A record buffered alone waits ``linger_s`` for the ones arriving after it (a fetch
    brings a few at a time at moderate rates), so they are judged in one batch; with
    ``LINGER_BELOW`` records buffered the agent takes them at once. The linger is long
    here (the test never waits for it): what is checked is the order of takes and
    arrivals, not a time."""
    from consentinel.streams.worker.agent import LINGER_BELOW

    log: list[str] = []
    agent = CheckerAgent(Processor(log), None, None, linger_s=60.0)  # type: ignore[arg-type]
    intake = Arriving()
    running = asyncio.ensure_future(agent.run(intake))
    intake.add(1)
    await settle()
    assert intake.taken == [], "a single record waits for the linger"
    intake.add(LINGER_BELOW - 2)
    await settle()
    assert intake.taken == [], "still fewer than LINGER_BELOW: still waiting"
    await stop(running)

    agent = CheckerAgent(Processor(log), None, None, linger_s=60.0)  # type: ignore[arg-type]
    intake = Arriving()
    intake.add(LINGER_BELOW)
    running = asyncio.ensure_future(agent.run(intake))
    await settle()
    assert intake.taken == [LINGER_BELOW], "enough buffered: taken without a wait"
    await stop(running)


async def test_after_the_linger_what_arrived_meanwhile_is_taken_in_the_same_batch() -> None:
    log: list[str] = []
    processor = Processor(log)
    agent = CheckerAgent(processor, None, None, linger_s=0.01)  # type: ignore[arg-type]
    intake = Arriving()
    running = asyncio.ensure_future(agent.run(intake))
    intake.add(1)
    await settle()
    intake.add(4)  # during the linger
    while not intake.taken:
        await asyncio.sleep(0.005)
    await settle()
    assert intake.taken == [5] and processor.batches == [[0, 1, 2, 3, 4]]
    await stop(running)


async def test_without_a_linger_the_agent_takes_what_one_fetch_brought() -> None:
    log: list[str] = []
    agent = CheckerAgent(Processor(log), None, None)  # type: ignore[arg-type]
    intake = Arriving()
    running = asyncio.ensure_future(agent.run(intake))
    intake.add(1)
    await settle()
    intake.add(4)
    await settle()
    assert intake.taken == [1, 4]
    await stop(running)
