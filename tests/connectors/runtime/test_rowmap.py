"""Mapping in forked workers: input order, errors carried back, no worker outliving the
import process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from consentinel.connectors.runtime.rowmap import RowMapper, WorkerDied, write_all


def _tag(payloads: list[int]) -> list[tuple[int, int]]:
    return [(os.getpid(), p * 10) for p in payloads]


async def test_results_come_back_in_input_order_from_every_worker() -> None:
    items = [(k, None if k % 7 == 3 else k) for k in range(1000)]  # some lines refused early
    async with RowMapper(_tag, jobs=3, chunk=16, ahead=64) as mapper:
        got = [item async for item in mapper.map(items)]
        workers = set(mapper.pids)
    assert [k for k, _ in got] == list(range(1000))
    for k, result in got:
        if k % 7 == 3:
            assert result is None
        else:
            assert result is not None and result[1] == k * 10
    used = {r[0] for _, r in got if r is not None}
    assert used == workers and len(used) == 3 and os.getpid() not in used


async def test_an_error_in_a_worker_is_raised_here_as_it_was_there() -> None:
    def work(payloads: list[int]) -> list[int]:
        if 42 in payloads:
            raise ValueError("no 42 here")
        return payloads

    async with RowMapper(work, jobs=2, chunk=5) as mapper:
        with pytest.raises(ValueError, match="no 42 here"):
            async for _ in mapper.map((k, k) for k in range(100)):
                pass


async def test_an_exception_that_does_not_pickle_back_is_named() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:  # pickle rebuilds it with one argument
            super().__init__(f"{a}/{b}")

    def work(payloads: list[int]) -> list[int]:
        raise Odd(1, 2)

    async with RowMapper(work, jobs=1) as mapper:
        with pytest.raises(RuntimeError, match="Odd"):
            async for _ in mapper.map([(0, 0)]):
                pass


async def test_a_killed_worker_is_reported_not_waited_for() -> None:
    def work(payloads: list[int]) -> list[int]:
        if 7 in payloads:
            os.kill(os.getpid(), signal.SIGKILL)
        return payloads

    async with RowMapper(work, jobs=2, chunk=4) as mapper:
        with pytest.raises(WorkerDied):
            async for _ in mapper.map((k, k) for k in range(50)):
                pass


async def test_close_ends_every_worker() -> None:
    mapper = RowMapper(_tag, jobs=2)
    await mapper.start()
    pids = mapper.pids
    await mapper.close()
    assert all(not _alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


SCRIPT = """
import asyncio, sys, time
from consentinel.connectors.runtime.rowmap import RowMapper

def work(payloads):
    time.sleep(0.05)
    return payloads

async def main():
    async with RowMapper(work, jobs=3, chunk=1, ahead=3) as mapper:
        print(*mapper.pids, flush=True)
        async for _ in mapper.map((k, k) for k in range(10**9)):
            pass

asyncio.run(main())
"""


def test_a_killed_import_leaves_no_worker_behind(tmp_path: Path) -> None:
    script = tmp_path / "importer.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a speed claim
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if _alive(pid)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers outlived the killed import: {left}"


def _big_answers(payloads: list[int]) -> list[bytes]:
    # In the worker: a signal with a handler interrupts its blocking writes to the pipe
    signal.signal(signal.SIGUSR1, lambda *_: None)
    return [bytes([p % 256]) * (2 << 20) for p in payloads]


async def test_answers_stay_whole_when_signals_interrupt_the_workers_writes() -> None:
    # A write to a full pipe that a signal interrupts returns what it wrote so far; the
    # rest must still be written (py-spy attaching to an import broke its stream so).
    import asyncio
    import threading

    stop = threading.Event()

    def pester(pid: int) -> None:
        while not stop.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
            time.sleep(0.0002)

    got: list[tuple[int, bytes]] = []
    async with RowMapper(_big_answers, jobs=1, chunk=1, ahead=2) as mapper:
        thread: threading.Thread | None = None
        try:
            async with asyncio.timeout(120):
                async for key, answer in mapper.map((k, k) for k in range(40)):
                    got.append((key, answer))
                    if thread is None:  # its handler is set: the first answer came back
                        thread = threading.Thread(target=pester, args=(mapper.pids[0],))
                        thread.start()
        finally:
            stop.set()
            if thread is not None:
                thread.join()
    assert [k for k, _ in got] == list(range(40))
    assert all(a == bytes([k % 256]) * (2 << 20) for k, a in got)


def test_write_all_writes_what_a_short_write_left() -> None:
    class Short:
        def __init__(self) -> None:
            self.out = bytearray()

        def write(self, data: memoryview) -> int:
            n = min(len(data), 3)
            self.out += data[:n]
            return n

    raw = Short()
    write_all(raw, b"0123456789")
    assert bytes(raw.out) == b"0123456789"
