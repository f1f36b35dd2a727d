"""The benchmark's synthetic world, produced straight to the topics (no connector in the way).

Every subject consented to ``editorial.newsletter`` e-mail from the controller
``bench-paper`` (with full proof). Usage events are sends of its newsletter (allowed);
about 1 % are sends of a campaign declared ``marketing.direct`` by the same controller
(R2: purpose not consented — decided at once, no grace period); about 2 % are out of order
(occurred before the subject's consent: judged at their own time, held until the grace
period ends).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from consentinel.streams.events import codec, ids, topics
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    Proof,
    UsageEvent,
    UsageKind,
)
from kafka import KafkaProducer

CONTROLLER = "bench-paper"
NEWS = "bench-news"
PROMO = "bench-promo"
T0 = 1_767_225_600_000  # 2026-01-01
PARTITIONS = 6


def subject(i: int) -> str:
    return f"{i:064x}"


def declarations() -> list[Declaration]:
    return [
        Declaration(
            ids.declaration_id("campaign", NEWS),
            "campaign",
            NEWS,
            CONTROLLER,
            "editorial.newsletter",
            Channel.EMAIL,
            promotional=False,
        ),
        Declaration(
            ids.declaration_id("campaign", PROMO),
            "campaign",
            PROMO,
            CONTROLLER,
            "marketing.direct",
            Channel.EMAIL,
        ),
    ]


def consent(i: int) -> ConsentEvent:
    return ConsentEvent(
        event_id=f"bench-consent:{i}",
        occurred_at_ms=T0 - 86_400_000,
        received_at_ms=T0,
        source="bench",
        processor="bench",
        subject_key=subject(i),
        hint="b***@e***.org",
        controller=CONTROLLER,
        action=ConsentAction.GRANT,
        purposes=["editorial.newsletter"],
        channels=[Channel.EMAIL],
        proof=Proof(
            method="double_opt_in",
            collected_at_ms=T0 - 86_400_000,
            collection_point="https://paper.example/newsletter",
            notice_version="v3",
        ),
    )


@dataclass(frozen=True)
class Mix:
    violation_share: float = 0.01
    out_of_order_share: float = 0.02


def usage(n: int, subjects: int, rng: random.Random, mix: Mix, received_at_ms: int) -> UsageEvent:
    i = rng.randrange(subjects)
    r = rng.random()
    campaign = PROMO if r < mix.violation_share else NEWS
    late = mix.violation_share <= r < mix.violation_share + mix.out_of_order_share
    occurred = T0 - 2 * 86_400_000 if late else T0 + n
    return UsageEvent(
        event_id=f"bench-usage:{n}",
        occurred_at_ms=occurred,
        received_at_ms=received_at_ms,
        source="bench",
        processor="bench",
        channel=Channel.EMAIL,
        kind=UsageKind.SEND,
        subject_key=subject(i),
        hint="b***@e***.org",
        controller=CONTROLLER,
        campaign_id=campaign,
    )


async def _produce_batched(bootstrap: str, topic: str, records, partitions: int) -> None:
    """Records straight into per-partition batches (murmur2 placement, like every client)."""
    p = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await p.start()
    try:
        batches = {i: p.create_batch() for i in range(partitions)}
        futures = []
        for key, value in records:
            part = partition_for(key, partitions)
            if batches[part].append(key=key, value=value, timestamp=None) is None:
                futures.append(await p.send_batch(batches[part], topic, partition=part))
                batches[part] = p.create_batch()
                batches[part].append(key=key, value=value, timestamp=None)
        for part, batch in batches.items():
            if batch.record_count():
                futures.append(await p.send_batch(batch, topic, partition=part))
        await asyncio.gather(*futures)
    finally:
        await p.stop()


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )


def preload_registry_and_consent(bootstrap: str, prefix: str, subjects: int) -> float:
    """Declarations and one consent per subject; returns seconds taken."""
    started = time.monotonic()
    p = producer(bootstrap)
    for d in declarations():
        p.send(prefix + topics.REGISTRY, key=d.decl_id.encode(), value=codec.encode(d))
    p.flush(timeout=60)
    p.close()

    def records():
        for i in range(subjects):
            c = consent(i)
            yield subject_message_key(c.subject_key), codec.encode(c)

    asyncio.run(_produce_batched(bootstrap, prefix + topics.CONSENT, records(), PARTITIONS))
    return time.monotonic() - started


def preload_usage(
    bootstrap: str, prefix: str, subjects: int, count: int, seed: int = 7, first: int = 0
) -> float:
    """``count`` usage events numbered from ``first`` (a second batch gets new ids)."""
    started = time.monotonic()
    rng = random.Random(seed)
    now = int(time.time() * 1000)

    def records():
        for n in range(first, first + count):
            u = usage(n, subjects, rng, Mix(), now)
            yield subject_message_key(u.subject_key), codec.encode(u)

    asyncio.run(_produce_batched(bootstrap, prefix + topics.USAGE, records(), PARTITIONS))
    return time.monotonic() - started
