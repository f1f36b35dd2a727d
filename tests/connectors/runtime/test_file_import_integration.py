"""A 100,000-line CSV through `consentinel import` on the real broker, killed and re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from consentinel.connectors.declarative import EXAMPLES
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import DeadLetter

pytestmark = pytest.mark.integration

LINES = 100_000
BAD_EVERY = 997  # ~100 lines with an address that is not one


def _write_csv(path: Path) -> tuple[int, set[int]]:
    bad: set[int] = set()
    with path.open("w") as fh:
        fh.write("RecordType,MessageID,Recipient,DeliveredAt,Tag\n")
        for i in range(LINES):
            if i % BAD_EVERY == 0:
                bad.add(i + 2)  # physical line (header is line 1)
                fh.write(f"Delivery,m{i},not-an-address-{i},2026-01-05T16:33:54Z,t\n")
            else:
                fh.write(f"Delivery,m{i},user{i}@example.org,2026-01-05T16:33:54Z,t\n")
    return LINES - len(bad), bad


def _env(settings, home: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(home),
        "CONSENTINEL_PEPPER": "test-pepper-0123456789abcdef",
        "CONSENTINEL_TOKEN": "test-token-0123456789abcdef",
        "CONSENTINEL_TOPIC_PREFIX": settings.topic_prefix,
        "CONSENTINEL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PM_USER": "u",
        "PM_PASSWORD": "p",
    }


def test_large_import_killed_and_resumed(kafka_settings, topic_reader, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    drop = tmp_path / "drop.csv"
    good, bad_lines = _write_csv(drop)
    conf = tmp_path / "connectors.yaml"
    conf.write_text(
        f"- name: pm-import\n  type: declarative\n  mapping: {EXAMPLES / 'postmark.yaml'}\n"
        f"  controller: acme\n  secrets: {{username: env:PM_USER, password: env:PM_PASSWORD}}\n"
    )
    home = tmp_path / "home"
    cmd = [
        sys.executable,
        "-m",
        "consentinel.streams.cli",
        "import",
        str(drop),
        "--connector",
        "pm-import",
        "--config",
        str(conf),
        "--batch",
        "2000",
        "--jobs",
        "2",
    ]
    env = _env(kafka_settings, home)

    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    progressed = 0
    while time.monotonic() < deadline and first.poll() is None:
        for cp in (home / "imports").glob("*.json"):
            try:
                progressed = int(codec.loads(cp.read_bytes())["record"])
            except Exception:
                progressed = 0
        if progressed >= 20_000:
            break
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before it could be interrupted"
    workers = psutil.Process(first.pid).children()
    assert len(workers) == 2, "the import maps in two worker processes"
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert 20_000 <= progressed < LINES
    _, alive = psutil.wait_procs(workers, timeout=30)  # a bound, not a speed claim
    assert not alive, "the workers of the killed import are gone with it"

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming after record" in second.stderr
    assert "bad_email" in second.stderr

    usage = topic_reader(kafka_settings, topics.USAGE, timeout=60)
    event_ids = {codec.loads(v)["event_id"] for _, v, _ in usage}
    assert len(event_ids) == good, "every good line lands, once per id"
    assert len(usage) >= good
    letters = [
        codec.decode(DeadLetter, v) for _, v, _ in topic_reader(kafka_settings, topics.DEADLETTER)
    ]
    assert {dl.attributes["line"] for dl in letters} == bad_lines
    assert {dl.reason_code for dl in letters} == {"bad_email"}
    assert all(b"@example.org" not in v for _, v, _ in usage)
