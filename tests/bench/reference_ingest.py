"""The ingest benchmark's bare reference, in a process of its own (as the real server is):
aiohttp reads the body and produces it as one record with aiokafka (acks=all, idempotent),
answering after the acknowledgement.

    python reference_ingest.py BOOTSTRAP TOPIC PORT     (SIGTERM stops it)
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid

from aiohttp import web
from aiokafka import AIOKafkaProducer


async def serve(bootstrap: str, topic: str, port: int) -> None:
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2], int(sys.argv[3])))
