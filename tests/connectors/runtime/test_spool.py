"""The ingest spool on disk: order, restart, torn tails, bounds, sealing, one owner."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from consentinel.connectors.runtime.spool import Spool, SpoolFull
from consentinel.connectors.runtime.spoolfile import Record
from consentinel.streams.events import metrics
from consentinel.streams.events.errors import FatalConfigError, RetriableError
from consentinel.streams.events.sealing import Sealer

SEALER = Sealer(b"test-pepper-0123456789abcdef")


def _records(i: int, n: int = 2) -> list[Record]:
    return [("t.usage", f"k{i}".encode(), f"value-{i}-{j}".encode()) for j in range(n)]


class Sink:
    """A stand-in for ``EventProducer.send_records``: records what it was given."""

    def __init__(self) -> None:
        self.got: list[Record] = []
        self.down = False

    async def send(self, records: list[Record]) -> int:
        if self.down:
            raise RetriableError("broker down (test)", retry_after=0.1)
        self.got.extend(records)
        return len(records)


def _open(path: Path, **kw: int | float) -> Spool:
    spool = Spool(path, SEALER, **kw)  # type: ignore[arg-type]
    spool.open()
    return spool


async def test_appends_forward_in_order_and_position_survives_restart(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    for i in range(5):
        await spool.append(_records(i))
    assert spool.events == 10 and spool.size_bytes > 0 and not spool.empty
    sink = Sink()
    assert await spool.forward_once(sink.send, max_records=4) == 4
    assert sink.got == _records(0) + _records(1)
    spool.close()

    again = _open(tmp_path)  # a restart: only what was not forwarded
    assert again.events == 6
    assert await again.forward_once(sink.send) == 6
    assert sink.got == [r for i in range(5) for r in _records(i)]
    assert again.empty and again.events == 0 and again.size_bytes == 0
    again.close()
    third = _open(tmp_path)
    assert third.empty, "a forwarded entry is not replayed"
    third.close()


async def test_nothing_in_the_clear_on_disk(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    await spool.append([("t.usage", b"subject-key-abc", b'{"hint":"a***@e***.org"}')])
    spool.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("*.spool"))
    assert raw and b"subject-key-abc" not in raw and b"e***.org" not in raw


async def test_torn_tail_is_cut_and_later_appends_are_read(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    await spool.append(_records(1))
    await spool.append(_records(2))
    spool.close()
    segment = next(tmp_path.glob("*.spool"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # a crash in the middle of the second append
    again = _open(tmp_path)
    assert again.events == 2, "the torn entry (never answered 2xx) is ignored"
    await again.append(_records(3))
    again.close()
    sink = Sink()
    third = _open(tmp_path)
    await third.forward_once(sink.send)
    assert sink.got == _records(1) + _records(3)
    third.close()


async def test_garbage_tail_is_detected_by_crc(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    await spool.append(_records(1))
    spool.close()
    segment = next(tmp_path.glob("*.spool"))
    with open(segment, "ab") as f:
        f.write(b"CSP1" + os.urandom(60))
    again = _open(tmp_path)
    assert again.events == 2
    again.close()


async def test_send_failure_keeps_everything(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    await spool.append(_records(1))
    sink = Sink()
    sink.down = True
    with pytest.raises(RetriableError):
        await spool.forward_once(sink.send)
    assert spool.events == 2
    sink.down = False
    await spool.forward_once(sink.send)
    assert sink.got == _records(1)
    spool.close()


async def test_forward_loop_drains_once_the_broker_is_back(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    sink = Sink()
    sink.down = True
    task = asyncio.ensure_future(spool.forward(sink.send))
    try:
        for i in range(3):
            await spool.append(_records(i))
        await asyncio.sleep(0.3)
        assert sink.got == [] and spool.events == 6
        sink.down = False
        for _ in range(100):
            if spool.empty:
                break
            await asyncio.sleep(0.1)
        assert spool.empty and sink.got == [r for i in range(3) for r in _records(i)]
        assert metrics.INGEST_SPOOL_EVENTS._value.get() == 0
    finally:
        task.cancel()
        spool.close()


async def test_bounded_in_bytes_and_age(tmp_path: Path) -> None:
    spool = _open(tmp_path / "bytes", max_bytes=2000)
    await spool.append(_records(1))
    with pytest.raises(SpoolFull):
        await spool.append([("t.usage", b"k", b"x" * 3000)])
    assert spool.events == 2, "a refused append keeps nothing"
    spool.close()

    aged = _open(tmp_path / "age", max_age_s=0.05)
    await aged.append(_records(1))
    await asyncio.sleep(0.2)
    assert aged.oldest_age_s() >= 0.05
    with pytest.raises(SpoolFull):
        await aged.append(_records(2))
    aged.close()


async def test_segments_roll_and_forwarded_ones_are_removed(tmp_path: Path) -> None:
    spool = _open(tmp_path, segment_bytes=1)  # one entry per segment
    for i in range(6):
        await spool.append(_records(i))
    assert len(list(tmp_path.glob("*.spool"))) == 6
    sink = Sink()
    while not spool.empty:
        await spool.forward_once(sink.send, max_records=2)
    assert sink.got == [r for i in range(6) for r in _records(i)]
    assert len(list(tmp_path.glob("*.spool"))) <= 2
    spool.close()
    again = _open(tmp_path)
    assert again.empty
    again.close()


async def test_another_pepper_or_a_second_owner_refuses_to_start(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    await spool.append(_records(1))
    with pytest.raises(FatalConfigError, match="another ingest server"):
        Spool(tmp_path, SEALER).open()
    spool.close()
    with pytest.raises(FatalConfigError, match="another pepper"):
        Spool(tmp_path, Sealer(b"a-different-pepper-0123456789")).open()


async def test_a_position_whose_segment_is_gone_does_not_hide_new_entries(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    await spool.append(_records(1))
    await spool.forward_once(Sink().send)  # position: the end of segment 1
    spool.close()
    for segment in tmp_path.glob("*.spool"):
        segment.unlink()  # an operator cleaned the directory, or a disk lost it
    again = _open(tmp_path)
    await again.append(_records(2))
    again.close()
    sink = Sink()
    third = _open(tmp_path)
    assert third.events == 2
    await third.forward_once(sink.send)
    assert sink.got == _records(2)
    third.close()


async def test_the_forward_loop_survives_an_unexpected_error(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    sink = Sink()
    failures = [RuntimeError("a bug in a dependency (test)")]

    async def flaky(records: list[Record]) -> int:
        if failures:
            raise failures.pop()
        return await sink.send(records)

    task = asyncio.ensure_future(spool.forward(flaky))
    try:
        await spool.append(_records(1))
        for _ in range(100):
            if spool.empty:
                break
            await asyncio.sleep(0.1)
        assert not failures, "the failing send was never tried"
        assert spool.empty and sink.got == _records(1), "the loop died with the error"
    finally:
        task.cancel()
        spool.close()
