"""Compare what a checker sent (verdicts, alerts) with the oracle's final verdicts.

The checker's final word on a use, by rule: the alert of that (use, rule) in its highest
revision, firing or resolved ("alerts minus corrections"). It must equal the oracle's rule
ids for every use. Every use must have a verdict; no non-use may have one. Verdicts are
also compared: the last verdict sent for a use must carry the oracle's rule ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consentinel.streams.events.records import Alert, AlertStatus, UsageEvent, Verdict


@dataclass
class Report:
    """Differences between a checker's outputs and the oracle, by kind."""

    uses: int = 0
    violations_expected: int = 0  # (use, rule) pairs the oracle finds
    missing_verdict: list[str] = field(default_factory=list)
    verdict_for_non_use: list[str] = field(default_factory=list)
    missing_alert: list[tuple[str, str]] = field(default_factory=list)  # oracle yes, checker no
    extra_alert: list[tuple[str, str]] = field(default_factory=list)  # checker yes, oracle no
    wrong_last_verdict: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    repeated_verdicts: int = 0  # uses with more than one first (non-correction) verdict

    @property
    def ok(self) -> bool:
        return not (
            self.missing_verdict
            or self.verdict_for_non_use
            or self.missing_alert
            or self.extra_alert
            or self.wrong_last_verdict
        )

    def text(
        self, usages: dict[str, UsageEvent] | None = None, late: set[str] | None = None
    ) -> str:
        def by_rule(pairs: list[tuple[str, str]]) -> str:
            return ", ".join(f"{r}: {n}" for r, n in sorted(Counter(r for _, r in pairs).items()))

        lines = [
            f"{self.uses} uses, {self.violations_expected} (use, rule) findings expected by the "
            f"oracle; {self.repeated_verdicts} uses got more than one first verdict",
            f"missing verdicts: {len(self.missing_verdict)} {self.missing_verdict[:5]}",
            f"verdicts for non-uses: {len(self.verdict_for_non_use)} "
            f"{self.verdict_for_non_use[:5]}",
            f"alerts missing (oracle finds, checker does not): {len(self.missing_alert)} "
            f"[{by_rule(self.missing_alert)}] e.g. {self.missing_alert[:5]}",
            f"alerts extra (checker finds, oracle does not): {len(self.extra_alert)} "
            f"[{by_rule(self.extra_alert)}] e.g. {self.extra_alert[:5]}",
            f"last verdict differs: {len(self.wrong_last_verdict)} "
            f"e.g. {self.wrong_last_verdict[:3]}",
        ]
        return "\n".join(lines)


def final_alerts(alerts: Iterable[Alert]) -> set[tuple[str, str]]:
    """(use, rule) pairs whose alert, in its highest revision, is firing."""
    latest: dict[tuple[str, str], Alert] = {}
    for a in alerts:
        key = (a.usage_event_id, a.rule_id)
        seen = latest.get(key)
        if seen is None or a.revision >= seen.revision:
            latest[key] = a
    return {k for k, a in latest.items() if a.status is AlertStatus.FIRING}


def compare(
    expected: dict[str, frozenset[str]],
    usages: Iterable[UsageEvent],
    verdicts: Iterable[Verdict],
    alerts: Iterable[Alert],
) -> Report:
    """``expected``: usage event id -> rule ids, for every use (the oracle's answer)."""
    report = Report(uses=len(expected))
    report.violations_expected = sum(len(r) for r in expected.values())
    known = {u.event_id for u in usages}
    last: dict[str, Verdict] = {}
    firsts: Counter[str] = Counter()
    for v in verdicts:
        last[v.usage_event_id] = v
        if not v.correction:
            firsts[v.usage_event_id] += 1
    report.repeated_verdicts = sum(1 for n in firsts.values() if n > 1)
    report.missing_verdict = sorted(set(expected) - set(last))
    report.verdict_for_non_use = sorted(u for u in last if u in known and u not in expected)
    got = final_alerts(alerts)
    want = {(u, r) for u, rules in expected.items() for r in rules}
    report.missing_alert = sorted(want - got)
    report.extra_alert = sorted(got - want)
    for use, rules in sorted(expected.items()):
        v = last.get(use)
        if v is not None and sorted(set(v.rule_ids)) != sorted(rules):
            report.wrong_last_verdict.append((use, sorted(set(v.rule_ids)), sorted(rules)))
    return report


def explain(report: Report, history: Any, verdicts: Iterable[Verdict]) -> str:
    """Sort the differences by cause: a late consent that arrived after the use had been
    allowed (today's checker re-judges alerted uses only, #8 item 1), by its action, and
    the rest (unexplained: a real disagreement to look at)."""
    first: dict[str, Verdict] = {}
    for v in verdicts:
        first.setdefault(v.usage_event_id, v)
    arrived: dict[str, int] = {}
    late_by_subject: dict[str, list[tuple[int, str]]] = {}
    for a in history.arrivals:
        arrived.setdefault(a.event.event_id, a.at_ms)
        if a.event.event_id in history.late_ids:
            late_by_subject.setdefault(a.event.subject_key, []).append(
                (a.at_ms, str(a.event.action))
            )
    uses = {u.event_id: u for u in history.usages}
    causes: Counter[str] = Counter()
    unexplained: list[str] = []
    differing = {u for u, _ in report.missing_alert + report.extra_alert}
    differing |= {u for u, _, _ in report.wrong_last_verdict}
    for use in sorted(differing):
        u, v = uses[use], first.get(use)
        lates = [
            action
            for at, action in late_by_subject.get(u.subject_key, [])
            if at > arrived[use] and v is not None and not v.rule_ids
        ]
        if lates:
            causes[f"late {'/'.join(sorted(set(lates)))} after an allowed verdict"] += 1
        else:
            unexplained.append(use)
    parts = [f"{n} uses: {cause}" for cause, n in sorted(causes.items())]
    parts.append(f"{len(unexplained)} unexplained {unexplained[:10]}")
    return "; ".join(parts)


def trace(uses: Iterable[str], verdicts: Iterable[Verdict], alerts: Iterable[Alert]) -> str:
    """What the checker sent for each of ``uses``, in the order it was read: each verdict
    (decision, rules, correction, decided at, consent version) and each alert (rule, status,
    revision, detected at, reason) — the first thing to read when a use disagrees."""
    wanted = set(uses)
    lines: dict[str, list[str]] = {u: [] for u in sorted(wanted)}
    for v in verdicts:
        if v.usage_event_id in wanted:
            lines[v.usage_event_id].append(
                f"  verdict {v.decision} {sorted(v.rule_ids)} correction={v.correction} "
                f"decided_at={v.decided_at_ms} consent={v.consent_version}"
            )
    for a in alerts:
        if a.usage_event_id in wanted:
            lines[a.usage_event_id].append(
                f"  alert {a.rule_id} {a.status} revision={a.revision} "
                f"detected_at={a.detected_at_ms} reason={a.correction_reason}"
            )
    return "\n".join(f"{u}:\n" + "\n".join(out) for u, out in lines.items())
