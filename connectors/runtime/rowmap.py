"""Mapping import rows in forked worker processes, results in input order.

    async with RowMapper(work, jobs=2) as mapper:      # forks the workers now
        async for key, result in mapper.map(items):    # items: (key, payload or None)
            ...                                        # same order as the items

``work(payloads) -> results`` runs in the workers, on chunks of payloads, one result per
payload. It is inherited through ``fork`` (never pickled): a connector built in the import
process maps in its workers exactly as it would in the process itself. Payloads and
results cross the pipes pickled. An item whose payload is ``None`` is not sent; it comes
back in its place with result ``None`` (a line the reader already refused).

Order: chunk ``n`` goes to worker ``n % jobs`` and each worker answers its chunks in the
order it got them, so reading the answers round-robin gives them back in input order.
At most ``ahead`` payloads are in the workers at once; the answers are read by the event
loop as they come (the workers never wait on a full pipe while the caller awaits Kafka).

What blocks: ``map`` awaits the workers. What raises: an exception of ``work`` in a worker
is raised by ``map`` in this process (the exception itself when it pickles, else a
``RuntimeError`` naming it); a worker that dies (killed, out of memory) is ``WorkerDied``.

Workers die with this process: each holds only its own two pipe ends (end of input when
this process is gone) and asks the kernel for SIGKILL when its parent dies (Linux
``PR_SET_PDEATHSIG``), so a killed import leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, Generic, NoReturn, TypeVar

K = TypeVar("K")
P = TypeVar("P")
R = TypeVar("R")

_HEAD = 4  # bytes of the big-endian length before each pickled frame
_PR_SET_PDEATHSIG = 1


class WorkerDied(RuntimeError):
    """A mapping worker ended without answering (killed, out of memory)."""


def default_jobs() -> int:
    """Workers by default: the CPUs this process may use, up to 4; 0 (map in the import
    process itself) on a single CPU, where a worker would only add the pipe's cost."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(cpus, 4) if cpus > 1 else 0


class _Worker:
    __slots__ = ("answers", "pid", "reader", "writer")

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader,
        answers: asyncio.BaseTransport,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.pid = pid
        self.reader = reader
        self.answers = answers  # the read side's transport, closed with the worker
        self.writer = writer


class RowMapper(Generic[P, R]):
    """``jobs`` forked workers running ``work`` on chunks of ``chunk`` payloads."""

    def __init__(
        self,
        work: Callable[[list[P]], list[R]],
        jobs: int,
        *,
        chunk: int = 250,
        ahead: int = 10_000,
    ) -> None:
        if jobs < 1:
            raise ValueError("RowMapper needs at least one worker")
        self._work = work
        self.jobs = jobs
        self.chunk = max(1, chunk)
        self.ahead = max(self.chunk, ahead)
        self._workers: list[_Worker] = []

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    async def __aenter__(self) -> RowMapper[P, R]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        parent = os.getpid()
        ours: list[int] = []  # this process's ends of every pipe: no worker may hold them
        try:
            for _ in range(self.jobs):
                to_r, to_w = os.pipe()
                from_r, from_w = os.pipe()
                ours += [to_w, from_r]
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:  # the worker
                    _child(self._work, parent, to_r, from_w, ours)
                os.close(to_r)
                os.close(from_w)
                self._workers.append(_Worker(pid, *await _streams(loop, from_r, to_w)))
        except BaseException:
            await self.close()
            raise

    async def map(
        self, items: Iterable[tuple[K, P | None]]
    ) -> AsyncGenerator[tuple[K, R | None], None]:
        """The items' results, in the items' order (see the module docstring)."""
        if not self._workers:
            raise RuntimeError("RowMapper.map before start()")
        sent: deque[tuple[list[tuple[K, bool]], _Worker]] = deque()
        in_flight = 0
        next_worker = 0
        keys: list[tuple[K, bool]] = []
        payloads: list[P] = []

        async def submit() -> None:
            nonlocal keys, payloads, in_flight, next_worker
            worker = self._workers[next_worker]
            next_worker = (next_worker + 1) % len(self._workers)
            if payloads:
                await _send(worker, payloads)
            sent.append((keys, worker))
            in_flight += len(payloads)
            keys, payloads = [], []

        async def oldest() -> list[tuple[K, R | None]]:
            nonlocal in_flight
            chunk_keys, worker = sent.popleft()
            wanted = sum(1 for _, has in chunk_keys if has)
            results: list[R] = await _receive(worker) if wanted else []
            in_flight -= wanted
            got = iter(results)
            return [(key, next(got) if has else None) for key, has in chunk_keys]

        for key, payload in items:
            keys.append((key, payload is not None))
            if payload is not None:
                payloads.append(payload)
            if len(keys) >= self.chunk:
                await submit()
                while in_flight > self.ahead:
                    for out in await oldest():
                        yield out
        if keys:
            await submit()
        while sent:
            for out in await oldest():
                yield out

    async def close(self) -> None:
        """End the workers: end of input, then wait (killed if they do not end at once)."""
        workers, self._workers = self._workers, []
        for w in workers:
            with contextlib.suppress(Exception):
                w.writer.close()
        deadline = time.monotonic() + 5.0
        for w in workers:
            while True:
                try:
                    done, _ = os.waitpid(w.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(w.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(w.pid, 0)
                    break
                await asyncio.sleep(0.01)
        for w in workers:
            with contextlib.suppress(Exception):
                w.answers.close()


async def _streams(
    loop: asyncio.AbstractEventLoop, rfd: int, wfd: int
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport, asyncio.StreamWriter]:
    """Asyncio streams on this process's ends of a worker's pipes. The reader takes the
    answers in as they come (up to 64 MiB buffered), so a worker never waits on a full
    pipe while the import awaits Kafka."""
    reader = asyncio.StreamReader(limit=1 << 26, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    answers, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(rfd, "rb", buffering=0))
    transport, flow = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(wfd, "wb", buffering=0)
    )
    return reader, answers, asyncio.StreamWriter(transport, flow, None, loop)


async def _send(worker: _Worker, payloads: list[Any]) -> None:
    frame = pickle.dumps(payloads, pickle.HIGHEST_PROTOCOL)
    try:
        worker.writer.write(len(frame).to_bytes(_HEAD, "big") + frame)
        await worker.writer.drain()
    except (ConnectionError, OSError) as exc:
        raise WorkerDied(f"import worker {worker.pid} is gone ({type(exc).__name__})") from None


async def _receive(worker: _Worker) -> Any:
    try:
        head = await worker.reader.readexactly(_HEAD)
        frame = await worker.reader.readexactly(int.from_bytes(head, "big"))
    except asyncio.IncompleteReadError:
        raise WorkerDied(
            f"import worker {worker.pid} ended without answering (killed or out of memory?)"
        ) from None
    try:
        ok, value = pickle.loads(frame)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise WorkerDied(
            f"import worker {worker.pid} answered an unreadable frame ({type(exc).__name__}: {exc})"
        ) from None
    if not ok:
        raise value
    return value


def _child(
    work: Callable[[list[Any]], list[Any]], parent: int, rfd: int, wfd: int, close: list[int]
) -> NoReturn:
    """The worker's life, in the forked process: never returns."""
    code = 0
    try:
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        signal.set_wakeup_fd(-1)  # the parent's event loop wakes on it, not us
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent(parent)
        _serve(work, rfd, wfd)
    except BrokenPipeError:
        pass  # the import process closed its end: nothing more to do
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (Linux); end now if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _serve(work: Callable[[list[Any]], list[Any]], rfd: int, wfd: int) -> None:
    with os.fdopen(rfd, "rb") as rf, os.fdopen(wfd, "wb", buffering=0) as wf:
        while True:
            head = rf.read(_HEAD)
            if len(head) < _HEAD:
                return  # end of input: the import is over (or gone)
            payloads = pickle.loads(rf.read(int.from_bytes(head, "big")))
            try:
                answer: tuple[bool, Any] = (True, work(payloads))
            except Exception as exc:
                answer = (False, exc)
            frame = _frame(answer)
            write_all(wf, len(frame).to_bytes(_HEAD, "big") + frame)


def write_all(raw: Any, data: bytes) -> None:
    """Write all of ``data`` to the unbuffered file ``raw``. One ``write`` of a raw file is
    one system call, which may write less than asked: on a pipe, when a signal arrives
    after part of a large frame went through (a profiler or debugger attaching, seen with
    py-spy: the import then failed on an ``UnpicklingError`` mid-stream). The rest is
    written until none is left."""
    view = memoryview(data)
    while view:
        written = raw.write(view)
        if written is None:  # a non-blocking file that is full: not ours, but never spin
            raise BlockingIOError("the answer pipe is non-blocking and full")
        view = view[written:]


def _frame(answer: tuple[bool, Any]) -> bytes:
    """The pickled answer; an exception that would not come back whole (unpicklable, or
    rebuilt with other arguments) becomes a ``RuntimeError`` that names it."""
    ok, value = answer
    if ok:
        return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    try:
        frame = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        pickle.loads(frame)
        return frame
    except Exception:
        return pickle.dumps(
            (False, RuntimeError(f"import worker: {value!r}")), pickle.HIGHEST_PROTOCOL
        )
