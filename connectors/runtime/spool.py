"""The ingest spool: events answered 2xx while Kafka could not take them, kept on disk.

    spool = Spool(directory, sealer, max_bytes=..., max_age_s=...)
    spool.open()                       # replays what a previous process left; may raise
    await spool.append(records)        # fsync'd before it returns; SpoolFull when bounded
    await spool.forward(send)          # forever: oldest first, to Kafka, position persisted

When Kafka is down or slower than the platform's timeout, the ingest server appends the
verified, normalized records of a request (events and dead letters alike) as one entry,
fsync'd, then answers 2xx. While anything waits here, later requests queue behind it, so
the spool forwards in the order it accepted. A forwarded entry may be sent again after a
crash (between the acknowledgement and the persisted position): ids are deterministic,
so that is a duplicate with the same id, never a new event.

On disk (``directory``): segments ``<seq:016d>.spool``, each a run of entries

    magic "CSP1" | body length u32 | crc32 u32 | appended at (epoch ms) u64 | records u32
    body: AES-256-GCM sealed (``sealing.Sealer``, context "consentinel/spool/v1"), base64

and ``position`` ("<segment> <offset>", replaced atomically): the first byte not yet
forwarded. A torn tail (a crash in the middle of an append: short header, short body or
bad crc) is detected on ``open`` and cut off; that request had not been answered. The
body holds subject keys and masked hints, never a raw address, and is sealed anyway
because it also holds dead letters' payloads. ``lock`` keeps a second server out.

Bounds: ``max_bytes`` of entries waiting and ``max_age_s`` for the oldest of them. Past
either, ``append`` raises ``SpoolFull`` (a ``RetriableError``): the server answers the
platform's ``busy_status``. Nothing accepted is ever dropped to make room.

What blocks: ``append`` and ``forward`` do their file I/O (write, fsync, read, rename) on
one thread of their own, never on the event loop. ``open`` is synchronous (startup).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from consentinel.connectors.runtime.spoolfile import (
    HEAD,
    MAGIC,
    SEGMENT_BYTES,
    Record,
    decode,
    encode,
    valid,
)
from consentinel.streams.events import metrics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import FatalConfigError, InvalidInput, RetriableError
from consentinel.streams.events.sealing import Sealer

log = logging.getLogger("consentinel.ingest.spool")


class SpoolFull(RetriableError):
    """The spool holds as much as it may (bytes or age): nothing can keep this request."""


class _Entry(NamedTuple):
    segment: int
    offset: int
    size: int  # header + body
    records: int
    appended_ms: int


class Spool:
    """An append-only, sealed, bounded spool of ingest records, forwarded in order."""

    def __init__(
        self,
        directory: Path,
        sealer: Sealer,
        *,
        max_bytes: int = 1024 * 1024 * 1024,
        max_age_s: float = 3 * 24 * 3600.0,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.segment_bytes = segment_bytes
        self._sealer = sealer
        self._pending: deque[_Entry] = deque()
        self._bytes = 0
        self._events = 0
        self._segment = 0
        self._fd = -1
        self._size = 0
        self._lock_fd = -1
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-spool")
        self._append_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()

    # -- state ---------------------------------------------------------------------------
    @property
    def events(self) -> int:
        """Records waiting to be forwarded."""
        return self._events

    @property
    def size_bytes(self) -> int:
        """Bytes of entries waiting to be forwarded."""
        return self._bytes

    @property
    def empty(self) -> bool:
        return not self._pending

    def oldest_age_s(self) -> float:
        """Age of the oldest entry waiting, in seconds (0 when empty)."""
        if not self._pending:
            return 0.0
        return max(0.0, (now_ms() - self._pending[0].appended_ms) / 1000)

    def _publish(self) -> None:
        metrics.INGEST_SPOOL_EVENTS.set(self._events)
        metrics.INGEST_SPOOL_BYTES.set(self._bytes)

    # -- startup -------------------------------------------------------------------------
    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:016d}.spool"

    def open(self) -> None:
        """Take the directory, replay what is left, cut a torn tail. Blocks on disk I/O.

        Raises ``FatalConfigError`` when another process holds the spool, or when what is
        left cannot be opened with this pepper (it was sealed with another one).
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise FatalConfigError(
                [
                    f"another ingest server holds the spool {self.directory}; give each one "
                    "its own --spool-dir"
                ],
                "ingest spool",
            ) from None
        first_seg, first_off = self._read_position()
        segments = sorted(int(p.stem) for p in self.directory.glob("*.spool") if p.stem.isdigit())
        for seg in segments:
            if seg < first_seg:
                self._path(seg).unlink(missing_ok=True)
        segments = [s for s in segments if s >= first_seg]
        for i, seg in enumerate(segments):
            self._scan(seg, first_off if seg == first_seg else 0, last=i == len(segments) - 1)
        # a new segment when the position's is gone: its offset must not apply to new entries
        self._segment = segments[-1] if segments and segments[-1] >= first_seg else first_seg + 1
        self._fd = os.open(self._path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        if self._pending:
            head = self._pending[0]
            try:
                self._read(head)
            except InvalidInput:
                raise FatalConfigError(
                    [
                        f"the spool {self.directory} holds {self._events} record(s) sealed with "
                        "another pepper: restore that pepper, forward them, then change it"
                    ],
                    "ingest spool",
                ) from None
            log.warning(
                "spool %s: %d record(s) in %d request(s) left by a previous run, oldest %.0f s; "
                "forwarding them before anything new",
                self.directory,
                self._events,
                len(self._pending),
                self.oldest_age_s(),
            )
            self._wakeup.set()
        metrics.INGEST_SPOOL_OLDEST_AGE.set_function(self.oldest_age_s)
        self._publish()

    def _read_position(self) -> tuple[int, int]:
        try:
            seg, off = (self.directory / "position").read_text("ascii").split()
            return int(seg), int(off)
        except FileNotFoundError:
            return 0, 0
        except ValueError:
            raise FatalConfigError(
                [
                    f"{self.directory / 'position'} is not '<segment> <offset>'; fix or remove it "
                    "(removing it forwards the whole spool again: duplicates with the same ids)"
                ],
                "ingest spool",
            ) from None

    def _scan(self, segment: int, offset: int, *, last: bool) -> None:
        path = self._path(segment)
        data = path.read_bytes()
        at = offset
        while at < len(data):
            head = data[at : at + HEAD.size]
            if len(head) < HEAD.size:
                break
            magic, length, crc, appended, count = HEAD.unpack(head)
            body = data[at + HEAD.size : at + HEAD.size + length]
            if magic != MAGIC or len(body) < length:
                break
            if not valid(crc, appended, count, body):
                break
            self._add(_Entry(segment, at, HEAD.size + length, count, appended))
            at += HEAD.size + length
        if at < len(data):
            if last:
                log.warning(
                    "spool %s: cut a torn tail of %d byte(s) (an append a crash interrupted, "
                    "never answered 2xx)",
                    path,
                    len(data) - at,
                )
                with open(path, "r+b") as f:
                    f.truncate(at)
                    os.fsync(f.fileno())
            else:
                log.error(
                    "spool %s: %d unreadable byte(s) in the middle of the spool were skipped",
                    path,
                    len(data) - at,
                )

    def _add(self, entry: _Entry) -> None:
        self._pending.append(entry)
        self._bytes += entry.size
        self._events += entry.records

    # -- append --------------------------------------------------------------------------
    async def append(self, records: Sequence[Record]) -> None:
        """Keep ``records`` as one entry, fsync'd; returns once it is on disk.

        Raises ``SpoolFull`` past ``max_bytes`` or ``max_age_s``; ``RetriableError`` when the
        disk refuses (full, read-only). Blocks on the spool's I/O thread.
        """
        appended = now_ms()
        entry = encode(records, self._sealer, appended)
        async with self._append_lock:
            if self._bytes + len(entry) > self.max_bytes:
                raise SpoolFull(
                    f"the ingest spool holds {self._bytes} bytes, its bound is {self.max_bytes}",
                    retry_after=30.0,
                )
            if self._pending and self.oldest_age_s() > self.max_age_s:
                raise SpoolFull(
                    f"the oldest spooled request waits for {self.oldest_age_s():.0f} s, "
                    f"past the bound of {self.max_age_s:.0f} s: Kafka has been away too long",
                    retry_after=30.0,
                )
            loop = asyncio.get_running_loop()
            try:
                placed = await loop.run_in_executor(self._io, self._write, entry)
            except OSError as exc:
                raise RetriableError(
                    f"the ingest spool {self.directory} cannot be written ({exc.strerror})",
                    retry_after=30.0,
                ) from None
            self._add(_Entry(*placed, len(entry), len(records), appended))
        metrics.INGEST_SPOOL_APPENDED.inc(len(records))
        self._publish()
        self._wakeup.set()

    def _write(self, entry: bytes) -> tuple[int, int]:
        if self._size >= self.segment_bytes:
            os.close(self._fd)
            self._segment += 1
            self._fd = os.open(
                self._path(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
            )
            self._size = 0
            self._fsync_dir()
        offset = self._size
        written = os.write(self._fd, entry)
        self._size += written
        if written != len(entry):  # disk full in the middle: cut it, report it
            os.ftruncate(self._fd, offset)
            self._size = offset
            raise OSError(28, "short write")
        os.fsync(self._fd)
        return self._segment, offset

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- forward -------------------------------------------------------------------------
    def _read(self, entry: _Entry) -> list[Record]:
        with open(self._path(entry.segment), "rb") as f:
            f.seek(entry.offset + HEAD.size)
            body = f.read(entry.size - HEAD.size)
        return decode(body, self._sealer)

    def _read_all(self, entries: list[_Entry]) -> list[Record]:
        records: list[Record] = []
        for entry in entries:
            records += self._read(entry)
        return records

    def _commit(self, last: _Entry) -> None:
        """Persist the position after ``last``; drop segments wholly forwarded."""
        tmp = self.directory / "position.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{last.segment} {last.offset + last.size}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / "position")
        for seg in range(last.segment - 1, 0, -1):
            path = self._path(seg)
            if not path.exists():
                break
            path.unlink()
        self._fsync_dir()

    async def forward_once(
        self, send: Callable[[list[Record]], Awaitable[int]], max_records: int = 2000
    ) -> int:
        """Send the oldest entries (about ``max_records``) and persist the position.

        Returns how many records went out. Raises what ``send`` raises (the entries stay).
        """
        if not self._pending:
            return 0
        entries: list[_Entry] = []
        count = 0
        for entry in self._pending:  # a snapshot taken on the loop, where appends happen
            if entries and count + entry.records > max_records:
                break
            entries.append(entry)
            count += entry.records
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(self._io, self._read_all, entries)
        await send(records)
        await loop.run_in_executor(self._io, self._commit, entries[-1])
        for entry in entries:
            self._pending.popleft()
            self._bytes -= entry.size
            self._events -= entry.records
        metrics.INGEST_SPOOL_FORWARDED.inc(len(records))
        self._publish()
        return len(records)

    async def forward(self, send: Callable[[list[Record]], Awaitable[int]]) -> None:
        """Forward forever (until cancelled): retries with backoff while Kafka is away."""
        backoff = 0.5
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            try:
                sent = await self.forward_once(send)
            except RetriableError as exc:
                log.warning("spool: %d record(s) wait for Kafka: %s", self._events, exc)
            except InvalidInput as exc:  # cannot happen for what the server checked
                log.error("spool: the oldest entry cannot be forwarded (%s); retrying", exc.code)
            except Exception as exc:  # a bug or the disk: keep the loop, say what happened
                log.error("spool: forwarding failed (%s); retrying", type(exc).__name__)
            else:
                backoff = 0.5
                if not self._pending:
                    log.info("spool: forwarded everything (last batch %d record(s))", sent)
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def close(self) -> None:
        """Close the files and the I/O thread (waits for an append in progress)."""
        self._io.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
