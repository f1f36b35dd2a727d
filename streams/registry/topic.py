"""The registry topic as a dictionary: declaration id -> Declaration (compacted; tombstones delete).

``Registry`` is the in-memory view both readers fill: the CLI reads the topic to its end
with kafka-python (``read_all``); every worker keeps reading it with aiokafka
(``registry_view``). A record that does not decode is skipped and reported, never a crash:
the declaration it would have replaced stays in force.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.records import Declaration

log = logging.getLogger(__name__)


class Registry:
    """Declarations in force, applied record by record in topic order."""

    def __init__(self) -> None:
        self._decls: dict[str, Declaration] = {}
        self.skipped = 0

    def apply(self, key: bytes | None, value: bytes | None, where: str = "") -> None:
        if key is None:
            self.skipped += 1
            log.warning(
                "registry record without a key at %s skipped (keys are declaration ids)", where
            )
            return
        decl_id = key.decode("utf-8", "replace")
        if value is None:
            self._decls.pop(decl_id, None)
            return
        try:
            decl = codec.decode(Declaration, value)
        except InvalidInput as exc:
            self.skipped += 1
            log.warning(
                "registry record %s at %s cannot be read (%s); the previous declaration stays "
                "in force. Re-publish it with `consentinel registry apply`",
                decl_id,
                where,
                exc.message,
            )
            return
        if decl.decl_id != decl_id:
            self.skipped += 1
            log.warning(
                "registry record at %s has key %s but declares %s; skipped",
                where,
                decl_id,
                decl.decl_id,
            )
            return
        self._decls[decl_id] = decl

    def get(self, decl_id: str) -> Declaration | None:
        return self._decls.get(decl_id)

    def snapshot(self) -> dict[str, Declaration]:
        return dict(self._decls)

    def __len__(self) -> int:
        return len(self._decls)


def read_all(
    bootstrap: str,
    topic: str,
    *,
    timeout_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Registry:
    """Read the whole registry topic to its current end (kafka-python; for the CLI)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="consentinel-registry",
            request_timeout_ms=15_000,
        )
    except (KafkaTimeoutError, KafkaConnectionError):
        raise RetriableError(
            f"no Kafka broker answers at {bootstrap}: start one (`make broker`) or set "
            f"CONSENTINEL_BOOTSTRAP_SERVERS"
        ) from None
    registry = Registry()
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RetriableError(
                f"the registry topic {topic} does not exist: run `consentinel topics create` first"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise RetriableError(
                    f"reading {topic} to its end took more than {timeout_s:.0f}s; "
                    f"is the broker busy?"
                )
            for tp, records in consumer.poll(timeout_ms=500).items():
                for rec in records:
                    registry.apply(rec.key, rec.value, f"{tp.topic}[{tp.partition}]@{rec.offset}")
        return registry
    except KafkaError as exc:
        raise RetriableError(f"Kafka refused to serve {topic}: {exc}") from None
    finally:
        consumer.close()
