"""The worker on the real broker, run as `consentinel worker` subprocesses.

(a) a scenario of declarations, consents and usages yields exactly the verdicts and alerts
    the pure policy predicts (ids, rules, counts), including a late consent's correction;
(b) the same with the worker SIGKILLed in the middle and restarted: the set of alert ids
    is identical, none missing, and every use has its verdict;
(c) with 6 partitions and addresses spread over all of them, a consented use (consent
    before or shortly after the use) is never alerted.

Waits are condition-based with generous timeouts; nothing asserts on time.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import privacy  # tests/ and tests/streams are on pytest's pythonpath
import pytest
import worker_harness as h
from consentinel.streams.events import topics
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    USE_KINDS,
    AlertStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.events.settings import Settings
from kafka import KafkaConsumer, TopicPartition

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[1] / "deploy" / "registry.example.yaml"
GRACE_S = 4
TIMEOUT_S = 120


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, make_settings) -> Settings:
    s: Settings = make_settings(
        topic_prefix=topic_prefix,
        bootstrap_servers=kafka_bootstrap,
        partitions=6,
        grace_seconds=GRACE_S,
    )
    return h.prepare(s, EXAMPLE)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    with h.running_worker(settings, tmp_path / "worker.log") as proc:
        yield proc


@pytest.fixture
def outputs(settings: Settings) -> Iterator[Any]:
    out = h.Outputs(settings)
    yield out
    out.close()


@pytest.fixture
def producer(settings: Settings) -> Iterator[Any]:
    p = h.Producer(settings)
    yield p
    p.close()


def _uses(events: list[UsageEvent]) -> list[UsageEvent]:
    return [u for u in events if u.kind in USE_KINDS]


class Story:
    """The list-rental story and its neighbours, one subject per case."""

    def __init__(self, sc: Any) -> None:
        self.sc = sc
        # consent before the use, use allowed
        self.c_allowed = sc.consent(1)
        self.u_allowed = sc.use(1, list_id="lequotidien-morning")
        # the newsletter reader's address used by a political campaign (held, then alerted)
        self.u_political = sc.use(1, campaign_id="municipales-2026-dupont", controller="broker")
        # consent arriving just after the use, within the grace period: allowed
        self.u_within = sc.use(2, list_id="lequotidien-morning")
        self.c_within = sc.consent(2)
        # transactional mail needs no consent
        self.u_receipt = sc.use(3, sender="shop-notifications", controller="shop-example")
        # a campaign nobody declared: configuration alert once the grace period passed
        self.u_undeclared = sc.use(4, campaign_id="mystery-campaign", controller="someone")
        # SMS after STOP
        self.c_sms = sc.consent(
            5, controller="shop-example", purposes=["marketing.direct"], channel=Channel.SMS
        )
        self.c_stop = sc.consent(
            5,
            controller="shop-example",
            action=ConsentAction.WITHDRAW,
            channel=Channel.SMS,
            at=sc.t0 + 60_000,
        )
        self.u_after_stop = sc.use(
            5, controller="shop-example", channel=Channel.SMS, sender="36180"
        )
        # evidence of a send is not a use: no verdict
        self.u_open = sc.use(1, list_id="lequotidien-morning", kind=UsageKind.OPEN)
        # no consent when the grace period ends: alerted; the consent comes later: corrected
        self.u_late = sc.use(7, list_id="lequotidien-morning")
        self.c_late = sc.consent(7, at=sc.t0)  # given before the use, reported late

    def first_batch(self) -> list[ConsentEvent | UsageEvent]:
        return [
            self.c_allowed,
            self.u_allowed,
            self.u_political,
            self.u_within,
            self.c_within,
            self.u_receipt,
            self.u_undeclared,
            self.c_sms,
            self.c_stop,
            self.u_after_stop,
            self.u_open,
            self.u_late,
        ]


class Expected:
    """What the pure policy says, from the same events (the late consent unknown at first)."""

    def __init__(self, settings: Settings, sc: Any, late: list[ConsentEvent]) -> None:
        decls = h.declarations(EXAMPLE)
        early = [c for c in sc.consents if c not in late]
        self.first: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.alerts: dict[str, AlertStatus] = {}
        self.corrected: set[str] = set()
        late_subjects = {c.subject_key for c in late}
        for u in _uses(sc.usages):
            before = h.oracle(settings, u, early, decls)
            self.first[u.event_id] = h.summary(before)
            ids_before = h.alert_ids(u, before)
            for alert_id in ids_before:
                self.alerts[alert_id] = AlertStatus.FIRING
            if u.subject_key in late_subjects:
                after = h.oracle(settings, u, sc.consents, decls)
                if h.summary(after) != h.summary(before):
                    self.corrected.add(u.event_id)
                for alert_id in ids_before - h.alert_ids(u, after):
                    self.alerts[alert_id] = AlertStatus.RESOLVED

    def explain(self, out: Any) -> str:
        got = out.alert_status()
        firsts = set(out.first_verdicts())
        corrected = {v.usage_event_id for v in out.verdicts if v.correction}
        return "\n".join(
            [
                f"uses without a verdict: {sorted(set(self.first) - firsts)[:10]}",
                f"alerts missing: {sorted(set(self.alerts) - set(got))[:10]}",
                "alerts not expected: "
                + str(
                    [
                        (a.alert_id, a.usage_event_id, a.rule_id, str(a.status), a.summary)
                        for a in out.alerts
                        if a.alert_id not in self.alerts
                    ][:10]
                ),
                "alerts in another state: "
                + str(
                    [(k, got[k], s) for k, s in self.alerts.items() if k in got and got[k] != s][
                        :10
                    ]
                ),
                f"corrections missing: {sorted(self.corrected - corrected)}",
            ]
        )

    def done(self, out: Any) -> bool:
        out.poll()
        return (
            set(out.first_verdicts()) >= set(self.first)
            and out.alert_status() == self.alerts
            and {v.usage_event_id for v in out.verdicts if v.correction} >= self.corrected
        )


def _first_summaries(out: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {
        k: (str(v.decision), tuple(sorted(v.rule_ids))) for k, v in out.first_verdicts().items()
    }


def _metrics(worker: Any) -> str:
    with urllib.request.urlopen(worker.metrics_url, timeout=10) as resp:
        return resp.read().decode()


def test_a_scenario_gives_exactly_the_expected_verdicts_and_alerts(
    settings: Settings, worker: Any, outputs: Any, producer: Any
) -> None:
    story = Story(h.Scenario(settings))
    expected = Expected(settings, story.sc, late=[story.c_late])
    # the story is worth telling: violations, a warning, allowed uses, a correction
    decisions = {d for d, _ in expected.first.values()}
    assert {"allowed", "violation", "warning"} <= decisions
    assert expected.corrected == {story.u_late.event_id}
    assert expected.first[story.u_political.event_id][1]  # alerted rules

    worker.wait_judging()
    producer.send(story.first_batch())
    late_alerts = {
        a for a, s in expected.alerts.items() if s is AlertStatus.RESOLVED
    }  # fired first, resolved by the late consent
    assert late_alerts
    h.wait_for(
        lambda: late_alerts <= set(outputs.poll().alert_status()),
        TIMEOUT_S,
        "the alert on the use whose consent is late",
    )
    producer.send([story.c_late])
    h.wait_for(
        lambda: expected.done(outputs),
        TIMEOUT_S,
        "every expected verdict and alert",
        explain=lambda: expected.explain(outputs),
    )

    assert _first_summaries(outputs) == expected.first
    firsts = [v for v in outputs.verdicts if not v.correction]
    assert len(firsts) == len(expected.first), "exactly one verdict per use"
    assert story.u_open.event_id not in outputs.first_verdicts()
    corrections = [v for v in outputs.verdicts if v.correction]
    assert [(v.usage_event_id, str(v.decision)) for v in corrections] == [
        (story.u_late.event_id, "allowed")
    ]
    assert outputs.alert_status() == expected.alerts
    # each alert once, its correction once (same id, revision 2, a reason)
    n_resolved = sum(1 for s in expected.alerts.values() if s is AlertStatus.RESOLVED)
    assert len(outputs.alerts) == len(expected.alerts) + n_resolved
    for a in outputs.alerts:
        if a.status is AlertStatus.RESOLVED:
            assert a.revision == 2 and a.correction_reason
            assert a.usage_event_id == story.u_late.event_id
    # privacy: nothing the worker wrote or logged holds a raw address
    assert privacy.raw_addresses(b"\n".join(outputs.raw)) == []
    assert privacy.raw_addresses(worker.log().encode()) == []

    # metrics: served on loopback, counted from the catalog
    def settled() -> bool:
        text = _metrics(worker)
        # a subject is in the ledger once it has a consent, or a message noted as the first
        # a controller sent it (R15, R18)
        sent = {u.subject_key for u in story.sc.usages if u.kind is UsageKind.SEND}
        subjects = len({c.subject_key for c in story.sc.consents} | sent)
        return (  # sampled every few seconds: wait for a sample after the last record
            'consentinel_consumer_lag{topic="consentinel.usage.v1"} 0.0' in text
            and "consentinel_pending_usages 0.0" in text
            and f"consentinel_ledger_subjects {subjects}.0" in text
        )

    h.wait_for(settled, TIMEOUT_S, "the worker's gauges to settle")
    text = _metrics(worker)
    assert 'consentinel_verdicts_total{decision="violation"' in text
    assert 'consentinel_corrections_total{rule="' in text
    assert "consentinel_registry_declarations 5.0" in text
    assert "consentinel_event_to_verdict_seconds_count" in text
    assert 'consentinel_events_consumed_total{channel="sms"' in text
    assert worker.stop() == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.log()


def test_sigkill_in_the_middle_loses_no_alert_and_invents_none(
    settings: Settings, worker: Any, outputs: Any, producer: Any
) -> None:
    sc = h.Scenario(settings)
    story = Story(sc)
    bulk1: list[ConsentEvent | UsageEvent] = []
    bulk2: list[ConsentEvent | UsageEvent] = []
    for i in range(100, 260):
        batch = bulk1 if i < 200 else bulk2
        if i % 3 == 0:  # consent first
            batch += [sc.consent(i), sc.use(i, list_id="lequotidien-morning")]
        elif i % 3 == 1:  # the use first, its consent right behind (within the grace period)
            batch += [sc.use(i, list_id="lequotidien-morning"), sc.consent(i)]
        else:  # a newsletter reader rented out to the campaign
            batch += [
                sc.consent(i),
                sc.use(i, campaign_id="municipales-2026-dupont", controller="broker"),
            ]
    expected = Expected(settings, sc, late=[story.c_late])
    bulk1_uses = {u.event_id for u in bulk1 if isinstance(u, UsageEvent)}

    worker.wait_judging()
    producer.send(story.first_batch())
    late_alerts = {a for a, s in expected.alerts.items() if s is AlertStatus.RESOLVED}
    h.wait_for(
        lambda: late_alerts <= set(outputs.poll().alert_status()),
        TIMEOUT_S,
        "the alert on the use whose consent is late",
    )
    producer.send(bulk1)
    h.wait_for(
        lambda: bool(bulk1_uses & set(outputs.poll().first_verdicts())),
        TIMEOUT_S,
        "the worker to be judging the first bulk",
    )
    worker.kill()
    seen_at_kill = bulk1_uses & set(outputs.poll().first_verdicts())
    assert seen_at_kill < bulk1_uses, "the worker was killed in the middle of the bulk"

    producer.send([story.c_late, *bulk2])  # while it is down
    worker.start()
    h.wait_for(
        lambda: expected.done(outputs),
        TIMEOUT_S,
        "every expected verdict and alert",
        explain=lambda: expected.explain(outputs) + "\n" + worker.log()[-3000:],
    )

    assert set(outputs.alert_status()) == set(expected.alerts), "the same alert ids, none more"
    assert outputs.alert_status() == expected.alerts
    assert _first_summaries(outputs) == expected.first
    assert {v.usage_event_id for v in outputs.verdicts if v.correction} == expected.corrected
    assert privacy.raw_addresses(b"\n".join(outputs.raw)) == []
    assert worker.stop() == 0


def test_a_consented_use_is_never_alerted_whatever_its_partition(
    settings: Settings, worker: Any, outputs: Any, producer: Any
) -> None:
    sc = h.Scenario(settings)
    events: list[ConsentEvent | UsageEvent] = []
    for i in range(300, 360):
        use = sc.use(i, list_id="lequotidien-morning")
        grant = sc.consent(i)
        events += [grant, use] if i % 2 else [use, grant]
    keys = {subject_message_key(u.subject_key) for u in sc.usages}
    assert {partition_for(k, 6) for k in keys} == set(range(6)), "every partition is used"

    worker.wait_judging()
    producer.send(events)
    wanted = {u.event_id for u in sc.usages}
    h.wait_for(
        lambda: set(outputs.poll().first_verdicts()) >= wanted, TIMEOUT_S, "a verdict per use"
    )
    decisions = {str(v.decision) for v in outputs.verdicts}
    assert decisions == {"allowed"}, [
        (v.usage_event_id, v.decision, v.rule_ids) for v in outputs.verdicts
    ]
    assert outputs.alerts == []
    # and nothing was dead-lettered (a partition mismatch would be)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
    )
    name = settings.topic(topics.DEADLETTER)
    tps = [TopicPartition(name, p) for p in range(6)]
    assert sum(consumer.end_offsets(tps).values()) == 0
    consumer.close()
    assert worker.stop() == 0
