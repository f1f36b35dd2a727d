"""The agent's handling of records Faust skipped: read from the broker, judged in offset
order before the record that revealed the hole, counted as acknowledged only once their
state is written. No broker: the hole reader and the processor are stand-ins that record
what they were asked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from consentinel.streams.worker.agent import CheckerAgent


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes = b""


class Event:
    def __init__(self, msg: Msg) -> None:
        self.message = msg


class Stream:
    def __init__(self) -> None:
        self.acked: list[int] = []

    async def ack(self, event: Event) -> None:
        self.acked.append(event.message.offset)


class Processor:
    """Records each batch; finishes it at once, noting the order of write and acks."""

    def __init__(self, log: list[str]) -> None:
        self.batches: list[list[int]] = []
        self.log = log

    async def submit_batch(self, records: list[Any], finish: Any) -> None:
        self.batches.append([r.offset for r in records])
        await finish(lambda: self.log.append("write"))


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
    stream = Stream()
    agent.guard.sought("consent", 0, 10)  # committed offset 10; Faust dropped 10..13
    events = [Event(Msg("consent", 0, o)) for o in (14, 15)]
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
    stream = Stream()
    agent.guard.sought("usage", 1, 5)
    asyncio.run(agent.handle(stream, [Event(Msg("usage", 1, 8))]))
    # Faust delivers the records it had dropped after all, then the next one
    later = [Event(Msg("usage", 1, o)) for o in (6, 7, 8, 9)]
    asyncio.run(agent.handle(stream, later))
    assert holes == [("usage", 1, 5, 8)]
    assert agent.processor.batches == [[5, 6, 7, 8], [9]]  # type: ignore[attr-defined]
    assert stream.acked == [8, 6, 7, 8, 9]


def test_partitions_are_judged_apart_and_only_the_one_with_a_hole_is_read() -> None:
    log: list[str] = []
    holes: list[tuple[str, int, int, int]] = []
    agent = agent_with(log, holes)
    stream = Stream()
    agent.guard.sought("consent", 0, 3)
    agent.guard.sought("consent", 1, 3)
    events = [Event(Msg("consent", 0, 3)), Event(Msg("consent", 1, 5)), Event(Msg("consent", 0, 4))]
    asyncio.run(agent.handle(stream, events))
    assert holes == [("consent", 1, 3, 5)]
    assert agent.processor.batches == [[3, 4], [3, 4, 5]]  # type: ignore[attr-defined]
