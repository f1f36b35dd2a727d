"""What aiokafka logs, made fit for the person on call: the router's one place for it.

On a fresh broker the group coordinator does not exist until ``__consumer_offsets`` is
created on the first group's request, and while a broker loads or moves a group its
coordinator answers "not available", "not coordinator" or "load in progress". aiokafka
retries every 100 ms and logs each attempt at ERROR ("Group Coordinator Request failed:
[Error 15] GroupCoordinatorNotAvailableError"): seven ERROR lines for a normal start.

``CoordinatorNoise`` is a logging filter for aiokafka's loggers: such a record is dropped
and replaced by ONE WARNING per episode on ``consentinel.router`` saying what is going on
and when to worry; the episode ends when a record without such an error arrives or
``settled()`` is called (the consumer joined its group), so a later outage is reported
again. Every other aiokafka record passes unchanged, real errors stay at ERROR.

Nothing here blocks or raises.
"""

from __future__ import annotations

import logging
import time

from aiokafka import errors as kafka_errors

#: Retriable coordinator states: expected on a fresh broker and during a group move.
TRANSIENT: tuple[type[BaseException], ...] = (
    kafka_errors.GroupCoordinatorNotAvailableError,
    kafka_errors.NotCoordinatorForGroupError,
    kafka_errors.GroupLoadInProgressError,
)
_NAMES = tuple(t.__name__ for t in TRANSIENT)

#: The aiokafka loggers that report coordinator lookups and commits.
LOGGERS = ("aiokafka.consumer.group_coordinator", "aiokafka.consumer.consumer")


class CoordinatorNoise(logging.Filter):
    """Drops aiokafka's per-retry coordinator errors; says it once, as a WARNING."""

    def __init__(self, group: str, to: logging.Logger | None = None) -> None:
        super().__init__()
        self.group = group
        self.to = to or logging.getLogger("consentinel.router")
        self.reported = False
        self._reported_at = 0.0

    def settled(self) -> None:
        """The group coordinator answered: the next unavailability is a new episode (at
        most one warning a minute, however often the coordinator flaps)."""
        if self.reported and time.monotonic() - self._reported_at >= 60.0:
            self.reported = False

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        transient = any(isinstance(a, TRANSIENT) for a in args) or any(
            name in record.getMessage() for name in _NAMES
        )
        if not transient:
            return True
        if not self.reported:
            self.reported = True
            self._reported_at = time.monotonic()
            self.to.warning(
                "the Kafka group coordinator for group %s is not available yet (%s); "
                "retrying. Expected for a few seconds on a fresh broker (it creates "
                "__consumer_offsets on first use) or while a broker restarts; check the "
                "broker only if this lasts minutes",
                self.group,
                next((type(a).__name__ for a in args if isinstance(a, TRANSIENT)), "retriable"),
            )
        return False


def install(group: str) -> CoordinatorNoise:
    """Attach a ``CoordinatorNoise`` for ``group`` to aiokafka's loggers; returns it."""
    noise = CoordinatorNoise(group)
    for name in LOGGERS:
        logging.getLogger(name).addFilter(noise)
    return noise


def uninstall(noise: CoordinatorNoise) -> None:
    """Detach what ``install`` attached."""
    for name in LOGGERS:
        logging.getLogger(name).removeFilter(noise)
