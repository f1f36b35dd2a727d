"""The router on the real broker: to a REAL Alertmanager and on to its receiver; a sink
down for a while; a router killed and started again.

The sink-down test keeps the sink away for ``CONSENTINEL_SINK_DOWN_SECONDS`` (default: the
full minute the acceptance names; set it lower for a quick local run). Every wait is on a
condition; the time bounds only stop a hung test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from alerting import RouterProcess, alert, eventually, free_port, privacy, produce
from consentinel.streams.alerts.model import IncidentStatus
from consentinel.streams.alerts.sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec, topics
from consentinel.streams.events.clock import now_ms as wall_ms
from consentinel.streams.events.records import AlertStatus
from consentinel.streams.events.settings import Settings
from kafka import KafkaConsumer, TopicPartition

pytestmark = pytest.mark.integration

DOWN_S = float(os.environ.get("CONSENTINEL_SINK_DOWN_SECONDS", "60"))
HOOK_SECRET = "hook-secret-0123456789abcdef"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


@dataclass
class Hook:
    """A webhook receiver on loopback (aiohttp), started and stopped at will."""

    port: int
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.received.append((dict(request.headers), await request.read()))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook(free_port())
    yield h
    await h.stop()


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[list[RouterProcess]]:
    """Every router a test starts is stopped after it, whatever happened."""
    started: list[RouterProcess] = []
    yield started
    for r in started:
        if r.alive():
            r.kill()


def _store(settings: Settings) -> IncidentStore:
    return IncidentStore.open(settings)


def _write_sinks(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sinks.yaml"
    path.write_text(body)
    return path


# -- 1. alerts -> router -> real Alertmanager -> its webhook receiver ----------------------


@pytest.fixture
def alertmanager(tmp_path: Path, hook: Hook) -> Iterator[str]:
    """A real Alertmanager on a free loopback port, routing everything to ``hook``."""
    assert Path(ALERTMANAGER).exists(), "prometheus-alertmanager is missing: run `make setup`"
    port = free_port()
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(
        f"""
route:
  receiver: hook
  group_by: [alertname, incident_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook.url}/alertmanager
        send_resolved: true
"""
    )
    log = open(tmp_path / "alertmanager.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()


async def _get_json(url: str) -> Any:
    try:
        async with aiohttp.ClientSession() as s, s.get(url) as resp:
            return await resp.json() if resp.status == 200 else None
    except aiohttp.ClientError:
        return None


async def _answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(url) as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


def _am_alerts_in(hook: Hook) -> list[dict[str, Any]]:
    out = []
    for headers, body in hook.received:
        if headers.get("User-Agent", "").startswith("Alertmanager"):
            out.extend(codec.loads(body)["alerts"])
    return out


async def test_alerts_reach_alertmanager_and_its_receiver(
    router_settings: Settings,
    alertmanager: str,
    hook: Hook,
    tmp_path: Path,
    routers: list[RouterProcess],
) -> None:
    await hook.start()
    await eventually(
        lambda: _answers(f"{alertmanager}/-/ready"),
        "Alertmanager is ready",
        explain=lambda: (tmp_path / "alertmanager.log").read_text()[-2000:],
    )
    sinks = _write_sinks(
        tmp_path,
        f"""
console_url: http://127.0.0.1:8686
retry: {{initial_seconds: 0.2, max_seconds: 2}}
sinks:
  - {{name: am, type: alertmanager, url: "{alertmanager}", refresh_seconds: 5}}
""",
    )
    router = RouterProcess(router_settings, tmp_path / "router.log", sinks)
    routers.append(router)
    router.start()
    now = wall_ms()
    await produce(
        router_settings,
        [
            alert("e1", at=now),
            alert("e2", at=now + 1),  # same controller x campaign: same incident
            alert("e3", rule="R13", at=now + 2),  # another rule, same matter: same incident
        ],
    )

    store = _store(router_settings)
    try:
        await eventually(
            lambda: (
                len(store.list_incidents()) == 1
                and sum(i.alert_count for i in store.list_incidents()) == 3
            ),
            "the router opened 1 incident (2 rules) for 3 alerts",
            explain=router.tail,
        )
        (inc,) = store.list_incidents()
        assert {r.rule_id: r.alerts for r in inc.rules} == {"R2": 2, "R13": 1}

        def of_incident(found: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
            """The incident's Alertmanager alerts, by rule (one per rule it breaks)."""
            return {
                a["labels"]["rule"]: a
                for a in found or []
                if a["labels"].get("incident_id") == inc.incident_id
            }

        async def in_alertmanager() -> bool:
            found = await _get_json(f"{alertmanager}/api/v2/alerts")
            return set(of_incident(found)) == {"R2", "R13"}

        await eventually(
            in_alertmanager, "both rules of the incident are in Alertmanager", explain=router.tail
        )
        am = of_incident(await _get_json(f"{alertmanager}/api/v2/alerts"))
        assert am["R2"]["labels"] == {
            "alertname": "consentinel_R2",
            "rule": "R2",
            "severity": "critical",
            "controller": "broker-lists",
            "campaign": "politics-27",
            "incident_id": inc.incident_id,
        }
        assert am["R13"]["labels"]["alertname"] == "consentinel_R13"
        assert am["R2"]["annotations"]["incident_url"].endswith(f"/incidents/{inc.incident_id}")
        assert am["R2"]["annotations"]["rules"] == "R2, R13"
        assert am["R2"]["status"]["state"] == "active"

        await eventually(
            lambda: set(of_incident(_am_alerts_in(hook))) == {"R2", "R13"},
            "Alertmanager's receiver got both rules of the incident",
            explain=router.tail,
        )
        firing = of_incident(_am_alerts_in(hook))
        assert firing["R2"]["status"] == "firing"
        # one page per incident, keyed by the incident and one of its revisions: the three
        # alerts join it as 1, 2 or 3 revisions depending on how the router's polls cut
        # them, and Alertmanager sends whichever annotations it holds after group_wait
        key_incident, _, key_revision = firing["R2"]["annotations"]["idempotency_key"].rpartition(
            ":"
        )
        assert key_incident == inc.incident_id
        assert 1 <= int(key_revision) <= inc.revision

        # The console resolves through the same store API; the router tells Alertmanager.
        store.resolve(inc.incident_id, "ana (dpo)", "broker told to stop")
        await eventually(
            lambda: (
                {
                    a["labels"]["rule"]
                    for a in _am_alerts_in(hook)
                    if a["labels"]["incident_id"] == inc.incident_id and a["status"] == "resolved"
                }
                == {"R2", "R13"}
            ),
            "the resolution of both rules reached Alertmanager's receiver",
            explain=router.tail,
        )
        assert store.backlog() == {"am": 0}
    finally:
        store.close()

    metrics_url = router.metrics_url()
    assert metrics_url is not None, router.tail()
    async with aiohttp.ClientSession() as s, s.get(metrics_url) as resp:
        text = await resp.text()
    assert 'consentinel_sink_deliveries_total{outcome="delivered",sink="am"}' in text
    assert router.stop() == 0
    log = router.log()
    assert "sink am: AlertmanagerSink" in log and "router stopped" in log
    everything = log.encode() + b"".join(b for _, b in hook.received)
    assert privacy.raw_addresses(everything) == []


# -- 2. a sink down for a while: nothing lost, duplicates only as identical keys ------------


async def test_a_sink_down_for_a_while_loses_nothing(
    router_settings: Settings, hook: Hook, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    sinks = _write_sinks(
        tmp_path,
        f"""
retry: {{initial_seconds: 0.2, max_seconds: 2}}
sinks:
  - {{name: soc, type: webhook, url: "{hook.url}/hook", secret: "env:TEST_HOOK_SECRET"}}
""",
    )
    router = RouterProcess(
        router_settings, tmp_path / "router.log", sinks, {"TEST_HOOK_SECRET": HOOK_SECRET}
    )
    routers.append(router)
    router.start()
    now = wall_ms()
    controllers = [f"broker-{i}" for i in range(6)]
    await produce(
        router_settings,
        [alert(f"{c}-{n}", controller=c, at=now + n) for c in controllers for n in range(5)],
    )
    store = _store(router_settings)
    try:
        await eventually(
            lambda: sum(i.alert_count for i in store.list_incidents()) == 30,
            "30 alerts in 6 incidents",
            explain=router.tail,
        )
        incidents = store.list_incidents()
        assert len(incidents) == 6
        for inc in incidents[:2]:  # the console resolves two while the sink is down
            store.resolve(inc.incident_id, "ana (dpo)")
        expected = {f"{i.incident_id}:1" for i in incidents} | {
            f"{i.incident_id}:{i.revision + 1}" for i in incidents[:2]
        }
        await eventually(
            lambda: (
                store.backlog() == {"soc": 8}
                and all(item.attempts > 0 for item in store.pending("soc")[:1])
            ),
            "8 notifications wait, the sink being tried",
            explain=router.tail,
        )
        await asyncio.sleep(DOWN_S)  # the outage itself (not an assertion)
        assert store.backlog() == {"soc": 8}
        assert hook.received == []
        await hook.start()  # the sink is back
        await eventually(
            lambda: store.backlog() == {"soc": 0}, "the backlog drained", explain=router.tail
        )
    finally:
        store.close()

    keys = [h["Idempotency-Key"] for h, _ in hook.received]
    assert set(keys) == expected
    bodies: dict[str, set[bytes]] = {}
    for headers, body in hook.received:
        assert verify(
            HOOK_SECRET.encode(), body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
        )
        parsed = codec.loads(body)
        assert parsed["idempotency_key"] == headers["Idempotency-Key"]
        bodies.setdefault(parsed["idempotency_key"], set()).add(body)
    assert all(len(b) == 1 for b in bodies.values())  # a duplicate is the same key, same body
    order = [codec.loads(b)["kind"] for _, b in hook.received]
    first_resolved = order.index("resolved")
    assert set(order[:first_resolved]) == {"opened"}  # the sink saw them in outbox order
    kinds = {codec.loads(next(iter(b)))["kind"] for b in bodies.values()}
    assert kinds == {"opened", "resolved"}
    assert Counter(codec.loads(next(iter(b)))["kind"] for b in bodies.values()) == Counter(
        {"opened": 6, "resolved": 2}
    )
    log = router.log()
    assert "will retry" in log and "nothing is lost" in log and "delivers again" in log
    assert HOOK_SECRET not in log
    assert privacy.raw_addresses(log.encode()) == []


# -- 3. a router killed and started again: nothing lost, nothing duplicated ----------------


def _caught_up(settings: Settings) -> bool:
    """The router's group has committed every offset of the alerts topic (read without
    joining the group: ``committed`` only fetches the group's offsets)."""
    topic = settings.topic(topics.ALERTS)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.app_id}-router",
        enable_auto_commit=False,
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        ends = consumer.end_offsets(parts)
        committed = {tp: consumer.committed(tp) or 0 for tp in parts}
    finally:
        consumer.close()
    return bool(parts) and all(committed[tp] >= ends[tp] for tp in parts)


async def test_a_router_killed_and_restarted_loses_and_duplicates_nothing(
    router_settings: Settings, tmp_path: Path, routers: list[RouterProcess]
) -> None:
    now = wall_ms()
    keys = [("c-a", "R2"), ("c-b", "R2"), ("c-a", "R13"), ("c-c", "R5")]
    batch1 = [
        alert(f"{c}-{r}-{n}", controller=c, rule=r, at=now + n) for c, r in keys for n in range(5)
    ]
    batch2 = [
        alert(f"{c}-{r}-{n}", controller=c, rule=r, at=now + n)
        for c, r in keys
        for n in range(5, 10)
    ]
    first = RouterProcess(router_settings, tmp_path / "router-1.log")  # no sinks: console only
    routers.append(first)
    first.start()
    await produce(router_settings, batch1)
    store = _store(router_settings)
    try:
        await eventually(
            lambda: store.stats().alerts == 20, "the first batch is in", explain=first.tail
        )
        await produce(router_settings, batch2)
        first.kill()  # SIGKILL, maybe mid-batch
        corrections = [
            alert(
                b.usage_event_id.split(":")[1],
                controller=b.controller,
                rule=b.rule_id,
                at=b.detected_at_ms,
                status=AlertStatus.RESOLVED,
                revision=2,
            )
            for b in batch2[:2]
        ]
        await produce(router_settings, [*batch1, *batch2[:7], *corrections])  # replays too
        second = RouterProcess(router_settings, tmp_path / "router-2.log")
        routers.append(second)
        second.start()
        await eventually(
            lambda: _caught_up(router_settings),
            "the restarted router caught up",
            explain=second.tail,
        )
        incidents = store.list_incidents()
        # one incident per controller x campaign: c-a's R2 and R13 are one matter
        assert len(incidents) == 3
        assert sorted(i.alert_count for i in incidents) == [10, 10, 20]
        (c_a,) = [i for i in incidents if i.controller == "c-a"]
        assert {r.rule_id: r.alerts for r in c_a.rules} == {"R2": 10, "R13": 10}
        assert sum(i.resolved_alert_count for i in incidents) == 2
        assert all(i.status is IncidentStatus.OPEN for i in incidents)
        assert store.stats().alerts == 40
        feed = store.changes_since(0, limit=10_000)
        assert Counter(c.kind.value for c in feed) == Counter(
            {"opened": 3, "alert_added": 37, "alert_resolved": 2}
        )
        assert len({(c.incident_id, c.revision) for c in feed}) == len(feed)
        assert second.stop() == 0
    finally:
        store.close()
    assert "no sinks configured" in first.log()
