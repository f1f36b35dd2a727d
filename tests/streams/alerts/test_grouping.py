"""Incident grouping: one incident per controller x campaign by default, listing every rule
broken with per-rule counts; alerts stay one per (use, rule); configurable; Alertmanager
keeps one alert per incident x rule so routing by rule works."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alerting import HOUR, T0, alert
from consentinel.streams.alerts import config as router_config
from consentinel.streams.alerts.grouping import group_key, parse_group_by
from consentinel.streams.alerts.model import (
    ChangeKind,
    IncidentError,
    IncidentStatus,
    RuleCount,
)
from consentinel.streams.alerts.sinks.alertmanager import AlertmanagerSink
from consentinel.streams.alerts.sinks.base import description, headline
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import AlertStatus, Severity

RULES = ("R1", "R2", "R17")


def _rented_send(store: IncidentStore, uses: int = 4) -> None:
    """A political send to rented readers: every use breaks R1, R2 and R17."""
    batch = [
        alert(f"e{u}", rule=rule, at=T0 + u, severity=sev)
        for u in range(uses)
        for rule, sev in zip(
            RULES, (Severity.WARNING, Severity.CRITICAL, Severity.WARNING), strict=True
        )
    ]
    store.ingest_many(batch, now_ms=1)


def test_one_use_three_rules_is_one_incident_listing_them(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db") as store:
        _rented_send(store)
        (inc,) = store.list_incidents()
        assert inc.incident_key == "broker-lists|politics-27"
        assert inc.alert_count == 12  # alerts stay one per (use, rule)
        assert inc.rules == (
            RuleCount("R1", "[S6 art. 5(1)(b), 6(4)]", "warning", 4, 0),
            RuleCount("R2", "[S6 art. 5(1)(b), 6(4)]", "critical", 4, 0),
            RuleCount("R17", "[S6 art. 5(1)(b), 6(4)]", "warning", 4, 0),
        )
        assert inc.rule_ids == RULES
        assert inc.rule_id == "R1"  # the first alert's
        assert inc.severity == "critical"  # the worst of its rules
        assert len(store.alerts_of(inc.incident_id)) == 12
        st = store.stats()
        assert st.by_rule == {r: {"open": 1} for r in RULES}
        assert st.by_status["open"] == 1
        assert store.open_counts() == {("R1+R2+R17", "critical"): 1}  # sums to 1 incident


def test_a_correction_of_one_rule_leaves_the_others_firing(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db") as store:
        _rented_send(store, uses=2)
        for u in range(2):  # a late partner consent clears R2 of both uses, not R1 or R17
            store.ingest(alert(f"e{u}", rule="R2", status=AlertStatus.RESOLVED, revision=2), 5)
        (inc,) = store.list_incidents()
        assert inc.status is IncidentStatus.OPEN
        assert [(r.rule_id, r.alerts, r.resolved_alerts) for r in inc.rules] == [
            ("R1", 2, 0),
            ("R2", 2, 2),
            ("R17", 2, 0),
        ]
        assert inc.resolved_alert_count == 2
        again = store.ingest(alert("e0", rule="R2", revision=3), 6)  # R2 fires again
        assert again is not None
        (inc,) = store.list_incidents()
        assert [r.resolved_alerts for r in inc.rules] == [0, 1, 0]
        for u in range(2):
            for rule in RULES:
                store.ingest(alert(f"e{u}", rule=rule, status=AlertStatus.RESOLVED, revision=9), 7)
        (inc,) = store.list_incidents()
        assert inc.status is IncidentStatus.RESOLVED  # every alert of every rule corrected
        assert all(r.resolved_alerts == r.alerts for r in inc.rules)


def test_grouping_is_configurable(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db", group_by=("controller", "campaign", "rule")) as s:
        _rented_send(s)
        keys = sorted(i.incident_key for i in s.list_incidents())
        assert keys == [f"broker-lists|politics-27|{r}" for r in ("R1", "R17", "R2")]
        assert all(len(i.rules) == 1 and i.rules[0].alerts == 4 for i in s.list_incidents())
    with IncidentStore(tmp_path / "y.db", group_by=("controller",)) as s:
        s.ingest(alert("e1"), 1)
        s.ingest(alert("e2", campaign="other-campaign", rule="R5"), 1)
        (inc,) = s.list_incidents()
        assert inc.incident_key == "broker-lists" and inc.rule_ids == ("R2", "R5")


def test_other_controller_or_campaign_or_time_is_another_incident(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db", window_ms=HOUR) as s:
        s.ingest(alert("e1"), 1)
        s.ingest(alert("e2", rule="R13"), 1)  # same matter: joins
        s.ingest(alert("e3", controller="other"), 1)
        s.ingest(alert("e4", campaign=None), 1)
        s.ingest(alert("e5", at=T0 + 3 * HOUR), 1)  # past the window: a new incident
        counts = sorted((i.incident_key, i.alert_count) for i in s.list_incidents())
        assert counts == [
            ("broker-lists|-", 1),
            ("broker-lists|politics-27", 1),
            ("broker-lists|politics-27", 2),
            ("other|politics-27", 1),
        ]


def test_group_by_is_validated() -> None:
    assert parse_group_by(["campaign", "controller", "campaign"]) == ("campaign", "controller")
    with pytest.raises(IncidentError, match=r"unknown field.*'colour'"):
        parse_group_by(["controller", "colour"])
    with pytest.raises(IncidentError, match="empty"):
        parse_group_by([])
    assert group_key(alert("e1", campaign=None), ("controller", "campaign", "rule")) == (
        "broker-lists|-|R2"
    )


def test_the_sinks_file_sets_the_grouping(tmp_path: Path, make_settings) -> None:
    path = tmp_path / "sinks.yaml"
    path.write_text("incidents: {group_by: [controller, campaign, rule]}\nsinks: []\n")
    cfg = router_config.load(path, make_settings())
    assert cfg.group_by == ("controller", "campaign", "rule")
    path.write_text("sinks: []\n")
    assert router_config.load(path, make_settings()).group_by == ("controller", "campaign")
    path.write_text("incidents: {group_by: [controller, colour]}\nsinks: []\n")
    with pytest.raises(FatalConfigError, match="colour"):
        router_config.load(path, make_settings())


def test_alertmanager_gets_one_alert_per_rule_with_the_rule_label(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db") as store:
        _rented_send(store, uses=2)
        store.ingest(alert("e0", rule="R2", status=AlertStatus.RESOLVED, revision=2), 5)
        store.ingest(alert("e1", rule="R2", status=AlertStatus.RESOLVED, revision=2), 5)
        (inc,) = store.list_incidents()
    sink = AlertmanagerSink("am", "http://127.0.0.1:9", clock_ms=lambda: T0 + 1000)
    sent = sink.payloads(ChangeKind.OPENED, inc, "http://console/incidents/x")
    assert [a["labels"]["rule"] for a in sent] == list(RULES)
    assert [a["labels"]["alertname"] for a in sent] == [f"consentinel_{r}" for r in RULES]
    assert [a["labels"]["severity"] for a in sent] == ["warning", "critical", "warning"]
    assert {a["labels"]["incident_id"] for a in sent} == {inc.incident_id}
    assert all(a["annotations"]["rules"] == "R1, R2, R17" for a in sent)
    assert [a["annotations"]["alert_count"] for a in sent] == ["2", "2", "2"]
    ends = {a["labels"]["rule"]: a["endsAt"] for a in sent}
    assert ends["R2"] == "2025-10-09T08:53:21.000Z"  # corrected: ends now
    assert ends["R1"] == ends["R17"] > ends["R2"]  # still firing


def test_people_read_every_rule_in_the_notification(tmp_path: Path) -> None:
    with IncidentStore(tmp_path / "x.db") as store:
        _rented_send(store, uses=3)
        (inc,) = store.list_incidents()
    assert headline(ChangeKind.OPENED, inc).startswith("[CRITICAL] R1+R2+R17 opened: ")
    text = "\n".join(description(inc, "http://console/incidents/x"))
    assert "3 rules broken, severity critical:" in text
    assert "- R17 [S6 art. 5(1)(b), 6(4)] (warning): 3 alert(s), 0 corrected" in text


def test_a_version_1_store_gets_its_rules_from_its_one_rule(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with IncidentStore(path, group_by=("controller", "campaign", "rule")) as s:
        s.ingest(alert("e1"), 1)
        s.ingest(alert("e2", at=T0 + 1), 1)
    db = sqlite3.connect(path)  # make it the file a version-1 router wrote
    db.execute("ALTER TABLE incidents DROP COLUMN rules")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    with IncidentStore(path) as s:
        (inc,) = s.list_incidents()
        assert inc.rules == (RuleCount("R2", "[S6 art. 5(1)(b), 6(4)]", "critical", 2, 0),)
        assert s.stats().by_rule == {"R2": {"open": 1}}
    db = sqlite3.connect(path)
    # migrated on to the current schema (4: erasures)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("4",)
    db.close()
