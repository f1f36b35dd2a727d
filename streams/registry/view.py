"""Every worker's view of the purpose registry: the whole registry topic, kept up to date.

Why not a Faust agent or a GlobalTable: the registry topic has one partition, and an
agent's partitions are split between workers, so only one worker would see it. A
GlobalTable would need an agent to copy the topic into its own changelog (read by one
worker again), recovers before anything else starts, and has a history of standby bugs.
The registry is small and read-only for workers, so each worker runs a plain aiokafka
consumer with no group, manually assigned every partition of the topic from the
beginning, and keeps a dict. The checker waits for ``ready`` (the topic read to the end
it had at start) before judging anything, so a restart never judges a use "undeclared"
because the registry was half read.
"""

from __future__ import annotations

import asyncio
import logging

from consentinel.streams.events import metrics
from consentinel.streams.events.records import Declaration
from consentinel.streams.registry.topic import Registry

log = logging.getLogger("consentinel.registry")


class RegistryView:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.registry = Registry()
        self._ready: asyncio.Event | None = None

    @property
    def ready(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    def get(self, decl_id: str) -> Declaration | None:
        return self.registry.get(decl_id)

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def run(self) -> None:
        """Read the topic forever; on a failure, log, wait and read it again from the start."""
        delay = 1.0
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "reading the registry topic %s failed (%s: %s); retrying in %.0fs "
                    "(the declarations read so far stay in force)",
                    self.topic,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer

        # No group: a subscription without a group id is assigned every partition of the
        # topic (and follows partitions added later); nothing is committed.
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="consentinel-registry-view",
        )
        await consumer.start()
        try:
            tps = consumer.assignment()
            for _ in range(100):
                if tps:
                    break
                await asyncio.sleep(0.1)
                tps = consumer.assignment()
            if not tps:
                raise RuntimeError(
                    f"the registry topic {self.topic} does not exist; "
                    f"run `consentinel topics create`"
                )
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(list(tps))
            fresh = Registry()  # replaces the current view once read to the end
            caught_up = False
            while True:
                if not caught_up:
                    positions = {tp: await consumer.position(tp) for tp in end}
                    if all(positions[tp] >= offset for tp, offset in end.items()):
                        caught_up = True
                        self.registry = fresh
                        metrics.REGISTRY_DECLARATIONS.set(len(fresh))
                        if not self.ready.is_set():
                            log.info(
                                "purpose registry read: %d declaration(s) in force from %s",
                                len(fresh),
                                self.topic,
                            )
                        self.ready.set()
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, messages in batch.items():
                    for m in messages:
                        fresh.apply(m.key, m.value, f"{tp.topic}[{tp.partition}]@{m.offset}")
                if caught_up and batch:
                    metrics.REGISTRY_DECLARATIONS.set(len(fresh))
                    log.info("purpose registry updated: %d declaration(s) in force", len(fresh))
        finally:
            await consumer.stop()
