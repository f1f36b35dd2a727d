"""(a) The ceiling: a bare aiokafka consumer over the same usage topic — getmany, decode
with orjson (through our codec's ``loads``), one dict lookup of the subject's consent."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer
from consentinel.streams.events import codec, topics


async def _read(bootstrap: str, topic: str, expected: int, on_record) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if started is None and batches:
                started = time.monotonic()
            for records in batches.values():
                for rec in records:
                    on_record(rec)
                seen += len(records)
    finally:
        await consumer.stop()
    return time.monotonic() - (started or time.monotonic())


def run(bootstrap: str, prefix: str, subjects: int, usages: int) -> dict[str, float]:
    consents: dict[str, list[str]] = {}

    def keep(rec) -> None:
        c = codec.loads(rec.value)
        consents[c["subject_key"]] = c["purposes"]

    build_s = asyncio.run(_read(bootstrap, prefix + topics.CONSENT, subjects, keep))
    hits = 0

    def judge(rec) -> None:
        nonlocal hits
        u = codec.loads(rec.value)
        if consents.get(u["subject_key"]) is not None:
            hits += 1

    drain_s = asyncio.run(_read(bootstrap, prefix + topics.USAGE, usages, judge))
    return {
        "consent_rate": subjects / build_s if build_s else 0.0,
        "rate": usages / drain_s if drain_s else 0.0,
        "hits": hits,
    }
