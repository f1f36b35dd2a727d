"""Nothing answered 2xx is lost: a private broker stopped for 20 s or more under a steady load of
signed posts, the ingest server (a ``consentinel ingest`` process) SIGKILLed during the
outage and started again, then the broker started again. Every event answered 2xx is on
its topic afterwards, by id; a duplicate is only ever the same id again.

The broker is our own (``deploy/kafka.sh`` on another port, its own data directory),
never the shared one on 9092.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.declarative import EXAMPLES
from consentinel.streams.events import codec, topics
from consentinel.streams.events.records import UsageEvent
from topicnames import fresh_prefix

pytestmark = pytest.mark.integration

AUTH = {"Authorization": basic_auth_header("postmark", "pm-secret-0123456789")}
OPEN = (
    '{"RecordType":"Open","MessageStream":"outbound","MessageID":"%s","Metadata":'
    '{"purpose":"newsletter"},"ReceivedAt":"2026-01-05T17:00:01Z","Tag":"%s",'
    '"Recipient":"reader%d@example.org"}'
)
# The outage lasts at least this long: longer than the spool forwarder's backoff takes to
# reach its 5 s cap (0.5 + 1 + 2 + 4 s), so forwarding fails several times before it works.
OUTAGE_S = 20.0
STEP = 20  # posts answered 2xx in each phase (before, during the outage, after the restart)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, body: bytes | None = None, timeout: float = 15) -> tuple[int, bytes]:
    """(status, body) of a GET (or a signed POST when ``body`` is given); 0 when unreachable."""
    req = urllib.request.Request(url, data=body, headers=AUTH if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, TimeoutError):
        return 0, b""


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.05)


class Ingest:
    """A ``consentinel ingest`` process of our own."""

    def __init__(self, env: dict[str, str], args: list[str], log: Path, port: int) -> None:
        self.env, self.args, self.log, self.port = env, args, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consentinel.streams.cli", "ingest", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"ingest exited:\n{self.log.read_text()[-3000:]}"
            if _http(self.url("/healthz"), timeout=2)[0] == 200:
                return
            time.sleep(0.3)
        pytest.fail(f"ingest did not answer /healthz:\n{self.log.read_text()[-3000:]}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Load(threading.Thread):
    """Distinct signed posts, one after another; remembers which were answered 2xx."""

    def __init__(self, ingest: Ingest) -> None:
        super().__init__(daemon=True)
        self.ingest = ingest
        self.accepted: list[str] = []
        self.statuses: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.done.is_set():
            i += 1
            tag = f"load-{i}"
            body = OPEN % (f"00000000-0000-0000-0000-{i:012d}", tag, i)
            status, _ = _http(self.ingest.url("/hooks/postmark-main"), body.encode())
            if status == 0:  # the server is down (killed): not answered, not counted
                time.sleep(0.2)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                self.accepted.append(tag)
            time.sleep(0.05)


def test_outage_and_sigkill_lose_nothing_answered_2xx(
    spool_broker, make_settings, topic_reader, tmp_path
):  # type: ignore[no-untyped-def]
    from consentinel.streams import topics_admin

    settings = make_settings(
        topic_prefix=fresh_prefix("spool"), bootstrap_servers=spool_broker.bootstrap
    )
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    cfg = tmp_path / "connectors.yaml"
    cfg.write_text(
        "- name: postmark-main\n  type: declarative\n"
        f"  mapping: {EXAMPLES / 'postmark.yaml'}\n  controller: acme-sas\n"
        "  purpose_map: {newsletter: marketing}\n"
        "  secrets: {username: env:PM_USER, password: env:PM_PASSWORD}\n"
    )
    port = _free_port()
    env = {
        **os.environ,
        "CONSENTINEL_ENV": "test",
        "CONSENTINEL_HOME": str(tmp_path / "home"),
        "CONSENTINEL_BOOTSTRAP_SERVERS": spool_broker.bootstrap,
        "CONSENTINEL_TOPIC_PREFIX": settings.topic_prefix,
        "CONSENTINEL_PEPPER": "test-pepper-0123456789abcdef",
        "CONSENTINEL_TOKEN": "test-token-0123456789abcdef",
        "PM_USER": "postmark",
        "PM_PASSWORD": "pm-secret-0123456789",
    }
    args = ["--config", str(cfg), "--port", str(port), "--ack-wait", "2"]
    args += ["--spool-dir", str(tmp_path / "spool")]
    ingest = Ingest(env, args, tmp_path / "ingest.log", port)
    ingest.start()
    load = Load(ingest)
    load.start()
    try:
        _wait_for(lambda: len(load.accepted) >= STEP, "posts answered 2xx before the outage")
        before_outage = len(load.accepted)
        spool_broker.stop()
        outage_started = time.monotonic()
        _wait_for(
            lambda: len(load.accepted) >= before_outage + STEP,
            "posts answered 2xx (spooled) during the outage",
        )
        in_outage = len(load.accepted) - before_outage
        ingest.kill()  # SIGKILL, with spooled requests not yet forwarded
        ingest.start()
        restarted_at = len(load.accepted)
        _wait_for(
            lambda: len(load.accepted) >= restarted_at + STEP,
            "posts answered 2xx by the restarted server during the outage",
        )
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        spool_broker.start()
        back_at = len(load.accepted)
        _wait_for(
            lambda: len(load.accepted) >= back_at + STEP,
            "posts answered 2xx after the broker came back",
        )
        load.done.set()
        load.join(timeout=30)
        # the spool drains to the broker
        deadline = time.monotonic() + 120
        spooled = -1
        while time.monotonic() < deadline:
            status, answer = _http(ingest.url("/healthz"), timeout=5)
            spooled = codec.loads(answer)["spooled"] if status == 200 else -1
            if spooled == 0:
                break
            time.sleep(0.2)
        assert spooled == 0, f"the spool still holds {spooled} record(s) after 120 s"
    finally:
        load.done.set()
        ingest.stop()

    assert before_outage > 0, f"nothing accepted before the outage: {load.statuses}"
    assert in_outage > 0, f"nothing answered 2xx during the outage: {load.statuses}"
    events = [codec.decode(UsageEvent, v) for _, v, _ in topic_reader(settings, topics.USAGE)]
    ids_by_tag: dict[str, set[str]] = {}
    for e in events:
        ids_by_tag.setdefault(e.campaign_id or "", set()).add(e.event_id)
    missing = [tag for tag in load.accepted if tag not in ids_by_tag]
    assert not missing, (
        f"{len(missing)} of {len(load.accepted)} events answered 2xx are not on the topic "
        f"(first: {missing[:5]}); statuses {load.statuses}"
    )
    different = {tag: ids for tag, ids in ids_by_tag.items() if len(ids) != 1}
    assert not different, f"one post gave different event ids: {list(different.items())[:3]}"
    print(
        f"\nspool outage test: {len(load.accepted)} answered 2xx ({in_outage} during the "
        f"first half of the outage), {len(events)} records on the topic, "
        f"{len(events) - len(ids_by_tag)} duplicate(s) by id; statuses {load.statuses}"
    )
