"""Fixtures of the hostile suite: the real ingest server and console as subprocesses, on the real
broker with a unique topic prefix, and the classes x outcomes table printed at the end.

The ingest server serves seven built-in connectors with test secrets (``corpus.CONFIG``); the
console serves an incident store seeded with alerts whose text fields are CSV-injection probes.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hostile_corpus as corpus  # tests/hostile is on pytest's pythonpath
import hostile_harness as harness
import pytest
from topicnames import fresh_prefix

ROWS = harness.ROWS
CSV_PROBES = corpus.CSV_PROBES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("hostile-input suite: classes x outcomes")
    head = (
        f"{'class':<26}{'reqs':>6}{'2xx/3xx':>9}{'4xx':>6}{'5xx':>6}{'no ans':>8}"
        f"{'dead l.':>9}{'events':>8}{'alive':>7}{'peak RSS':>10}  verdict"
    )
    tr.write_line(head)
    tr.write_line("-" * len(head))
    for row in ROWS.values():
        verdict = "ok" if not row.failures else f"FAIL ({len(row.failures)})"
        tr.write_line(
            f"{row.name:<26}{row.requests:>6}{row.ok:>9}{row.client_errors:>6}"
            f"{row.server_errors:>6}{row.no_answer:>8}{row.dead_letters:>9}{row.events:>8}"
            f"{'yes' if row.alive else 'NO':>7}{row.peak_rss_mb:>8.0f}MB  {verdict}"
        )
    for row in ROWS.values():
        for failure in row.failures[:8]:
            tr.write_line(f"  {row.name}: {failure}")
        if len(row.failures) > 8:
            tr.write_line(f"  {row.name}: ... and {len(row.failures) - 8} more")


@dataclass
class Stack:
    ingest: Any
    console: Any
    topics: Any
    token: str
    incident_id: str
    baseline_rss: int
    logs: Path
    env: dict[str, str]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _seed_store(path: Path) -> None:
    """Alerts whose summary, purpose and rule source are CSV-injection probes, all of one
    incident (one controller and campaign: the default grouping), so one export holds them."""
    from consentinel.streams.alerts.store import IncidentStore
    from consentinel.streams.events import ids
    from consentinel.streams.events.records import Alert, Channel, Severity

    alerts = []
    for n, probe in enumerate(CSV_PROBES):
        usage = ids.event_id("hostile", "csv", n)
        alerts.append(
            Alert(
                alert_id=ids.alert_id(usage, "R2"),
                rule_id="R2",
                rule_source=probe,
                severity=Severity.CRITICAL,
                incident_key=ids.incident_key("hostile-controller", "csv-probes", "R2"),
                usage_event_id=usage,
                subject_key="sk-" + uuid.uuid4().hex,
                hint="a***@e***.org",
                controller="hostile-controller",
                channel=Channel.EMAIL,
                summary=probe,
                occurred_at_ms=1_780_000_000_000 + n,
                detected_at_ms=1_780_000_000_000 + n * 1000,
                campaign_id="csv-probes",
                purpose_used=probe,
            )
        )
    store = IncidentStore(path)
    try:
        store.ingest_many(alerts, 1_780_000_100_000)
    finally:
        store.close()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from consentinel.streams import topics_admin
    from consentinel.streams.events.settings import Settings

    base = tmp_path_factory.mktemp("hostile")
    logs = base / "logs"
    logs.mkdir()
    prefix = fresh_prefix("hostile")
    token = "hostile-console-token-" + uuid.uuid4().hex
    ingest_port, console_port = harness.free_port(), harness.free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(base / "home"),
        "CONSENTINEL_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CONSENTINEL_TOPIC_PREFIX": prefix,
        "CONSENTINEL_PEPPER": "hostile-pepper-" + uuid.uuid4().hex,
        "CONSENTINEL_TOKEN": token,
        "CONSENTINEL_INGEST_PORT": str(ingest_port),
        "CONSENTINEL_CONSOLE_PORT": str(console_port),
        "CONSENTINEL_LOG_LEVEL": "info",
        **corpus.SECRETS,
    }
    with open(os.devnull, "w") as sink:
        topics_admin.create(Settings.from_env(env), out=sink)
    config = base / "connectors.yaml"
    config.write_text(corpus.CONFIG)
    store = base / "incidents.db"
    _seed_store(store)

    ingest = harness.start(
        "ingest", ["ingest", "--config", str(config), "--host", "127.0.0.1",
                   "--port", str(ingest_port)], env, logs, ingest_port,
    )  # fmt: skip
    console = harness.start(
        "console", ["console", "--host", "127.0.0.1", "--port", str(console_port), "--store",
                    str(store), "--metrics-url", f"http://127.0.0.1:{ingest_port}/metrics"],
        env, logs, console_port,
    )  # fmt: skip
    topics = None
    try:
        for server in (ingest, console):
            harness.wait_until(
                lambda s=server: _port_open(s.port) or not s.alive(), f"{server.name} port", 60
            )
            assert server.alive(), f"{server.name} exited:\n{server.log()[-3000:]}"
        topics = harness.Topics(kafka_bootstrap, prefix)
        reply = harness.send(
            console_port, "GET", "/api/incidents", headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status == 200, (reply.status, reply.body[:300])
        incidents = corpus.codec.loads(reply.body)["incidents"]
        assert incidents, "the seeded incident is missing from the console"
        time.sleep(0.5)
        yield Stack(
            ingest=ingest,
            console=console,
            topics=topics,
            token=token,
            incident_id=incidents[0]["incident_id"],
            baseline_rss=ingest.rss(),
            logs=logs,
            env=env,
        )
    finally:
        ingest.stop()
        console.stop()
        if topics is not None:
            topics.close()
