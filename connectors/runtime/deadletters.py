"""Dead letters: what could not be taken in, sealed, with its reason.

The raw payload is sealed with ``sealing.Sealer`` (AES-256-GCM, key derived from the
pepper, empty associated data) before it leaves the process; the record carries the
reason code (a bounded metric label), the human sentence, and attributes that never
hold the payload or an address (line number, file fingerprint, HTTP method).

A letter is always small enough to be written (``max_record``, the producer's largest
record): when the sealed payload would not fit, the payload is cut to the bytes that do
fit, and the attributes say so: ``truncated`` true, ``original_bytes`` (its whole size)
and ``original_sha256`` (hex digest of the whole payload, to match it against the
platform's copy). The reason code and sentence are never cut. So an invalid body is
dead-lettered and answered 4xx, never left to a 503 the platform retries forever.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping

from consentinel.connectors.contract import Output, Request
from consentinel.connectors.runtime.producer import Record, record_size, records_of
from consentinel.streams.events import codec, metrics, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import DeadLetter, Scalar
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.events.settings import Settings


class DeadLetters:
    """Builds sealed ``DeadLetter`` records and counts them."""

    def __init__(self, settings: Settings, max_record: int = 1024 * 1024) -> None:
        self._sealer = Sealer(settings.pepper.reveal())
        self.key_id = self._sealer.key_id
        self.max_record = max_record

    def letter(
        self,
        source: str,
        error: InvalidInput,
        payload: bytes,
        *,
        stage: str,
        content_type: str = "application/octet-stream",
        attributes: Mapping[str, Scalar] | None = None,
        received_at_ms: int | None = None,
    ) -> DeadLetter:
        """A sealed letter that fits in ``max_record`` (the payload cut if it must be)."""
        attrs = dict(attributes or {})
        received = received_at_ms or now_ms()
        kept = payload
        while True:
            letter = DeadLetter(
                source=source,
                received_at_ms=received,
                reason_code=error.code,
                reason=error.message,
                sealed_payload=self._sealer.seal(kept),
                key_id=self.key_id,
                content_type=content_type or "application/octet-stream",
                stage=stage,
                attributes=attrs,
            )
            over = record_size(source.encode("utf-8"), codec.encode(letter)) - self.max_record
            if over <= 0:
                return letter
            if len(kept) == 0:
                raise ValueError(f"a dead letter without payload exceeds {self.max_record} bytes")
            if kept is payload:
                attrs = {
                    **attrs,
                    "truncated": True,
                    "original_bytes": len(payload),
                    "original_sha256": hashlib.sha256(payload).hexdigest(),
                }
            # base64 makes 4 bytes of 3: cut 3/4 of the excess, and a margin for the attributes
            kept = kept[: max(0, len(kept) - (over * 3 // 4 + 256))]

    @staticmethod
    def count(source: str, code: str, n: int = 1) -> None:
        metrics.DEADLETTERS.labels(source=source, reason=code).inc(n)

    def open_(self, letter: DeadLetter) -> bytes:
        """The raw payload, for replay tooling (never for a log line)."""
        return bytes(self._sealer.open_(letter.sealed_payload))


def output_records(
    output: Output,
    settings: Settings,
    letters: DeadLetters,
    fits: Callable[[bytes, bytes], bool],
    source: str,
    req: Request,
) -> tuple[list[Record], Counter[str]]:
    """The records of a request's output: a dead letter for each rejected item (sealed
    item, code, sentence, ``index``) and for each event too large to be written (its
    encoded event, sealed, code ``usage_too_large``/``consent_too_large``), then the
    events. Returns them with the reason codes counted. Never blocks."""
    records: list[Record] = []
    rejected: Counter[str] = Counter()
    dl_topic = settings.topic(topics.DEADLETTER)
    dl_key = source.encode("utf-8")
    for item in output.rejected:
        letter = letters.letter(
            source,
            InvalidInput(item.code, item.message),
            item.raw,
            stage="ingest",
            content_type="application/json",
            attributes={"index": item.index, "method": req.method, "bytes": len(item.raw)},
            received_at_ms=req.received_at_ms,
        )
        records.append((dl_topic, dl_key, codec.encode(letter)))
        rejected[item.code] += 1
    usage_topic = settings.topic(topics.USAGE)
    for topic, key, value in records_of(output, settings):
        if fits(key, value):
            records.append((topic, key, value))
            continue
        kind = "usage" if topic == usage_topic else "consent"
        err = InvalidInput(
            f"{kind}_too_large",
            f"a {kind} event of {len(value)} bytes exceeds the largest record Kafka takes "
            f"({letters.max_record}); the connector should bound its free-text fields",
        )
        letter = letters.letter(
            source,
            err,
            value,
            stage="ingest",
            content_type="application/json",
            attributes={"method": req.method},
            received_at_ms=req.received_at_ms,
        )
        records.append((dl_topic, dl_key, codec.encode(letter)))
        rejected[err.code] += 1
    return records, rejected
