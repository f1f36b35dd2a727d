"""What the incident store hands out: incidents, their transitions, changes, statistics.

Frozen values; the store is the only writer. Times are epoch milliseconds UTC, like the
records of ``streams.events``. Every value encodes with ``codec.dumps`` and decodes with
``codec.from_obj``, so the console can serve them as JSON unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from consentinel.streams.events.errors import ConsentinelError


class IncidentStatus(enum.StrEnum):
    """open -> acknowledged -> resolved (open -> resolved is allowed too)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ChangeKind(enum.StrEnum):
    OPENED = "opened"  # a first alert opened the incident
    ALERT_ADDED = "alert_added"  # one more alert joined it
    ALERT_UPDATED = "alert_updated"  # a newer revision of an alert already in it
    ALERT_RESOLVED = "alert_resolved"  # a correction from the core resolved one alert
    ACKNOWLEDGED = "acknowledged"  # a person took it
    RESOLVED = "resolved"  # a person (or the last correction) closed it
    REOPENED = "reopened"  # an alert of a correction-resolved incident fired again
    REDACTED = "redacted"  # a data subject's evidence was erased on request (``erasure``)


#: Changes that send a notification to every sink (one page per incident, never one per
#: address): the rest only update the incident and the console's feed. ``ALERT_ADDED``
#: also notifies when the alert count reaches 10, 100, 1000... (see ``store``).
NOTIFYING: frozenset[ChangeKind] = frozenset(
    {ChangeKind.OPENED, ChangeKind.ACKNOWLEDGED, ChangeKind.RESOLVED, ChangeKind.REOPENED}
)

#: ``who`` of the transitions consentinel makes by itself.
BY_CORRECTION = "consentinel (correction)"
BY_REFIRE = "consentinel (alert fired again)"
BY_ERASURE = "consentinel (erasure)"


@dataclass(frozen=True, slots=True)
class Transition:
    """One lifecycle step: who moved the incident to ``status``, when, and why."""

    who: str
    status: IncidentStatus
    at_ms: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class RuleCount:
    """One rule an incident's alerts break: how many alerts (uses) and how many corrected."""

    rule_id: str
    rule_source: str
    severity: str  # info | warning | critical
    alerts: int
    resolved_alerts: int = 0


@dataclass(frozen=True, slots=True)
class Incident:
    """Alerts of one group (by default controller x campaign), within a time window.

    ``incident_key`` is the group (``grouping``); ``rules`` lists every rule broken with
    its counts, in the order they first fired; ``rule_id``, ``rule_source`` and
    ``summary`` are the first alert's, ``severity`` the highest of ``rules``.

    ``incident_id`` is deterministic: hash(incident_key, opened_at_ms, first alert id),
    where ``opened_at_ms`` is the first alert's detection time; replaying the alerts topic
    into an empty store gives the same ids. ``revision`` grows by one on every change; a
    notification's idempotency key is ``<incident_id>:<revision>``.
    """

    incident_id: str
    incident_key: str
    rule_id: str
    rule_source: str
    severity: str  # info | warning | critical (records.Severity values)
    controller: str
    campaign_id: str | None
    purpose_used: str | None
    channel: str
    summary: str  # the first alert's sentence (masked hint only)
    status: IncidentStatus
    opened_at_ms: int
    last_seen_ms: int
    alert_count: int
    resolved_alert_count: int
    sample_alert_ids: tuple[str, ...]
    transitions: tuple[Transition, ...]
    revision: int
    updated_at_ms: int = 0
    rules: tuple[RuleCount, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Every rule broken, in the reference's order (R2 before R13, then configuration
        rules), whatever order partitions delivered them in (the first alert's alone for an
        incident stored before rules were counted)."""
        return tuple(sorted((r.rule_id for r in self.rules), key=rule_order)) or (self.rule_id,)


def rule_order(rule_id: str) -> tuple[int, int, str]:
    """Sort key of rule ids: ``R<n>`` by number, then anything else (``CFG-…``) by name."""
    if rule_id[:1] == "R" and rule_id[1:].isdigit():
        return (0, int(rule_id[1:]), "")
    return (1, 0, rule_id)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the store's change feed; ``seq`` grows monotonically (console live feed)."""

    seq: int
    incident_id: str
    kind: ChangeKind
    revision: int  # the incident's revision after the change
    status: IncidentStatus  # the incident's status after the change
    at_ms: int
    alert_id: str | None = None
    who: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts for the console: incidents by status, by rule and by severity (each split by
    status), alerts stored, and notifications waiting per sink."""

    by_status: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    by_severity: dict[str, dict[str, int]] = field(default_factory=dict)
    alerts: int = 0
    backlog: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A notification waiting for one sink: the incident as it stood at ``revision``."""

    item_id: int
    sink: str
    kind: ChangeKind
    incident: Incident
    created_at_ms: int
    attempts: int
    next_attempt_ms: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.incident.incident_id}:{self.incident.revision}"


class IncidentError(ConsentinelError):
    """A request on an incident that cannot be done; the message says why, for a person."""


class UnknownIncident(IncidentError):
    def __init__(self, incident_id: str) -> None:
        self.incident_id = incident_id
        super().__init__(
            f"no incident {incident_id!r}: it may have been typed wrong; list the incidents "
            f"to find its id"
        )


class InvalidTransition(IncidentError):
    """The incident is not in a status the requested step can start from."""

    def __init__(self, incident: Incident, wanted: IncidentStatus) -> None:
        self.incident_id = incident.incident_id
        self.current = incident.status
        self.wanted = wanted
        last = incident.transitions[-1] if incident.transitions else None
        by = f" by {last.who}" if last is not None and last.status is incident.status else ""
        super().__init__(
            f"incident {incident.incident_id} is already {incident.status.value}{by}; "
            f"it cannot be set {wanted.value} "
            + (
                "(a resolved incident stays closed: a new alert opens a new incident)"
                if incident.status is IncidentStatus.RESOLVED
                else "(nothing to do)"
            )
        )
