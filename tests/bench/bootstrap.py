"""Bootstrap (issue #9 item 4): a consent export of N lines imported with ``consentinel
import``, and the time until a worker holds every consent in its ledger ("judged-ready").

A Mailchimp audience export (``Email Address``, ``OPTIN_TIME``, ``CONFIRM_TIME``, ...; one
double opt-in grant per row) goes through the ``mailchimp`` connector's file import while one
worker, already started and ready, builds its ledger from the consent topic. The clock starts
when the import starts and stops when the worker's committed offsets on the consent topic
reach the topic's end: every consent is then in the ledger (the worker commits a record only
once its state is written). Printed: import lines/s, ledger consents/s, the total, the
worker's peak RSS and its state on disk.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import benchtopics
from checker import end_offsets, wait_committed
from common import Proc, dir_size, env_for, free_port, mib, table
from consentinel.streams.events import topics
from kafka.admin import KafkaAdminClient

LIST_ID = "b7c1d2e3f4"


@dataclass
class BootstrapFigures:
    lines: int
    import_s: float = 0.0
    consents: int = 0
    ready_s: float = 0.0
    peak_rss: int = 0
    state_bytes: int = 0
    ready: bool = False


def write_export(path: Path, lines: int) -> None:
    """An audience export as Mailchimp writes it: one subscribed member per row."""
    with path.open("w") as fh:
        fh.write("Email Address,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LEID,LIST_ID\n")
        for i in range(lines):
            day = 1 + i % 28
            fh.write(
                f"reader{i}@example.org,2026-03-{day:02d} 08:{i % 60:02d}:00,192.0.2.{i % 250},"
                f"2026-03-{day:02d} 08:{i % 60:02d}:30,192.0.2.{i % 250},{i},{LIST_ID}\n"
            )


def _ready(port: int) -> bool:
    """The worker's readiness: /healthz answers 200 once its tables are recovered."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def run(bootstrap: str, lines: int) -> BootstrapFigures:
    fig = BootstrapFigures(lines)
    prefix = benchtopics.fresh_prefix("benchbs")
    home = Path(tempfile.mkdtemp(prefix="consentinel-bootstrap-"))
    logs = home / "logs"
    metrics_port = free_port()
    env = env_for(
        prefix,
        home,
        bootstrap,
        partitions=6,
        metrics_port=metrics_port,
        worker_port=free_port(),
        pepper="bench-pepper-0123456789abcdef",
    )
    env["MAILCHIMP_TOKEN"] = "bench-token"
    subprocess.run(
        [sys.executable, "-m", "consentinel.streams.cli", "topics", "create"],
        env=env,
        check=True,
        capture_output=True,
    )
    export = home / "audience.csv"
    print(f"\n[bootstrap] writing a {lines:,}-line audience export…", flush=True)
    write_export(export, lines)
    conf = home / "connectors.yaml"
    conf.write_text(
        "- name: mailchimp-bench\n  type: mailchimp\n  controller: daily-news-sa\n"
        f"  purpose_map: {{{LIST_ID}: newsletter}}\n  options: {{timezone: UTC}}\n"
        "  secrets: {token: env:MAILCHIMP_TOKEN}\n"
    )
    worker = Proc("bootstrap-worker", ["worker"], env, logs)
    deadline = time.monotonic() + 180
    while not _ready(metrics_port):
        if not worker.alive() or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"the worker did not get ready:\n{worker.tail()}")
        time.sleep(0.5)

    print("[bootstrap] worker ready; importing…", flush=True)
    started = time.monotonic()
    imported = subprocess.run(
        [
            sys.executable,
            "-m",
            "consentinel.streams.cli",
            "import",
            str(export),
            "--connector",
            "mailchimp-bench",
            "--config",
            str(conf),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    fig.import_s = time.monotonic() - started
    if imported.returncode != 0:
        worker.stop()
        raise RuntimeError(f"the import failed:\n{imported.stderr[-3000:]}")
    consent_topic = prefix + topics.CONSENT
    fig.consents = end_offsets(bootstrap, consent_topic)
    print(
        f"[bootstrap] imported in {fig.import_s:.1f} s ({lines / fig.import_s:,.0f} lines/s); "
        f"{fig.consents:,} consent events on the topic; waiting for the ledger…",
        flush=True,
    )
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    group = f"{prefix}consentinel"
    fig.ready = wait_committed(admin, group, consent_topic, fig.consents, worker, timeout_s=1800)
    fig.ready_s = time.monotonic() - started
    admin.close()
    worker.stop()
    fig.peak_rss = worker.peak_rss
    fig.state_bytes = dir_size(home / "state" / "faust")
    return fig


def report(fig: BootstrapFigures) -> str:
    ledger = fig.consents / fig.ready_s if fig.ready and fig.ready_s else 0.0
    rows = [
        [
            f"{fig.lines:,}",
            f"{fig.lines / fig.import_s:,.0f}" if fig.import_s else "-",
            f"{ledger:,.0f}",
            f"{fig.ready_s:,.0f} s" if fig.ready else "not ready in 30 min",
            mib(fig.peak_rss),
            mib(fig.state_bytes),
        ]
    ]
    header = [
        "export lines",
        "import lines/s",
        "ledger consents/s",
        "import start -> judged-ready",
        "worker peak RSS",
        "state on disk",
    ]
    return "\nBootstrap (import while one worker builds its ledger):\n" + table(rows, header)
