"""The hostile suite's machinery: a raw HTTP client, the two servers as subprocesses, topic
counters and an RSS sampler. Traffic goes to 127.0.0.1 only; every wait is bounded.

Loaded by ``conftest.py`` as module ``hostile_harness`` (no ``tests/__init__.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import DeadLetter
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "consentinel"
HOST = "127.0.0.1"
READ_CAP = 2 * 1024 * 1024  # never keep more of an answer than this


# -- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One class's outcomes (a row of the printed table)."""

    name: str
    requests: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    no_answer: int = 0
    dead_letters: int = 0
    events: int = 0
    alive: bool = True
    peak_rss_mb: float = 0.0
    failures: list[str] = field(default_factory=list)

    def add(self, status: int) -> None:
        self.requests += 1
        if 200 <= status < 400:
            self.ok += 1
        elif 400 <= status < 500:
            self.client_errors += 1
        elif status >= 500:
            self.server_errors += 1
        else:
            self.no_answer += 1


ROWS: dict[str, Row] = {}
"""The rows of the printed table, by class name, in the order the classes ran."""


# -- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Reply:
    """What came back: ``status`` 0 when the server closed or reset without an answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""
    seconds: float = 0.0


def _parse(raw: bytes) -> Reply:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return Reply(0, error=f"no HTTP answer ({len(raw)} bytes)")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return Reply(int(parts[1]), headers, body)


def exchange(port: int, raw: bytes, *, timeout: float = 20.0) -> Reply:
    """Send ``raw`` bytes on a new connection and read the answer (the request asks the server
    to close). A server that stops reading early (413) is fine: what it answered is read."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        sock = socket.create_connection((HOST, port), timeout=timeout)
    except OSError as exc:
        return Reply(0, error=f"connect: {exc}")
    received = bytearray()
    with sock:
        with contextlib.suppress(OSError):  # answered and closed before reading it all
            sock.sendall(raw)
        while len(received) < READ_CAP:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
            reply = _parse(bytes(received))
            length = reply.headers.get("content-length")
            if reply.status and length and length.isdigit() and len(reply.body) >= int(length):
                break
    reply = _parse(bytes(received))
    reply.seconds = time.monotonic() - started
    return reply


def request_bytes(
    method: str,
    target: str,
    *,
    port: int,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    host: str | None = None,
    content_length: bool = True,
) -> bytes:
    """An HTTP/1.1 request, byte for byte (header values may hold any character)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host or f'{HOST}:{port}'}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if content_length and not any(k.lower() == "content-length" for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    return head + body


def send(
    port: int,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 20.0,
    **options: object,
) -> Reply:
    raw = request_bytes(method, target, port=port, headers=headers, body=body, **options)  # type: ignore[arg-type]
    return exchange(port, raw, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A ``consentinel`` subprocess with its log file."""

    name: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        """Resident memory of the process and its children, in bytes (0 once gone)."""
        try:
            main = psutil.Process(self.proc.pid)
            procs = [main, *main.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.Error:
            return 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def start(name: str, args: list[str], env: Mapping[str, str], logs: Path, port: int) -> Server:
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(EXE), *args], env=dict(env), stdout=log, stderr=subprocess.STDOUT,
            cwd=ROOT, start_new_session=True,
        )  # fmt: skip
    return Server(name, port, log_path, proc)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


class RssSampler:
    """Samples a server's RSS every ``every`` seconds in a thread; keeps the peak."""

    def __init__(self, server: Server, every: float = 0.05) -> None:
        self.server = server
        self.every = every
        self.peak = server.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, self.server.rss())


# -- topics ------------------------------------------------------------------------------------

WATCHED = (topics.USAGE, topics.CONSENT, topics.DEADLETTER)


class Topics:
    """End offsets of the usage, consent and dead-letter topics of one prefix, and the dead
    letters written between two snapshots."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.names = {base: prefix + base for base in WATCHED}
        self.consumer = KafkaConsumer(  # end offsets only, never assigned
            bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000
        )
        self.reader = KafkaConsumer(  # reads the dead letters back
            bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000
        )
        self.partitions: dict[str, list[TopicPartition]] = {}
        for base, topic in self.names.items():
            parts = self.consumer.partitions_for_topic(topic)
            assert parts, f"topic {topic} does not exist"
            self.partitions[base] = [TopicPartition(topic, p) for p in sorted(parts)]

    def snapshot(self) -> dict[TopicPartition, int]:
        tps = [tp for tps in self.partitions.values() for tp in tps]
        return dict(self.consumer.end_offsets(tps))

    def count(self, base: str, before: dict[TopicPartition, int], after: dict) -> int:  # type: ignore[type-arg]
        return sum(after[tp] - before[tp] for tp in self.partitions[base])

    def dead_letters(
        self, before: dict[TopicPartition, int], after: dict[TopicPartition, int]
    ) -> list[DeadLetter]:
        """The dead letters written between the two snapshots (read back and decoded)."""
        out: list[DeadLetter] = []
        for tp in self.partitions[topics.DEADLETTER]:
            if after[tp] <= before[tp]:
                continue
            self.reader.assign([tp])
            self.reader.seek(tp, before[tp])
            deadline = time.monotonic() + 20
            while self.reader.position(tp) < after[tp] and time.monotonic() < deadline:
                for records in self.reader.poll(timeout_ms=500).values():
                    for record in records:
                        if record.offset < after[tp]:
                            out.append(codec.decode(DeadLetter, record.value))
        return out

    def close(self) -> None:
        self.consumer.close()
        self.reader.close()
