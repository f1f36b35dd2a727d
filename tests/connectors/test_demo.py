"""The demo feed without a broker: its files agree with each other, every request it posts
is authentic and maps through the real connector, and the real policy (the worker's
``Judge``, in virtual time) raises exactly the incidents the demo announces."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from consentinel.connectors import config as connectors_config
from consentinel.connectors import registry
from consentinel.connectors.contract import Connector, Edge, Instance, Request
from consentinel.connectors.demo import cast, main, slots, summary
from consentinel.connectors.demo import scenario as sc
from consentinel.connectors.demo.feed import Answer, Feed, Report
from consentinel.connectors.demo.world import SCALES, World, hint
from consentinel.streams.checker import fanout, members
from consentinel.streams.checker.holds import Holds
from consentinel.streams.checker.judge import Judge
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.records import Alert, AlertStatus, ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Settings
from consentinel.streams.policy.engine import PolicySettings
from consentinel.streams.policy.history import ConsentHistory
from consentinel.streams.registry import file as registry_file

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "deploy" / "demo" / "connectors.yaml"
REGISTRY = ROOT / "deploy" / "demo" / "registry.yaml"
GRACE_S = 20.0
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
E164 = re.compile(r"\+\d{8,15}\b")


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(grace_seconds=GRACE_S)


@pytest.fixture
def cfg(settings: Settings) -> connectors_config.ConnectorsConfig:
    return connectors_config.load(CONNECTORS, settings)


class Clock:
    """Virtual time: ``sleep`` moves it on; nothing waits for real."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class Worker:
    """The checker's decisions per subject, as the worker makes them (``Judge``), with the
    grace period ticking in virtual time; a list-level send expanded to the list's members
    when it was sent (``checker.members``, ``checker.fanout``), as the worker does."""

    def __init__(self, grace_s: float) -> None:
        decls = {d.decl_id: d for d in registry_file.load(str(REGISTRY)).declarations}
        self.judge = Judge(PolicySettings(grace_ms=int(grace_s * 1000)), decls.get)
        self.histories: dict[str, ConsentHistory | None] = {}
        self.holds: dict[str, Holds] = {}
        self.alerts: dict[str, Alert] = {}
        self.members: dict[str, members.Memberships | None] = {}
        self.expanded: dict[str, list[str]] = {}  # list-level use id -> members judged

    def _keep(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            known = self.alerts.get(alert.alert_id)
            if known is None or alert.revision > known.revision:
                self.alerts[alert.alert_id] = alert

    def tick(self, now_ms: int) -> None:
        for key, holds in self.holds.items():
            step = self.judge.expire(self.histories.get(key), holds, now_ms, now_ms)
            self._keep(step.alerts)

    def take(self, event: UsageEvent | ConsentEvent, now_ms: int) -> None:
        key = event.subject_key
        if isinstance(event, UsageEvent) and fanout.is_fan_out(event):
            self._expand(event, now_ms)
            return
        if isinstance(event, ConsentEvent):
            _, self.members[key] = members.apply(self.members.get(key), event)
        holds = self.holds.setdefault(key, Holds())
        if isinstance(event, UsageEvent):
            step, history = self.judge.usage(event, self.histories.get(key), holds, now_ms)
        else:
            step, history = self.judge.consent(event, self.histories.get(key), holds, now_ms)
        self.histories[key] = history
        self._keep(step.alerts)

    def _expand(self, usage: UsageEvent, now_ms: int) -> None:
        ref = fanout.usage_list_ref(usage)
        on_list = [
            (subject, m.hint)
            for subject, m in sorted(self.members.items())
            if m is not None
            and ref in m.lists
            and members.on_at(m.lists[ref], usage.occurred_at_ms)
        ]
        self.expanded[usage.event_id] = [subject for subject, _ in on_list]
        for subject, hint_ in on_list:
            self.take(fanout.member_use(usage, subject, hint_), now_ms)

    def incidents(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for alert in self.alerts.values():
            out.setdefault(alert.incident_key, Counter())[str(alert.status)] += 1
        return out


class InProcess:
    """A transport that does what the ingest server does, in this process: verify with the
    platform's scheme, map, hand the events to the worker."""

    def __init__(self, cfg: connectors_config.ConnectorsConfig, worker: Worker) -> None:
        self.edge = Edge(Pseudonymizer(b"demo-test-pepper-0123456789"))
        self.connectors: dict[str, Connector] = {
            name: registry.build(inst, self.edge) for name, inst in cfg.instances.items()
        }
        self.worker = worker
        self.requests: list[Request] = []
        self.events: list[UsageEvent | ConsentEvent] = []

    def base_url(self, instance: Instance) -> str:
        return instance.public_url or f"http://127.0.0.1:8585/hooks/{instance.name}"

    def deliver(self, instance: Instance, request: Request) -> Answer:
        self.requests.append(request)
        connector = self.connectors[instance.name]
        try:
            connector.verify(request)
        except Exception as exc:
            return Answer(401, type(exc).__name__)
        try:
            out = connector.map_request(request)
        except InvalidInput as exc:
            return Answer(400, exc.reason if hasattr(exc, "reason") else "invalid")
        now = request.received_at_ms
        self.worker.tick(now)
        for event in [*out.consent, *out.usage]:
            self.events.append(event)
            self.worker.take(event, now)
        return Answer(200)


def _play(cfg, scale: str = "small", seed: int = 2027, start: float = 1_790_000_000.0):
    world = World.build(seed, scale)
    worker = Worker(GRACE_S)
    transport = InProcess(cfg, worker)
    clock = Clock(start)
    out = io.StringIO()
    feed = Feed(cfg, transport, clock=clock, sleep=clock.sleep, out=out)
    assert feed.check(cast.INSTANCES) == []
    report = feed.play(sc.Story(world, GRACE_S, run="test").phases())
    clock.sleep(GRACE_S * 2)
    worker.tick(int(clock() * 1000))
    return world, worker, transport, report, out.getvalue()


def test_the_world_is_deterministic_and_synthetic() -> None:
    a, b = World.build(7, "normal"), World.build(7, "normal")
    assert a == b and World.build(8, "normal") != a
    for address in a.addresses():
        assert re.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(org|net|com)", address) or (
            re.fullmatch(r"\+3363998\d{4}", address)  # French fiction range 06 39 98 xx xx
        ), hint(address)
    assert len(set(a.addresses())) == len(a.addresses())
    assert set(a.texted_after_stop) <= set(a.stoppers) <= set(a.customers)
    assert set(a.unnamed_targets) <= set(a.leads)
    assert set(a.rented) <= set(a.readers) and set(a.rented) & set(a.unsubscribed)
    for scale, counts in SCALES.items():
        world = World.build(1, scale)
        assert len(world.readers) == counts["readers"] and len(world.leads) == counts["leads"]


def test_the_demo_files_agree(cfg) -> None:
    for name, ctype in cast.INSTANCES.items():
        assert cfg.instances[name].type == ctype
    declared = {d.decl_id for d in registry_file.load(str(REGISTRY)).declarations}
    campaigns = {cast.MATINALE, cast.ABONNEMENT, cast.POLITICAL, cast.SOLAIRE, cast.AUTO, cast.PRET}
    assert {f"campaign:{c}" for c in campaigns} <= declared
    assert {f"list:{cast.PROMO_SERVICE}", f"list:{cast.ORDERS_SERVICE}"} <= declared
    mailchimp = cfg.instances[cast.MAILCHIMP]
    assert mailchimp.purpose_map[cast.NEWSLETTER_LIST] == "editorial.newsletter"
    assert cast.NEWSLETTER_LIST in mailchimp.options["list_notices"]
    leads = cfg.instances[cast.LEADS]
    assert set(leads.options["controller_aliases"]) == set(cast.PARTNERS)
    decls = {d.decl_id: d for d in registry_file.load(str(REGISTRY)).declarations}
    calls = decls[f"campaign:{cast.CALLS}"]  # a rented file, no consent, never cleaned
    assert calls.sourcing == "rented" and calls.legal_basis == "legitimate_interest"
    assert calls.channel == "phone" and calls.bloctel_cleaned_at_ms is None
    assert cfg.instances[cast.TWILIO_VOICE].controller == calls.controller
    promo = decls[f"campaign:{cast.NIGHT_PROMO}"]
    assert promo.channel == "sms" and cfg.instances[cast.VONAGE].controller == promo.controller


def test_the_new_channels_use_their_calendar() -> None:
    # Friday 13 Nov 2026, 10:00 Paris: Wednesday 11 Nov (Armistice) is a public holiday
    now = slots.at(date(2026, 11, 13), 10)
    assert slots.paris_day(now) == date(2026, 11, 13)
    assert slots.weekdays(now, 5) == [date(2026, 11, d) for d in (12, 10, 9, 6, 5)]
    assert slots.last_sunday(now) == date(2026, 11, 8)
    assert slots.last_holiday(now) == date(2026, 11, 11)
    # 23:45 Paris on the evening before (UTC+1 in November)
    assert slots.last_evening(now, 23, 45) == int(
        datetime(2026, 11, 12, 22, 45, tzinfo=UTC).timestamp() * 1000
    )
    # in summer (UTC+2), and across New Year: 1 Jan is the latest holiday on 2 Jan
    assert slots.at(date(2026, 7, 1), 21, 30) == int(
        datetime(2026, 7, 1, 19, 30, tzinfo=UTC).timestamp() * 1000
    )
    assert slots.last_holiday(slots.at(date(2027, 1, 2), 9)) == date(2027, 1, 1)
    assert slots.last_holiday(slots.at(date(2027, 1, 1), 9)) == date(2026, 12, 25)


def test_the_calls_go_out_when_the_story_says(cfg) -> None:
    world, _, transport, _, _ = _play(cfg, "normal")
    calls = [e for e in transport.events if isinstance(e, UsageEvent) and e.kind == "call"]
    assert len(calls) == world.calls
    assert {c.campaign_id for c in calls} == {cast.CALLS}
    paris = [
        datetime.fromtimestamp(c.occurred_at_ms / 1000, tz=UTC).astimezone(slots.PARIS)
        for c in calls
    ]
    at_2130 = [t for t in paris if (t.hour, t.minute) == (21, 30)]
    sundays = [t for t in paris if t.weekday() == 6]
    assert len(at_2130) == len(world.called_late) and len(sundays) == len(world.called_sunday)
    assert [c.attributes["attempt"] for c in calls].count(5) == len(world.pestered)
    sms = [e for e in transport.events if isinstance(e, UsageEvent) and e.kind == "send"]
    # the Vonage promotion: 23:45 Paris, from a long code
    night = [e for e in sms if e.campaign_id == cast.NIGHT_PROMO]
    assert len(night) == len(world.night_texted)
    for e in night:
        local = datetime.fromtimestamp(e.occurred_at_ms / 1000, tz=UTC).astimezone(slots.PARIS)
        assert (local.hour, local.minute) == (23, 45)
        assert e.attributes["sender_type"] == "long_code"


def test_a_night_run_announces_r9_on_the_sms_promotions(cfg) -> None:
    # 3 Oct 2026, 04:00 UTC: 06:00 in Paris, Boutique Soleil's promotions go out at night
    world, worker, _, report, _ = _play(cfg, start=1_791_000_000.0)
    expected = {e.incident_key: e for e in cast.expectations(world, report.phase_started)}
    night = expected["boutique-soleil|-|R9"]
    assert night.alerts == len(world.customers) + len(world.second_promo)
    incidents = worker.incidents()
    assert set(incidents) == set(expected), incidents
    assert incidents["boutique-soleil|-|R9"] == Counter({"firing": night.alerts})
    assert "boutique-soleil|-|R9" not in {e.incident_key for e in cast.expectations(world)}


def test_every_request_is_authentic_and_maps(cfg) -> None:
    _, _, transport, report, output = _play(cfg)
    assert report.ok, report.failures
    assert {s for (_, _, s) in report.requests} == {200}
    posted = {name for (name, _, _) in report.requests}
    assert posted == set(cast.INSTANCES)
    assert report.retries == 0
    # the events carry keys and hints, never the addresses
    for event in transport.events:
        text = repr(event)
        assert not EMAIL.search(text) and not E164.search(text), event.event_id
    # nor does what the demo prints
    assert not EMAIL.search(output) and not E164.search(output)
    assert "Le Quotidien" in output and "grace period" in output


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_the_policy_raises_what_the_demo_announces(cfg, scale: str) -> None:
    world, worker, _, _, _ = _play(cfg, scale)
    incidents = worker.incidents()
    expected = {e.incident_key: e for e in cast.expectations(world)}
    assert set(incidents) == set(expected), incidents
    for key, e in expected.items():
        status = "resolved" if e.resolved else "firing"
        assert incidents[key] == Counter({status: e.alerts}), (key, incidents[key])
    # lawful controllers raised nothing beyond those
    for controller in cast.LAWFUL:
        own = {k for k in incidents if k.startswith(f"{controller}|")}
        assert own <= set(expected), own
    # and every alert carries its evidence as masked hints only
    for alert in worker.alerts.values():
        assert "**" in alert.hint and not EMAIL.search(repr(alert))


def test_the_mailchimp_campaign_reaches_the_audience_lawful_for_subscribed_readers(cfg) -> None:
    world, worker, transport, _, _ = _play(cfg)
    edge = transport.edge
    keys = {a: edge.address(a, "email").key for a in world.readers + world.imported}
    (campaign,) = [
        e
        for e in transport.events
        if isinstance(e, UsageEvent) and e.campaign_id == cast.MATINALE_CAMPAIGN
    ]
    assert fanout.is_fan_out(campaign)
    reached = set(worker.expanded[campaign.event_id])
    readers = {keys[a] for a in world.newsletter_readers}
    imported = {keys[a] for a in world.imported}
    # the audience when it was sent: subscribed readers and the imported file; not those
    # who left it, nor anyone else
    assert reached == readers | imported
    assert not reached & {keys[a] for a in world.unsubscribed}
    alerted = {
        a.subject_key
        for a in worker.alerts.values()
        if a.incident_key.startswith(f"le-quotidien|{cast.MATINALE_CAMPAIGN}|")
    }
    assert alerted == imported, "violations for the imported file only"
    assert not alerted & readers, "the subscribed readers are lawful"


def test_late_consent_within_the_grace_period_raises_nothing(cfg) -> None:
    world, worker, transport, _, _ = _play(cfg)
    edge = transport.edge
    in_grace = {edge.address(a, "email").key for a in world.late_in_grace}
    assert in_grace and not [a for a in worker.alerts.values() if a.subject_key in in_grace]
    after = {edge.address(a, "email").key for a in world.late_after_grace}
    corrected = [a for a in worker.alerts.values() if a.subject_key in after]
    assert corrected and all(a.status is AlertStatus.RESOLVED for a in corrected)
    assert all(a.correction_reason for a in corrected)


def test_summary_lists_requests_and_expected_incidents(cfg) -> None:
    world, _, _, report, _ = _play(cfg)
    out = io.StringIO()
    summary(world, report, out)
    text = out.getvalue()
    assert "campagne-2027|c2027-lettre-aux-lecteurs|R17" in text
    assert "boutique-soleil|-|R5" in text and "credit-facile|cf-pret-express|R13" in text
    assert "resolved by corrections" in text and "FAILED" not in text
    assert f"mutuelle-horizon|{cast.CALLS}|R10" in text and f"|{cast.CALLS}|R12" in text
    assert f"fleurs-de-lys|{cast.NIGHT_PROMO}|R8" in text and "boutique-soleil|-|R9" not in text
    assert not EMAIL.search(text) and not E164.search(text)


def test_failures_are_reported_and_503_retried(cfg) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = Counter[str]()

        def base_url(self, instance: Instance) -> str:
            return f"http://127.0.0.1:1/hooks/{instance.name}"

        def deliver(self, instance: Instance, request: Request) -> Answer:
            self.calls[instance.name] += 1
            if instance.name == cast.TWILIO:
                return Answer(401, "bad_signature")
            if self.calls[instance.name] % 2:
                return Answer(503, "kafka_unavailable", retry_after_s=1)
            return Answer(202)

    clock = Clock()
    feed = Feed(cfg, Flaky(), clock=clock, sleep=clock.sleep, out=io.StringIO())
    assert feed.check(cast.INSTANCES) == []
    report: Report = feed.play(sc.Story(World.build(1, "small"), GRACE_S).phases())
    assert not report.ok and report.retries > 0
    assert all(
        cast.TWILIO in line and "HTTP 401 (bad_signature)" in line for line in report.failures
    )
    assert {s for (name, _, s) in report.requests if name != cast.TWILIO} == {202}


def test_main_refuses_a_connectors_file_that_does_not_fit(tmp_path, settings, monkeypatch) -> None:
    other = tmp_path / "connectors.yaml"
    other.write_text(CONNECTORS.read_text().replace("name: twilio-boutique", "name: twilio-x"))
    for key, value in {
        "CONSENTINEL_HOME": str(settings.home),
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_PEPPER": "test-pepper-0123456789abcdef",
        "CONSENTINEL_TOKEN": "test-token-0123456789abcdef",
    }.items():
        monkeypatch.setenv(key, value)
    secrets = tmp_path / "secrets"
    secrets.symlink_to(CONNECTORS.parent / "secrets")
    from consentinel.streams.events.errors import FatalConfigError

    with pytest.raises(FatalConfigError, match="twilio-boutique"):
        main(["--config", str(other), "--ingest", "http://127.0.0.1:1"])
