"""Alertmanager (API v2): ``POST <url>/api/v2/alerts`` with one alert per incident x rule.

An incident lists every rule its alerts break (``grouping``); Alertmanager routes by rule,
so each rule of the incident is its own Alertmanager alert. Labels (what Alertmanager
routes, groups and silences on): ``alertname=consentinel_<rule>``, ``rule``, ``severity``
(that rule's), ``controller``, ``campaign`` (``-`` when none), ``incident_id``, plus the
sink's static ``labels``. Group by ``incident_id`` in Alertmanager's route for one page
per incident. Annotations: ``summary``, ``description``, ``incident_url`` (the console),
``incident_id``, ``rule_source``, ``rules`` (every rule of the incident), ``status``,
``alert_count`` (that rule's), ``idempotency_key``. ``startsAt`` is when the incident
opened. A rule whose every alert was corrected ends while the incident's other rules fire.

Alertmanager forgets a firing alert that is not re-sent before its ``endsAt`` (Prometheus
re-sends on every evaluation). So a firing incident is sent with ``endsAt = now + ttl``
and the router re-sends every unresolved incident every ``refresh_seconds`` (``refresh``);
a resolved incident is sent once with ``endsAt`` = when it was resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from consentinel.streams.events import codec
from consentinel.streams.events.clock import now_ms

from ..model import ChangeKind, Incident, IncidentStatus, RuleCount
from .base import Notification, description, headline, incident_link, iso
from .http import HttpPoster

if TYPE_CHECKING:
    from ..config import Options


class AlertmanagerSink:
    def __init__(
        self,
        name: str,
        url: str,
        refresh_seconds: float = 60.0,
        ttl_seconds: float | None = None,
        timeout_s: float = 10.0,
        labels: dict[str, str] | None = None,
        clock_ms: Any = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.refresh_seconds = refresh_seconds
        self.ttl_ms = int(1000 * (ttl_seconds or max(4 * refresh_seconds, 300.0)))
        self.labels = dict(labels or {})
        self._clock = clock_ms or now_ms
        self._http = HttpPoster(name, f"{self.url}/api/v2/alerts", timeout_s)

    def payload(
        self, kind: ChangeKind, inc: Incident, link: str, rule: RuleCount | None = None
    ) -> dict[str, Any]:
        """The Alertmanager alert of one rule of the incident as it stands (``rule``: the
        incident's first rule when not given)."""
        if rule is None:
            rule = inc.rules[0] if inc.rules else _only_rule(inc)
        labels = {
            **self.labels,
            "alertname": f"consentinel_{rule.rule_id}",
            "rule": rule.rule_id,
            "severity": rule.severity,
            "controller": inc.controller,
            "campaign": inc.campaign_id or "-",
            "incident_id": inc.incident_id,
        }
        if inc.status is IncidentStatus.RESOLVED:
            ends = inc.transitions[-1].at_ms if inc.transitions else self._clock()
            ends = max(ends, inc.opened_at_ms + 1)
        elif rule.alerts and rule.resolved_alerts >= rule.alerts:
            ends = max(self._clock(), inc.opened_at_ms + 1)  # this rule was corrected
        else:
            ends = self._clock() + self.ttl_ms
        return {
            "labels": labels,
            "annotations": {
                "summary": headline(kind, inc),
                "description": "\n".join(description(inc, link)),
                "incident_url": link,
                "incident_id": inc.incident_id,
                "rule_source": rule.rule_source,
                "rules": ", ".join(inc.rule_ids),
                "status": inc.status.value,
                "alert_count": str(rule.alerts),
                "idempotency_key": f"{inc.incident_id}:{inc.revision}",
            },
            "startsAt": iso(inc.opened_at_ms),
            "endsAt": iso(ends),
            "generatorURL": link,
        }

    def payloads(self, kind: ChangeKind, inc: Incident, link: str) -> list[dict[str, Any]]:
        """One Alertmanager alert per rule of the incident."""
        rules = inc.rules or (_only_rule(inc),)
        return [self.payload(kind, inc, link, r) for r in rules]

    async def deliver(self, notification: Notification) -> None:
        body = self.payloads(notification.kind, notification.incident, notification.link)
        await self._http.post(codec.dumps(body), {"Content-Type": "application/json"})

    async def refresh(self, incidents: Sequence[Incident], link_base: str) -> None:
        """Re-send every unresolved incident (keeps them firing in Alertmanager)."""
        body = [
            alert
            for inc in incidents
            if inc.status is not IncidentStatus.RESOLVED
            for alert in self.payloads(
                ChangeKind.OPENED, inc, incident_link(link_base, inc.incident_id)
            )
        ]
        if body:
            await self._http.post(codec.dumps(body), {"Content-Type": "application/json"})

    async def close(self) -> None:
        await self._http.close()


def from_options(name: str, opts: Options) -> AlertmanagerSink:
    refresh = opts.number("refresh_seconds", 60.0, 1.0, 3600.0)
    ttl = opts.number("ttl_seconds", max(4 * refresh, 300.0), 10.0, 86_400.0)
    return AlertmanagerSink(
        name,
        opts.url("url"),
        refresh_seconds=refresh,
        ttl_seconds=ttl,
        timeout_s=opts.number("timeout_seconds", 10.0, 0.5, 300.0),
        labels=opts.mapping("labels"),
    )


def _only_rule(inc: Incident) -> RuleCount:
    """The one rule of an incident that lists none (stored before rules were counted)."""
    return RuleCount(
        inc.rule_id, inc.rule_source, inc.severity, inc.alert_count, inc.resolved_alert_count
    )
