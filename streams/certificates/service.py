"""The certificate service: claimed certificates on the consent topic in, verification
results (``verify`` consent events) out, on the same topic and partition.

Why a service of its own (``consentinel certificates verify``) and not the worker: a
verification is an HTTP call to the issuer that may take seconds and fail; the worker's
loop must never wait on it, and the ingest server must answer the lead generator at once.
The service reads the consent topic as its own consumer group, so a restart carries on
where it stopped, and writes its results back where the worker reads consents.

Per grant with ``certificate_status: claimed`` (:meth:`CertificateService.handle`):

- the verifier is called at most ``Retry.attempts`` times; a transient fault waits the
  backoff (doubling from ``base_s``, at most ``cap_s``; an issuer's ``Retry-After`` when
  longer) and tries again; after the last one the grant is left claimed (counted as
  ``gave_up``): the use's hold then runs out and raises R23, which a later run corrects;
- the result is written (acks=all, confirmed) before the grant's offset is committed, so
  a crash repeats a verification, never loses one; the result's event id depends on the
  grant only, and the consent history ignores a repeat;
- grants already verified in this run (a redelivered grant) are not verified again (the
  last ``remember`` grant ids are kept).

What blocks: the verifier's HTTP call (bounded by its timeout), the backoff sleeps, Kafka.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from consentinel.streams.events import clock, metrics
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.records import ConsentEvent

from .verifier import Claim, Verification, Verifier, result_event

log = logging.getLogger("consentinel.certificates")


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently a transient fault is retried."""

    attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 30.0

    def delay(self, attempt: int, hint: float = 0.0) -> float:
        """The wait after failed attempt ``attempt`` (0-based)."""
        return float(min(self.cap_s, max(self.base_s * 2.0**attempt, hint)))


#: every value of ``consentinel_certificate_results_total``'s ``status`` label
RESULTS = ("verified", "expired", "mismatch", "gave_up")


def declare_metrics() -> None:
    """Create the result counter's children, so a healthy run shows ``gave_up`` (and every
    other result) at 0 from the start: a labelled counter with no child has no series."""
    for status in RESULTS:
        metrics.CERTIFICATE_RESULTS.labels(status)


class CertificateService:
    """Turns claimed grants into ``verify`` events through ``verifier``; ``send`` writes
    one event and returns once it is acknowledged (raises ``RetriableError`` if not)."""

    def __init__(
        self,
        verifier: Verifier,
        send: Callable[[ConsentEvent], None],
        *,
        retry: Retry = Retry(),
        sleep: Callable[[float], None] = time.sleep,
        now_ms: Callable[[], int] = clock.now_ms,
        remember: int = 10_000,
    ) -> None:
        self.verifier = verifier
        self.send = send
        self.retry = retry
        self.sleep = sleep
        self.now_ms = now_ms
        self.remember = remember
        self._done: OrderedDict[str, None] = OrderedDict()

    def handle(self, event: ConsentEvent) -> ConsentEvent | None:
        """Verify ``event`` if it is a grant with a claimed certificate; the result written,
        or None (not a claim, already done, not verifiable, or given up)."""
        claim = Claim.of(event)
        if claim is None or event.event_id in self._done:
            return None
        verification = self._verify(event, claim)
        if verification is None:
            return None
        result = result_event(event, verification, self.now_ms())
        self.send(result)
        metrics.CERTIFICATE_RESULTS.labels(str(verification.status)).inc()
        log.info("certificate of grant %s: %s", event.event_id, verification.status)
        self._done[event.event_id] = None
        while len(self._done) > self.remember:
            self._done.popitem(last=False)
        return result

    def _verify(self, event: ConsentEvent, claim: Claim) -> Verification | None:
        for attempt in range(self.retry.attempts):
            try:
                verification = self.verifier.verify(claim)
            except RetriableError as exc:
                if attempt + 1 == self.retry.attempts:
                    metrics.CERTIFICATE_RESULTS.labels("gave_up").inc()
                    log.warning(
                        "certificate of grant %s not verified after %d attempts (%s): left "
                        "claimed, its uses' holds will raise R23",
                        event.event_id,
                        self.retry.attempts,
                        exc,
                    )
                    return None
                metrics.CERTIFICATE_RETRIES.inc()
                self.sleep(self.retry.delay(attempt, exc.retry_after))
                continue
            if verification is None:
                log.info("certificate of grant %s: no verifier for its kind", event.event_id)
            return verification
        return None
