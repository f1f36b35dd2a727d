# ruff: noqa: E501 - PromQL reads best on one line
"""Writes the Grafana dashboards of consentinel (``dashboards/grafana/dashboards/*.json``).

Run ``python dashboards/grafana/generate.py`` after editing a panel here; a test
(tests/dashboards/test_catalog.py) fails when the JSON files are not what this script
writes, and checks every expression against the metrics catalog.

Queries use Grafana's ``$__rate_interval`` and ``$__range`` and the dashboard variables
``$source``, ``$channel`` and ``$connector`` (connector instance). Connector instances are
the ``instance`` label of the ingest metrics: scrape the ingest server with
``honor_labels: true`` (see ``dashboards/prometheus/prometheus.yml``), or Prometheus renames
that label to ``exported_instance``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"


class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[dict[str, Any]]):
        self.uid, self.title, self.description = uid, title, description
        self.variables = variables
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": len(self.panels) + 1,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        w: int = 12,
        h: int = 8,
        unit: str = "short",
        description: str = "",
        stack: bool = False,
        thresholds: list[tuple[float | None, str]] | None = None,
        decimals: int | None = None,
        no_value: str | None = None,
    ) -> None:
        if self._x + w > 24:
            self._newline()
        defaults: dict[str, Any] = {"unit": unit}
        if decimals is not None:
            defaults["decimals"] = decimals
        if no_value is not None:
            defaults["noValue"] = no_value
        steps = thresholds or [(None, "green")]
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for v, c in steps],
        }
        if kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 20 if stack else 10,
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                "showPoints": "never",
            }
        if kind in ("stat", "gauge", "bargauge"):
            defaults["color"] = {"mode": "thresholds"}
        options: dict[str, Any] = {}
        if kind == "stat":
            options = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto",
            }
        elif kind == "bargauge":
            options = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "orientation": "horizontal",
                "displayMode": "gradient",
            }
        elif kind == "gauge":
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        elif kind == "timeseries":
            options = {
                "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        instant = kind in ("stat", "gauge", "bargauge")
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y},
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": options,
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                        "range": not instant,
                        "instant": instant,
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self._x += w
        self._row_h = max(self._row_h, h)

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["consentinel"],
            "timezone": "utc",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": [_DATASOURCE_VAR, *self.variables]},
            "annotations": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["consentinel"],
                    "asDropdown": True,
                    "title": "consentinel",
                }
            ],
            "panels": self.panels,
        }


_DATASOURCE_VAR = {
    "name": "datasource",
    "label": "Prometheus",
    "type": "datasource",
    "query": "prometheus",
    "current": {},
    "hide": 0,
}


def _query_var(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
        "hide": 0,
    }


SOURCE = _query_var("source", "Source", "label_values(consentinel_events_consumed_total, source)")
CHANNEL = _query_var(
    "channel", "Channel", "label_values(consentinel_events_consumed_total, channel)"
)
CONNECTOR = _query_var(
    "connector", "Connector instance", "label_values(consentinel_ingest_requests_total, instance)"
)

GREEN_RED = [(None, "green"), (1, "red")]


def overview() -> Board:
    b = Board(
        "consentinel-overview",
        "consentinel / Overview",
        "Is anyone using addresses outside what their owners agreed to, and is the monitor "
        "itself healthy? Start here.",
        [],
    )
    b.row("Right now")
    b.panel(
        "stat",
        "Open incidents",
        [("sum(consentinel_incidents_open)", "open")],
        no_value="0",
        w=4,
        h=5,
        thresholds=GREEN_RED,
        description="Incidents not yet resolved (acknowledged ones included). Work them in the "
        "console.",
    )
    b.panel(
        "stat",
        "Violations (time range)",
        [('sum(increase(consentinel_alerts_total{severity!="info"}[$__range]))', "")],
        no_value="0",
        w=4,
        h=5,
        thresholds=GREEN_RED,
        decimals=0,
    )
    b.panel(
        "stat",
        "Uses with consent",
        [
            (
                'sum(rate(consentinel_verdicts_total{decision="allowed"}[$__range]))'
                ' / sum(rate(consentinel_verdicts_total{decision!="pending"}[$__range]))',
                "",
            )
        ],
        w=4,
        h=5,
        unit="percentunit",
        thresholds=[(None, "red"), (0.95, "orange"), (0.99, "green")],
        description="Share of judged uses (not pending) that had the owner's consent for this "
        "purpose, controller and channel.",
        no_value="no uses judged yet",
    )
    b.panel(
        "stat",
        "Waiting for consent",
        [("sum(consentinel_pending_usages)", "")],
        w=4,
        h=5,
        thresholds=[(None, "green"), (10000, "orange")],
        description="Uses held pending during the grace period, until their consent arrives.",
    )
    b.panel(
        "stat",
        "Grace ticks skipped (15 min)",
        [("sum(increase(consentinel_ticks_skipped_total[15m]))", "")],
        w=4,
        h=5,
        thresholds=[(None, "green"), (30, "red")],
        description="Grace-period ticks a worker could not send. While they are skipped no held "
        "use is decided: the worker's log says why (a WARNING once a minute).",
    )
    b.panel(
        "stat",
        "Worst consumer lag",
        [("max(consentinel_consumer_lag)", "")],
        w=4,
        h=5,
        thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
    )
    b.panel(
        "stat",
        "Dead letters (time range)",
        [("sum(increase(consentinel_deadletters_total[$__range]))", "")],
        no_value="0",
        w=4,
        h=5,
        thresholds=[(None, "green"), (1, "orange")],
        decimals=0,
    )
    b.row("Violations")
    b.panel(
        "timeseries",
        "Violations per controller",
        [
            (
                f"sum by (controller) (rate(consentinel_alerts_by_controller_total"
                f'{{severity!="info"}}[{RI}])) * 60',
                "{{controller}}",
            )
        ],
        unit="short",
        stack=True,
        description="Violations and warnings a minute, per controller (who used the addresses).",
    )
    b.panel(
        "timeseries",
        "Alerts per rule and severity",
        [
            (
                "sum by (rule, severity) (rate(consentinel_alerts_total[" + RI + "])) * 60",
                "{{rule}} {{severity}}",
            )
        ],
        unit="short",
        stack=True,
        description="Alerts a minute by rule (R1, R2, …) and severity.",
    )
    b.panel(
        "bargauge",
        "Open incidents per rule (or rules, R1+R2+R17, when one incident breaks several)",
        [("sum by (rule) (consentinel_incidents_open)", "{{rule}}")],
        w=12,
        thresholds=GREEN_RED,
    )
    b.panel(
        "timeseries",
        "Events taken in per topic",
        [("sum by (topic) (rate(consentinel_events_consumed_total[" + RI + "]))", "{{topic}}")],
        unit="ops",
    )
    return b


def flows() -> Board:
    b = Board(
        "consentinel-flows",
        "consentinel / Flows per source and channel",
        "What each connector instance takes in, per channel: uses and consents.",
        [SOURCE, CHANNEL, CONNECTOR],
    )
    sel = 'source=~"$source", channel=~"$channel"'
    b.row("Consumed by the workers")
    b.panel(
        "timeseries",
        "Uses per source and channel",
        [
            (
                f'sum by (source, channel) (rate(consentinel_events_consumed_total{{topic=~".*usage.*", {sel}}}[{RI}]))',
                "{{source}} · {{channel}}",
            )
        ],
        unit="ops",
        stack=True,
    )
    b.panel(
        "timeseries",
        "Consents per source and channel",
        [
            (
                f'sum by (source, channel) (rate(consentinel_events_consumed_total{{topic=~".*consent.*", {sel}}}[{RI}]))',
                "{{source}} · {{channel}}",
            )
        ],
        unit="ops",
        stack=True,
    )
    b.panel(
        "bargauge",
        "Events per channel (time range)",
        [
            (
                f"sum by (channel) (increase(consentinel_events_consumed_total{{{sel}}}[$__range]))",
                "{{channel}}",
            )
        ],
        w=8,
        decimals=0,
    )
    b.panel(
        "bargauge",
        "Events per source (time range)",
        [
            (
                f"sum by (source) (increase(consentinel_events_consumed_total{{{sel}}}[$__range]))",
                "{{source}}",
            )
        ],
        w=8,
        decimals=0,
    )
    b.panel(
        "bargauge",
        "Events per topic (time range)",
        [
            (
                f"sum by (topic) (increase(consentinel_events_consumed_total{{{sel}}}[$__range]))",
                "{{topic}}",
            )
        ],
        w=8,
        decimals=0,
    )
    b.row("Taken in by the connectors")
    b.panel(
        "timeseries",
        "Webhook requests per connector instance and outcome",
        [
            (
                f'sum by (instance, outcome) (rate(consentinel_ingest_requests_total{{instance=~"$connector"}}[{RI}]))',
                "{{instance}} {{outcome}}",
            )
        ],
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Records produced per connector instance",
        [
            (
                f'sum by (instance, record) (rate(consentinel_ingest_events_total{{instance=~"$connector"}}[{RI}]))',
                "{{instance}} {{record}}",
            )
        ],
        unit="ops",
    )
    return b


def consent() -> Board:
    b = Board(
        "consentinel-consent",
        "consentinel / Consent coverage",
        "Verdicts by decision, the share of uses that had consent, and what the ledger holds.",
        [],
    )
    b.row("Coverage")
    b.panel(
        "timeseries",
        "Share of uses with consent",
        [
            (
                f'sum(rate(consentinel_verdicts_total{{decision="allowed"}}[{RI}]))'
                f' / sum(rate(consentinel_verdicts_total{{decision!="pending"}}[{RI}]))',
                "with consent",
            )
        ],
        unit="percentunit",
        description="Allowed verdicts among decided ones (pending excluded).",
    )
    b.panel(
        "timeseries",
        "Verdicts by decision",
        [
            (
                f"sum by (decision) (rate(consentinel_verdicts_total[{RI}]))",
                "{{decision}}",
            )
        ],
        unit="ops",
        stack=True,
    )
    b.panel(
        "bargauge",
        "Verdicts by decision (time range)",
        [
            (
                "sum by (decision) (increase(consentinel_verdicts_total[$__range]))",
                "{{decision}}",
            )
        ],
        w=8,
        decimals=0,
    )
    b.panel(
        "bargauge",
        "Findings by rule (time range)",
        [
            (
                'sum by (rule) (increase(consentinel_verdicts_total{decision=~"violation|warning"}[$__range]))',
                "{{rule}}",
            )
        ],
        w=8,
        decimals=0,
    )
    b.panel(
        "timeseries",
        "Corrections (alerts resolved by late consent)",
        [("sum by (rule) (rate(consentinel_corrections_total[" + RI + "])) * 60", "{{rule}}")],
        w=8,
    )
    b.row("The ledger")
    b.panel(
        "stat",
        "Subjects with a consent history",
        [("sum(consentinel_ledger_subjects)", "")],
        w=6,
        h=5,
    )
    b.panel(
        "stat",
        "Consent versions held",
        [("sum(consentinel_ledger_versions)", "")],
        w=6,
        h=5,
    )
    b.panel(
        "stat",
        "Purpose declarations in force",
        [("max(consentinel_registry_declarations)", "")],
        w=6,
        h=5,
        thresholds=[(None, "red"), (1, "green")],
        description="Declarations in the purpose registry; 0 means every campaign is undeclared.",
    )
    b.panel(
        "stat",
        "Waiting for consent",
        [("sum(consentinel_pending_usages)", "")],
        w=6,
        h=5,
    )
    return b


def pipeline() -> Board:
    b = Board(
        "consentinel-pipeline",
        "consentinel / Pipeline health",
        "Lag, latency, dead letters, authentication failures, pending uses and sink backlog.",
        [CONNECTOR],
    )
    b.row("Processes")
    b.panel(
        "stat",
        "Processes up",
        [('up{job=~"consentinel.*"}', "{{job}} {{instance}}")],
        w=24,
        h=4,
        thresholds=[(None, "red"), (1, "green")],
    )
    b.row("Workers")
    b.panel(
        "timeseries",
        "Consumer lag per topic",
        [("max by (topic) (consentinel_consumer_lag)", "{{topic}}")],
    )
    b.panel(
        "timeseries",
        "Event to verdict (receipt to decision)",
        [
            (
                f"histogram_quantile({q}, sum by (le) (rate(consentinel_event_to_verdict_seconds_bucket[{RI}])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        unit="s",
        description="Includes the grace period of uses held pending.",
    )
    b.panel(
        "timeseries",
        "Waiting for consent (pending)",
        [("sum(consentinel_pending_usages)", "pending")],
        w=8,
    )
    b.panel(
        "timeseries",
        "Records the workers could not decode",
        [
            (
                f"sum by (topic, reason) (rate(consentinel_worker_deadletters_total[{RI}])) * 60",
                "{{topic}} {{reason}}",
            )
        ],
        w=8,
    )
    b.panel(
        "timeseries",
        "Records read back (skipped by Faust, repaired)",
        [
            (
                f"sum by (topic) (rate(consentinel_records_read_back_total[{RI}])) * 60",
                "{{topic}}",
            )
        ],
        w=8,
        description="After a restart or rebalance Faust may drop records it had fetched; "
        "the worker reads them back from the broker and judges them. Nothing is lost.",
    )
    b.panel(
        "timeseries",
        "Changelog records not acknowledged",
        [(f"sum(increase(consentinel_changelog_sends_failed_total[{RI}]))", "failed")],
        w=8,
        description="State written by a worker whose changelog record Kafka refused: its "
        "batch is not committed and is judged again after a restart. Restart the worker "
        "once the broker is healthy.",
    )
    b.panel(
        "timeseries",
        "State restored from changelogs",
        [
            (
                f"sum by (instance, table) (rate(consentinel_changelog_records_restored_total[{RI}]))",
                "{{instance}} {{table}}",
            )
        ],
        unit="ops",
        w=8,
        description="Changelog records a worker reads back into its state store when it "
        "takes partitions over (a start without its state, a worker added or lost). While "
        "a worker restores, the partitions it restores are not judged; about 60,000 "
        "records a second on 2 cores.",
    )
    b.panel(
        "timeseries",
        "Consent ledger size",
        [
            ("sum(consentinel_ledger_subjects)", "subjects"),
            ("sum(consentinel_ledger_versions)", "versions"),
        ],
        w=8,
    )
    b.row("Ingest")
    b.panel(
        "timeseries",
        "Ingest latency (receipt to Kafka acknowledgement)",
        [
            (
                f'histogram_quantile({q}, sum by (le, instance) (rate(consentinel_ingest_latency_seconds_bucket{{instance=~"$connector"}}[{RI}])))',
                f"{{{{instance}}}} p{int(q * 100)}",
            )
            for q in (0.5, 0.99)
        ],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Authentication failures per connector instance and reason",
        [
            (
                f'sum by (instance, reason) (rate(consentinel_ingest_auth_failures_total{{instance=~"$connector"}}[{RI}])) * 60',
                "{{instance}} {{reason}}",
            )
        ],
        description="Refused webhook calls a minute: a rotated secret, or someone probing.",
    )
    b.panel(
        "timeseries",
        "Dead letters per source and reason",
        [
            (
                f"sum by (source, reason) (rate(consentinel_deadletters_total[{RI}])) * 60",
                "{{source}} {{reason}}",
            )
        ],
    )
    b.panel(
        "timeseries",
        "Webhook outcomes",
        [
            (
                f'sum by (outcome) (rate(consentinel_ingest_requests_total{{instance=~"$connector"}}[{RI}]))',
                "{{outcome}}",
            )
        ],
        unit="reqps",
    )
    b.panel(
        "timeseries",
        "Ingest spool: records waiting for Kafka",
        [("max by (instance) (consentinel_ingest_spool_events)", "{{instance}}")],
        w=8,
        description="Answered 2xx and kept on the ingest server's disk while Kafka was away or slow.",
    )
    b.panel(
        "timeseries",
        "Ingest spool: bytes and age of the oldest entry",
        [
            ("max by (instance) (consentinel_ingest_spool_bytes)", "{{instance}} bytes"),
            (
                "max by (instance) (consentinel_ingest_spool_oldest_age_seconds)",
                "{{instance}} oldest (s)",
            ),
        ],
        w=8,
        description="Past its bounds (1 GiB, 72 h by default) the server answers 503/429.",
    )
    b.panel(
        "timeseries",
        "Ingest spool: spooled and forwarded",
        [
            (
                f"sum by (instance) (rate(consentinel_ingest_spool_appended_total[{RI}])) * 60",
                "{{instance}} spooled",
            ),
            (
                f"sum by (instance) (rate(consentinel_ingest_spool_forwarded_total[{RI}])) * 60",
                "{{instance}} forwarded",
            ),
        ],
        w=8,
        description="Records a minute.",
    )
    b.panel(
        "timeseries",
        "Batch items refused one by one",
        [
            (
                f'sum by (instance, reason) (rate(consentinel_ingest_items_rejected_total{{instance=~"$connector"}}[{RI}])) * 60',
                "{{instance}} {{reason}}",
            )
        ],
        description="Items dead-lettered a minute while the rest of their batch was accepted.",
    )
    b.panel(
        "timeseries",
        "Request body bytes held at once",
        [("max by (instance) (consentinel_ingest_body_bytes_in_flight)", "{{instance}}")],
        unit="bytes",
    )
    b.row("Alert delivery")
    b.panel(
        "timeseries",
        "Sink backlog",
        [("max by (sink) (consentinel_sink_backlog)", "{{sink}}")],
        w=8,
    )
    b.panel(
        "timeseries",
        "Notification attempts per sink and outcome",
        [
            (
                f"sum by (sink, outcome) (rate(consentinel_sink_deliveries_total[{RI}])) * 60",
                "{{sink}} {{outcome}}",
            )
        ],
        w=8,
    )
    b.panel(
        "timeseries",
        "Incident transitions",
        [
            (
                f"sum by (status) (rate(consentinel_incident_transitions_total[{RI}])) * 60",
                "{{status}}",
            )
        ],
        w=8,
    )
    b.row("Lead certificates (R23)")
    b.panel(
        "timeseries",
        "Certificate results and retries",
        [
            (
                f"sum by (status) (rate(consentinel_certificate_results_total[{RI}])) * 60",
                "{{status}}",
            ),
            (f"sum(rate(consentinel_certificate_retries_total[{RI}])) * 60", "retries"),
        ],
        description="Claimed lead certificates verified a minute, by result; gave_up: no "
        "answer after the last retry (the uses' holds raise R23).",
    )
    return b


BOARDS = {
    "consentinel-overview.json": overview,
    "consentinel-flows.json": flows,
    "consentinel-consent.json": consent,
    "consentinel-pipeline.json": pipeline,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as written to ``OUT``."""
    return {
        name: json.dumps(make().json(), indent=2, ensure_ascii=False) + "\n"
        for name, make in BOARDS.items()
    }


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
