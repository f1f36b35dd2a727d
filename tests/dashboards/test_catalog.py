"""Every metric and label a dashboard panel or a Prometheus rule uses is in the one catalog
(streams/events/metrics.py): a renamed metric or label cannot leave a panel empty."""

from __future__ import annotations

import re
from pathlib import Path

import generate  # dashboards/grafana is on pytest's pythonpath
import promql  # tests/dashboards too
import pytest
from consentinel.streams.events.metrics import CATALOG
from consentinel.streams.events.records import Decision, Severity

_HERE = Path(__file__).parent


#: Labels Prometheus itself puts on every scraped series (the scrape target's).
TARGET_LABELS = {"job", "instance"}
#: Series Prometheus makes itself; allowed without a catalog entry.
BUILTIN = {"up": ("job", "instance")}
#: Label values that must be ones the code emits.
KNOWN_VALUES = {"decision": {d.value for d in Decision}, "severity": {s.value for s in Severity}}

RULE_EXPRS, RECORDS = promql.rule_expressions()
PANEL_EXPRS = promql.panel_expressions()
ALL = PANEL_EXPRS + RULE_EXPRS


def _record_labels(expr: str) -> set[str]:
    """The labels a recording rule's result keeps: its outermost aggregation's ``by``."""
    aggs = promql.uses(expr).aggregations
    outer = [a for a in aggs if a.clause == "by"]
    return set(outer[0].labels) if outer else set()


def resolve(metric: str) -> set[str]:
    """The labels a metric name carries, or an AssertionError saying why it is unknown."""
    if metric in CATALOG:
        return set(CATALOG[metric].labels)
    if metric in BUILTIN:
        return set(BUILTIN[metric])
    if metric in RECORDS:
        return _record_labels(RECORDS[metric])
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        base = metric.removesuffix(suffix)
        if base != metric and base in CATALOG and CATALOG[base].kind == "histogram":
            return set(CATALOG[base].labels) | extra
    hint = ""
    if metric + "_total" in CATALOG:
        hint = f" (did you mean {metric}_total? counters are exposed with _total)"
    raise AssertionError(f"metric {metric!r} is not in the catalog{hint}")


def check(expr: str) -> list[str]:
    problems: list[str] = []
    found = promql.uses(expr)
    if not found.selectors:
        problems.append("reads no metric")
    for sel in found.selectors:
        try:
            labels = resolve(sel.metric) | TARGET_LABELS
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        for label, op, value in sel.matchers:
            if label not in labels:
                problems.append(f"{sel.metric} has no label {label!r} (has {sorted(labels)})")
            if label in KNOWN_VALUES and op in ("=", "!=", "=~", "!~"):
                wanted = set(value.split("|")) if "~" in op else {value}
                unknown = wanted - KNOWN_VALUES[label]
                if unknown:
                    problems.append(
                        f"{sel.metric}{{{label}{op}{value!r}}}: {sorted(unknown)} is not a "
                        f"{label} the code emits ({sorted(KNOWN_VALUES[label])})"
                    )
    for agg in found.aggregations:
        for label in agg.labels:
            for metric in agg.metrics:
                try:
                    labels = resolve(metric) | TARGET_LABELS
                except AssertionError:
                    continue  # reported above
                if label not in labels:
                    problems.append(
                        f"{agg.op} {agg.clause} ({label}) over {metric}, which has no label "
                        f"{label!r} (has {sorted(labels)})"
                    )
    for clause, labels in found.grouping:
        every = set().union(*(resolve(s.metric) for s in found.selectors)) | TARGET_LABELS
        problems += [f"{clause} ({x}): no metric here has it" for x in labels if x not in every]
    return problems


@pytest.mark.parametrize("item", ALL, ids=[e.where for e in ALL])
def test_expression_uses_only_catalog_metrics_and_labels(item) -> None:
    problems = check(item.expr)
    assert not problems, f"{item.where}: {item.expr}\n  " + "\n  ".join(problems)


def test_every_dashboard_and_rule_was_found() -> None:
    boards = {e.where.split(" / ")[0] for e in PANEL_EXPRS}
    assert boards == set(generate.BOARDS), boards
    assert len(PANEL_EXPRS) >= 40
    assert any(e.where.endswith("ConsentinelSinkBacklog") for e in RULE_EXPRS)


@pytest.mark.parametrize("where,metric,label", promql.variable_queries(), ids=lambda v: str(v)[:60])
def test_template_variables_read_catalog_labels(where: str, metric: str, label: str) -> None:
    assert label in resolve(metric), f"{where}: {metric} has no label {label!r}"


def test_dashboards_are_what_the_generator_writes() -> None:
    for name, text in generate.render().items():
        on_disk = (promql.DASHBOARDS / name).read_text(encoding="utf-8")
        assert on_disk == text, (
            f"dashboards/grafana/dashboards/{name} differs from what generate.py writes: run "
            f"`python dashboards/grafana/generate.py` and commit the result"
        )


def test_the_dashboards_cover_the_catalog() -> None:
    """A metric no panel shows is a metric nobody watches: every catalog entry has a panel."""
    shown = {
        re.sub(r"_(bucket|sum|count)$", "", s.metric)
        for e in PANEL_EXPRS
        for s in promql.uses(e.expr).selectors
    }
    missing = sorted(set(CATALOG) - shown)
    assert not missing, f"no panel shows {missing}"


# -- the checker itself must be able to fail ----------------------------------------------------


@pytest.mark.parametrize(
    "expr,needle",
    [
        ("sum(rate(consentinel_alerts[5m]))", "did you mean consentinel_alerts_total"),
        ("sum by (controller) (rate(consentinel_alerts_total[5m]))", "no label 'controller'"),
        ('consentinel_sink_backlog{sinks="x"}', "no label 'sinks'"),
        ('sum(rate(consentinel_verdicts_total{decision="denied"}[1m]))', "['denied']"),
        ("histogram_quantile(0.9, sum by (le) (rate(consentinel_pending_usages_bucket[1m])))",
         "not in the catalog"),
        ("sum(rate(consentinel_ingest_latency_seconds_bucket[1m])) by (le, source)",
         "no label 'source'"),
    ],
)  # fmt: skip
def test_the_checker_catches(expr: str, needle: str) -> None:
    problems = check(expr)
    assert any(needle in p for p in problems), problems


def test_the_checker_reads_grafana_variables_and_subqueries() -> None:
    expr = (
        "deriv(sum(consentinel_pending_usages)[20m:1m]) > 0 and "
        'sum by (instance) (rate(consentinel_ingest_requests_total{instance=~"$connector"}'
        "[$__rate_interval]))"
    )
    found = promql.uses(expr)
    assert [s.metric for s in found.selectors] == [
        "consentinel_pending_usages",
        "consentinel_ingest_requests_total",
    ]
    assert check(expr) == []
    assert promql.grafana_to_prometheus(expr) == expr.replace("$connector", ".*").replace(
        "$__rate_interval", "1m"
    )
