"""The sink contract: what a delivery sink is given, what it may block on, what it raises.

A sink announces incidents to people or their tools (Alertmanager, a webhook, Slack,
e-mail). It is driven by one delivery worker (``delivery.DeliveryWorker``) that drains
the store's outbox for it, oldest first, one notification at a time.

``async deliver(notification) -> None``

- Returns only once the receiver has **accepted** the notification (HTTP 2xx, SMTP 250).
- **Blocks** (awaits) at most the sink's own timeout; it must never block the event loop:
  blocking libraries (smtplib) run in a thread (``asyncio.to_thread``).
- Raises ``RetriableError(message, retry_after)`` when trying again may succeed: connection
  refused or reset, timeout, HTTP 408/425/429/5xx, SMTP 4xx. The worker retries with
  exponential backoff and jitter, without limit: a sink that is down never loses an
  incident; its backlog (``consentinel_sink_backlog``) grows and is visible.
- Raises ``PermanentDeliveryError`` when it never will: HTTP 4xx other than the above,
  recipient refused, credentials rejected. The worker marks the notification failed, counts
  it (``outcome="failed"``), logs the message and moves on. Say what to fix.
- Any other exception is a bug; the worker treats it as retriable (a bug must not lose an
  incident) and logs its type.
- Is **idempotent for the receiver**: the worker may deliver a notification twice (a crash
  between delivery and bookkeeping), always with the same ``idempotency_key``
  (``<incident_id>:<revision>``) and the same content; carry the key where the receiver can
  see it.
- Never puts a raw address or a secret in what it sends or logs. Incidents carry only
  controller, campaign, rule ids and masked hints; secrets stay in the sink object.

``async close() -> None`` releases connections; called once, after the last delivery.

Optional: a sink that states current state rather than events (Alertmanager) also has
``refresh_seconds: float`` and ``async refresh(incidents)``, called by the router every
``refresh_seconds`` with every unresolved incident while the sink's backlog is empty.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from consentinel.streams.events.errors import ConsentinelError

from ..model import ChangeKind, Incident, IncidentStatus


class PermanentDeliveryError(ConsentinelError):
    """The receiver refused the notification and will refuse it again: do not retry."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One incident change to announce: the incident as it stood after the change."""

    kind: ChangeKind
    incident: Incident
    link: str  # the incident in the operator console (no token in it)
    created_at_ms: int  # when the change happened (identical on every redelivery)

    @property
    def idempotency_key(self) -> str:
        return f"{self.incident.incident_id}:{self.incident.revision}"


@runtime_checkable
class Sink(Protocol):
    name: str

    async def deliver(self, notification: Notification) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class RefreshingSink(Sink, Protocol):
    refresh_seconds: float

    async def refresh(self, incidents: Sequence[Incident], link_base: str) -> None: ...


def incident_link(console_url: str, incident_id: str) -> str:
    """Where a person opens the incident: ``<console>/incidents/<id>``."""
    return f"{console_url.rstrip('/')}/incidents/{incident_id}"


# -- words for people, shared by every sink -----------------------------------------------

_VERB = {
    ChangeKind.OPENED: "opened",
    ChangeKind.ALERT_ADDED: "growing",
    ChangeKind.ALERT_UPDATED: "updated",
    ChangeKind.ALERT_RESOLVED: "updated",
    ChangeKind.ACKNOWLEDGED: "acknowledged",
    ChangeKind.RESOLVED: "resolved",
    ChangeKind.REOPENED: "reopened",
}


def iso(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as Alertmanager and people read it."""
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
    ).replace("+00:00", "Z")


def scope(inc: Incident) -> str:
    return f"{inc.controller} / campaign {inc.campaign_id or '(none)'}"


def headline(kind: ChangeKind, inc: Incident) -> str:
    """``[CRITICAL] R2 opened: acme / campaign spring (3 alerts)``; an incident breaking
    several rules names them all: ``R1+R2+R17 opened: ...``."""
    n = inc.alert_count
    return (
        f"[{inc.severity.upper()}] {'+'.join(inc.rule_ids)} {_VERB.get(kind, kind.value)}: "
        f"{scope(inc)} "
        f"({n} alert{'s' if n != 1 else ''})"
    )


def last_step(inc: Incident) -> str:
    t = inc.transitions[-1] if inc.transitions else None
    if t is None:
        return inc.status.value
    note = f" ({t.note})" if t.note else ""
    return f"{t.status.value} by {t.who} at {iso(t.at_ms)}{note}"


def description(inc: Incident, link: str) -> list[str]:
    """The evidence summary, one fact a line (no address: hints and ids only)."""
    if len(inc.rules) > 1:
        rules = [f"{len(inc.rules)} rules broken, severity {inc.severity}:"] + [
            f"- {r.rule_id} {r.rule_source} ({r.severity}): {r.alerts} alert(s), "
            f"{r.resolved_alerts} corrected"
            for r in inc.rules
        ]
    else:
        rules = [f"Rule {inc.rule_id} {inc.rule_source}, severity {inc.severity}."]
    lines = [
        inc.summary,
        *rules,
        f"Controller {inc.controller}, campaign {inc.campaign_id or '(none)'}, "
        f"channel {inc.channel}, purpose used {inc.purpose_used or '(undeclared)'}.",
        f"{inc.alert_count} alert(s), {inc.resolved_alert_count} corrected; first "
        f"{iso(inc.opened_at_ms)}, last {iso(inc.last_seen_ms)}.",
        f"Status: {last_step(inc)}.",
    ]
    if inc.status is not IncidentStatus.RESOLVED:
        lines.append(f"Open the evidence, acknowledge or resolve: {link}")
    else:
        lines.append(f"Evidence: {link}")
    lines.append(f"Incident {inc.incident_id}, revision {inc.revision}.")
    return lines
