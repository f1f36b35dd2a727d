"""Dead letters: what could not be taken in, sealed, with its reason.

The raw payload is sealed with ``sealing.Sealer`` (AES-256-GCM, key derived from the
pepper, empty associated data) before it leaves the process; the record carries the
reason code (a bounded metric label), the human sentence, and attributes that never
hold the payload or an address (line number, file fingerprint, HTTP method).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from consentinel.streams.events import metrics
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import DeadLetter, Scalar
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.events.settings import Settings


class DeadLetters:
    """Builds sealed ``DeadLetter`` records and counts them."""

    def __init__(self, settings: Settings) -> None:
        self._sealer = Sealer(settings.pepper.reveal())
        self.key_id = self._sealer.key_id

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
        return DeadLetter(
            source=source,
            received_at_ms=received_at_ms or time.time_ns() // 1_000_000,
            reason_code=error.code,
            reason=error.message,
            sealed_payload=self._sealer.seal(payload),
            key_id=self.key_id,
            content_type=content_type or "application/octet-stream",
            stage=stage,
            attributes=dict(attributes or {}),
        )

    @staticmethod
    def count(source: str, code: str, n: int = 1) -> None:
        metrics.DEADLETTERS.labels(source=source, reason=code).inc(n)

    def open_(self, letter: DeadLetter) -> bytes:
        """The raw payload, for replay tooling (never for a log line)."""
        return bytes(self._sealer.open_(letter.sealed_payload))
