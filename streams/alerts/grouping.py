"""How alerts become incidents: one alert per (use, rule), one incident per matter.

The decision (issue #8 "one use, three alerts", issue #13 item 6), kept here so nobody has
to rediscover it:

- **Alerts stay one per (use, rule)**, as DESIGN.md says: ``alert_id = hash(usage event
  id, rule id)``. Ids stay deterministic; a late consent can correct one rule of a use and
  not another (a late partner consent clears R13 but not R5); Alertmanager routes by rule.
  Merging the rules of a use into one alert would lose all three.
- **Incidents group by what an operator handles as one matter**: by default one incident
  per controller x campaign within the window (``window_hours``, 24 h from the last alert),
  listing every rule broken with per-rule counts (``Incident.rules``: alerts and corrected
  alerts per rule). A political send to rented readers that breaks R1, R2 and R17 on 40 uses
  is ONE incident with three rules of 40 alerts each, not three incidents.
- **Configurable**: ``incidents: {group_by: [controller, campaign]}`` in the router's file.
  The fields are ``controller``, ``campaign``, ``rule``, ``channel`` and ``purpose``;
  ``[controller, campaign, rule]`` gives back one incident per rule (the grouping before
  this change). ``incident_key`` is the group's values joined by ``|`` (``-`` for none).
- **Alertmanager keeps the rule label**: the sink sends one Alertmanager alert per
  incident x rule (labels ``rule``, ``alertname=consentinel_<rule>``, ``incident_id``,
  ``rules`` = every rule of the incident, comma-separated), so a route on ``rule`` still
  matches exactly, and each rule's alert resolves when every alert of that rule is
  corrected. Group by ``incident_id`` in Alertmanager for one page per incident.
- An incident is resolved by corrections when every one of its alerts is corrected.
- Counts: ``consentinel_incidents_open`` counts each open incident once, its ``rule``
  label being every rule it breaks (``R1+R2+R17``), so the gauge sums to the open
  incidents; the console's statistics count an incident under each rule it breaks.

Pure functions of values; nothing here blocks. ``parse_group_by`` raises ``IncidentError``
naming the unknown field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from consentinel.streams.events.records import Alert

from .model import IncidentError, RuleCount

GROUP_FIELDS: tuple[str, ...] = ("controller", "campaign", "rule", "channel", "purpose")
DEFAULT_GROUP_BY: tuple[str, ...] = ("controller", "campaign")
_SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


def incident_id_for(incident_key: str, opened_at_ms: int, first_alert_id: str) -> str:
    """Deterministic: the same alerts replayed into an empty store give the same ids."""
    text = "\x1f".join(("incident", incident_key, str(opened_at_ms), first_alert_id))
    return "in-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def parse_group_by(fields: Iterable[str]) -> tuple[str, ...]:
    """The grouping fields, in order, validated; ``IncidentError`` names what is wrong."""
    out = tuple(dict.fromkeys(f.strip() for f in fields))
    if not out:
        raise IncidentError(
            f"incidents.group_by is empty: give one or more of {', '.join(GROUP_FIELDS)}"
        )
    unknown = [f for f in out if f not in GROUP_FIELDS]
    if unknown:
        raise IncidentError(
            f"incidents.group_by: unknown field(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(GROUP_FIELDS)} (default: controller, campaign)"
        )
    return out


def group_key(alert: Alert, group_by: Sequence[str]) -> str:
    """The incident key of ``alert`` under ``group_by`` (values joined by ``|``)."""
    values = {
        "controller": alert.controller,
        "campaign": alert.campaign_id,
        "rule": alert.rule_id,
        "channel": alert.channel.value,
        "purpose": alert.purpose_used,
    }
    return "|".join(values[f] or "-" for f in group_by)


def with_alert(rules: Sequence[RuleCount], alert: Alert) -> tuple[RuleCount, ...]:
    """``rules`` counting one more alert of ``alert.rule_id`` (a new rule goes last)."""
    out = list(rules)
    for i, r in enumerate(out):
        if r.rule_id == alert.rule_id:
            out[i] = RuleCount(
                r.rule_id, r.rule_source, r.severity, r.alerts + 1, r.resolved_alerts
            )
            return tuple(out)
    out.append(RuleCount(alert.rule_id, alert.rule_source, alert.severity.value, 1, 0))
    return tuple(out)


def with_resolved(rules: Sequence[RuleCount], rule_id: str, delta: int) -> tuple[RuleCount, ...]:
    """``rules`` with ``delta`` (+1 corrected, -1 fired again) on ``rule_id``'s resolved count."""
    return tuple(
        RuleCount(
            r.rule_id,
            r.rule_source,
            r.severity,
            r.alerts,
            min(r.alerts, max(0, r.resolved_alerts + delta)),
        )
        if r.rule_id == rule_id
        else r
        for r in rules
    )


def worst(severities: Iterable[str]) -> str:
    """The highest severity of ``severities`` (info < warning < critical)."""
    return max(severities, key=lambda s: _SEVERITY_ORDER.get(s, 0))
