"""Ingest: the real ``consentinel ingest`` against a bare reference, for single-event posts
and batched SendGrid posts (100 events a request), on loopback.

The reference is the least an ingest endpoint can do: aiohttp reads the body and produces
it as one record with aiokafka (acks=all, idempotent), answering after the ack; no
verification, no parsing, no pseudonymization. The real server verifies the ECDSA
signature, parses, normalizes, pseudonymizes, maps and produces every event (acks=all)
before answering. The load generator (aiohttp, N concurrent connections, requests signed
in advance) runs on the same two cores, so the figures are a floor.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer
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


async def _load(
    url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for body, headers in queue:
                t = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append((time.perf_counter() - t) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, statuses


async def _reference_server(
    bootstrap: str, topic: str, port: int
) -> tuple[web.AppRunner, AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        await producer.send_and_wait(topic, body, key=uuid.uuid4().bytes)
        return web.json_response({"accepted": 1})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/hooks/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, producer


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
    prefix = f"benchin{uuid.uuid4().hex[:6]}."
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
    rows = []

    server = Proc("ingest", ["ingest", "--config", str(cfg_path)], env, home / "logs")
    base = f"http://127.0.0.1:{settings.ingest_port}"
    try:
        _wait_http(base + "/healthz")
        asyncio.run(_load(f"{base}/hooks/{INSTANCE}", single[:200], 8))  # warm-up
        for label, reqs, per in (("single event", single[200:], 1), ("batched x100", batched, 100)):
            secs, lat, statuses = asyncio.run(_load(f"{base}/hooks/{INSTANCE}", reqs, concurrency))
            rows.append(
                [
                    "consentinel ingest",
                    label,
                    f"{len(reqs) / secs:,.0f}",
                    f"{len(reqs) * per / secs:,.0f}",
                    f"{percentile(lat, 50):.1f}",
                    f"{percentile(lat, 99):.1f}",
                    " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
                ]
            )
    finally:
        server.stop()
    peak = server.peak_rss

    async def reference() -> None:
        port = free_port()
        runner, producer = await _reference_server(bootstrap, prefix + "reference", port)
        try:
            url = f"http://127.0.0.1:{port}/hooks/{INSTANCE}"
            await _load(url, single[:200], 8)
            for label, reqs, per in (
                ("single event", single[200:], 1),
                ("batched x100", batched, 100),
            ):
                secs, lat, statuses = await _load(url, reqs, concurrency)
                rows.append(
                    [
                        "reference (aiohttp+aiokafka)",
                        label,
                        f"{len(reqs) / secs:,.0f}",
                        f"{len(reqs) * per / secs:,.0f}",
                        f"{percentile(lat, 50):.1f}",
                        f"{percentile(lat, 99):.1f}",
                        " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
                    ]
                )
        finally:
            await runner.cleanup()
            await producer.stop()

    admin = topics_admin.admin_client(bootstrap)
    admin.create_topics({prefix + "reference": {"num_partitions": 6, "replication_factor": 1}})
    admin.close()
    asyncio.run(reference())
    print(
        f"\nIngest on loopback ({concurrency} concurrent connections; client on the same 2 cores; "
        f"ingest peak RSS {peak / 1048576:.0f} MiB)"
    )
    print(
        table(rows, ["server", "posts", "requests/s", "events/s", "p50 ms", "p99 ms", "statuses"])
    )
