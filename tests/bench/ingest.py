"""Ingest: the real ``consentinel ingest`` against a bare reference, for single-event posts
and batched SendGrid posts (100 events a request), on loopback.

The reference is the least an ingest endpoint can do: aiohttp reads the body and produces
it as one record with aiokafka (acks=all, idempotent), answering after the ack; no
verification, no parsing, no pseudonymization. The real server verifies the ECDSA
signature, parses, normalizes, pseudonymizes, maps and produces every event (acks=all)
before answering. Each server runs in a process of its own; the load generator (this
process) keeps N HTTP/1.1 connections open and writes requests rendered and signed in
advance, reading each answer before the next (a small asyncio protocol: an aiohttp client
cost more CPU than the servers it measured). It shares the two cores with the servers and
the broker, so the figures are a floor.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchtopics
from common import ROOT, Proc, env_for, free_port, percentile, table
from consentinel.connectors import config as connectors_config
from consentinel.connectors.builtin import sendgrid
from consentinel.connectors.contract import Request
from consentinel.streams import topics_admin
from consentinel.streams.events import codec
from consentinel.streams.events.settings import Settings

INSTANCE = "sendgrid-bench"
CONFIG = f"""
instances:
  - name: {INSTANCE}
    type: sendgrid
    controller: bench-sender
    options:
      account: bench
      max_age_s: null
    secrets:
      verification_key: file:{ROOT}/deploy/demo/secrets/sendgrid-verification-key
      signing_key: file:{ROOT}/deploy/demo/secrets/sendgrid-signing-key.pem
"""


def _bodies(n_requests: int, per_request: int, tag: str) -> list[bytes]:
    now = int(time.time())
    out = []
    k = 0
    for _ in range(n_requests):
        events = []
        for _ in range(per_request):
            events.append(
                {
                    "email": f"reader{k}.{tag}@example.org",
                    "event": "delivered",
                    "sg_event_id": f"{tag}-{k}",
                    "sg_message_id": f"m{k}.filter",
                    "timestamp": now,
                    "category": ["newsletter"],
                }
            )
            k += 1
        out.append(codec.dumps(events) + b"\r\n")
    return out


def _signed(bodies: list[bytes], instance) -> list[tuple[bytes, dict[str, str]]]:
    signed = []
    for body in bodies:
        req = Request(
            method="POST",
            url="http://127.0.0.1/hooks/" + INSTANCE,
            path="/",
            query={},
            headers={"content-type": "application/json"},
            body=body,
        )
        s = sendgrid.sign(req, instance)
        signed.append((body, dict(s.headers)))
    return signed


def _rendered(path: str, signed: list[tuple[bytes, dict[str, str]]]) -> list[bytes]:
    """Whole HTTP/1.1 requests (head and body), ready to write."""
    out = []
    for body, headers in signed:
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        out.append(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    return out


class _Connection(asyncio.Protocol):
    """One keep-alive connection: write a request, wait for its whole answer."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.answer: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.answer is not None and not self.answer.done():
            status = self._status()
            if status is not None:
                self.answer.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("the server closed the connection"))

    def _status(self) -> int | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return None
        del self.buffer[: end + 4 + length]
        return int(head[9:12])

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer


async def _load(
    port: int, requests: list[bytes], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(_Connection, "127.0.0.1", port))[1]
        for _ in range(concurrency)
    ]

    async def worker(conn: _Connection) -> None:
        for request in queue:
            t = time.perf_counter()
            status = await conn.send(request)
            latencies.append((time.perf_counter() - t) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    return time.perf_counter() - started, latencies, statuses


def _wait_http(url: str, timeout_s: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s")


def section(bootstrap: str, quick: bool = False) -> None:
    prefix = benchtopics.fresh_prefix("benchin")
    home = Path(tempfile.mkdtemp(prefix="consentinel-bench-ingest-"))
    env = env_for(
        prefix, home, bootstrap, partitions=6, ingest_port=free_port(), metrics_port=free_port()
    )
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("CONSENTINEL_")})
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    cfg_path = home / "connectors.yaml"
    cfg_path.write_text(CONFIG)
    instance = connectors_config.load(cfg_path, settings).get(INSTANCE)

    single_n, batch_n = (2_000, 100) if quick else (20_000, 600)
    print(
        f"\n[ingest] signing {single_n:,} single-event and {batch_n:,} batched requests…",
        flush=True,
    )
    single = _signed(_bodies(single_n, 1, "s"), instance)
    batched = _signed(_bodies(batch_n, 100, "b"), instance)
    concurrency = 32
    path = f"/hooks/{INSTANCE}"
    single_raw, batched_raw = _rendered(path, single), _rendered(path, batched)
    rows = []

    def measure(server: str, port: int) -> None:
        _wait_http(f"http://127.0.0.1:{port}/healthz")  # the reference: 404, answers
        asyncio.run(_load(port, single_raw[:200], 8))  # warm-up
        for label, reqs, per in (
            ("single event", single_raw[200:], 1),
            ("batched x100", batched_raw, 100),
        ):
            secs, lat, statuses = asyncio.run(_load(port, reqs, concurrency))
            rows.append(
                [
                    server,
                    label,
                    f"{len(reqs) / secs:,.0f}",
                    f"{len(reqs) * per / secs:,.0f}",
                    f"{percentile(lat, 50):.1f}",
                    f"{percentile(lat, 99):.1f}",
                    " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
                ]
            )

    server = Proc("ingest", ["ingest", "--config", str(cfg_path)], env, home / "logs")
    try:
        measure("consentinel ingest", settings.ingest_port)
    finally:
        server.stop()
    peak = server.peak_rss

    admin = topics_admin.admin_client(bootstrap)
    admin.create_topics({prefix + "reference": {"num_partitions": 6, "replication_factor": 1}})
    admin.close()
    port = free_port()
    reference = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("reference_ingest.py")),
            bootstrap,
            prefix + "reference",
            str(port),
        ]
    )
    try:
        measure("reference (aiohttp+aiokafka)", port)
    finally:
        reference.terminate()
        reference.wait(60)
    print(
        f"\nIngest on loopback ({concurrency} concurrent connections; each server and the client "
        f"in a process of its own, all on the same 2 cores; "
        f"ingest peak RSS {peak / 1048576:.0f} MiB)"
    )
    print(
        table(rows, ["server", "posts", "requests/s", "events/s", "p50 ms", "p99 ms", "statuses"])
    )
