"""The error tree, grouped by what the runtime does with each kind.

- ``InvalidInput``: the input itself is wrong. Connectors answer 4xx and send the raw
  payload (encrypted) to the dead-letter topic with ``code``; processors dead-letter it.
  Retrying cannot help.
- ``RetriableError``: a dependency is down or slow (broker, sink). Retried with backoff,
  counted in metrics. The ingest server keeps a webhook's verified events in its durable
  spool (fsync'd, sealed) and answers 2xx; only when the spool is full is it answered the
  connector's ``busy_status`` (503, or 429) with Retry-After.
- ``FatalConfigError``: the process is misconfigured. It refuses to start and lists
  every problem with what to do about it.

Messages are written for the person on call: what was wrong, what was expected, what to
do. They never contain a raw address, a secret or a payload.
"""

from __future__ import annotations

from collections.abc import Iterable


class ConsentinelError(Exception):
    """Root of every error consentinel raises on purpose."""


class InvalidInput(ConsentinelError):
    """The input cannot be taken in as it is; it goes to the dead-letter topic.

    ``code`` is short and machine-readable (a metric label, bounded); the message is the
    human sentence.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ValidationError(InvalidInput):
    """A record failed the event contract: names the field, the type found and expected."""

    def __init__(self, record: str, field: str, found: str, expected: str) -> None:
        self.record = record
        self.field = field
        self.found = found
        self.expected = expected
        super().__init__(
            "schema",
            f"{record}.{field}: expected {expected}, got {found}",
        )


class RetriableError(ConsentinelError):
    """A transient fault; try again later. ``retry_after`` is a hint in seconds."""

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalConfigError(ConsentinelError):
    """The configuration is wrong: refuse to start, list every problem at once."""

    def __init__(self, problems: Iterable[str], context: str = "configuration") -> None:
        self.problems = list(problems)
        self.context = context
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{context} is invalid ({len(self.problems)} problem(s)):\n{lines}")
