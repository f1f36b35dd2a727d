"""``consentinel certificates verify [--once]``: the certificate service on Kafka.

Reads the consent topic as the consumer group ``<app_id>-certificates`` (from its committed
offsets, else the beginning), verifies each claimed lead certificate through the
TrustedForm-style verifier (``CONSENTINEL_CERTIFICATE_ENDPOINT``, key from
``CONSENTINEL_CERTIFICATE_KEY``) and writes each result to the consent topic, keyed by the
subject key; offsets are committed after the results are acknowledged. ``--once`` stops
when it has caught up with the end of the topic (for cron jobs and tests).

Settings are checked at start: a missing key or a bad endpoint stops it with every
problem listed.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable

from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import FatalConfigError, InvalidInput, RetriableError
from consentinel.streams.events.partitioning import subject_message_key
from consentinel.streams.events.records import ConsentEvent
from consentinel.streams.events.secrets import UnresolvedSecret, resolve
from consentinel.streams.events.settings import Settings

from .service import CertificateService
from .trustedform import TrustedFormVerifier
from .verifier import Verifier

log = logging.getLogger("consentinel.certificates")


def verifier_from(settings: Settings) -> TrustedFormVerifier:
    """The configured verifier; ``FatalConfigError`` naming what to fix."""
    if not settings.certificate_key:
        raise FatalConfigError(
            ["CONSENTINEL_CERTIFICATE_KEY is not set: name the API key as env:NAME or file:PATH"],
            "consentinel certificates",
        )
    try:
        key = resolve(settings.certificate_key, environ=os.environ)
    except UnresolvedSecret as exc:
        raise FatalConfigError(
            [f"CONSENTINEL_CERTIFICATE_KEY: {exc.problem}"], "consentinel certificates"
        ) from None
    return TrustedFormVerifier(key, endpoint=settings.certificate_endpoint)


def run(
    settings: Settings,
    verifier: Verifier,
    *,
    once: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Verify claimed certificates until stopped (or, with ``once``, caught up); returns
    how many results were written."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    topic = settings.topic(topics.CONSENT)
    servers = settings.bootstrap_servers.split(",")
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=servers, group_id=f"{settings.app_id}-certificates",
            enable_auto_commit=False, auto_offset_reset="earliest",
            client_id="consentinel-certificates", request_timeout_ms=15_000,
        )  # fmt: skip
        producer = KafkaProducer(bootstrap_servers=servers, acks="all", max_block_ms=10_000)
    except KafkaError as exc:
        raise RetriableError(f"no Kafka broker answers at {servers} ({exc})") from None

    def send(event: ConsentEvent) -> None:
        try:
            producer.send(
                topic, key=subject_message_key(event.subject_key), value=codec.encode(event)
            ).get(timeout=30)
        except KafkaError as exc:
            raise RetriableError(f"a certificate result was not written ({exc})") from None

    service = CertificateService(verifier, send)
    written = 0
    try:
        deadline = time.monotonic() + 30
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RetriableError(f"the consent topic {topic} does not exist: create the topics")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        while not should_stop():
            batch = consumer.poll(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    try:
                        event = codec.decode(ConsentEvent, record.value or b"")
                    except InvalidInput as exc:  # the worker dead-letters it
                        log.warning("skipped an unreadable consent record (%s)", exc.code)
                        continue
                    if service.handle(event) is not None:
                        written += 1
            if batch:
                consumer.commit()
            elif once:
                end = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= end[tp] for tp in tps):
                    break
    finally:
        consumer.close()
        producer.close()
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="consentinel certificates", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    verify = sub.add_parser("verify", help="verify claimed lead certificates (R23)")
    verify.add_argument("--once", action="store_true", help="stop once caught up")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    verifier = verifier_from(settings)
    written = run(settings, verifier, once=args.once)
    print(f"{written} certificate result(s) written")
    return 0
