"""Bootstrap (issue #9 item 4): a consent export of N lines imported with ``consentinel
import``, and the time until a worker holds every consent in its ledger ("judged-ready").

A Mailchimp audience export (``Email Address``, ``OPTIN_TIME``, ``CONFIRM_TIME``, ...; one
double opt-in grant per row) goes through the ``mailchimp`` connector's file import while one
worker, already started and ready, builds its ledger from the consent topic. The clock starts
when the import starts and stops when the worker's committed offsets on the consent topic
reach the topic's end: every consent is then in the ledger (the worker commits a record only
once its state is written). Printed: import lines/s, ledger consents/s, the total, the
worker's peak RSS and its state on disk.

``--import-only``: the import alone (no worker), for the import's own rate and CPU per line
(the import process and its mapping workers). ``--import-jobs N`` passes ``--jobs N`` to
the import (default: its own, the CPUs up to 4). ``--import-profile``: the import process
runs under cProfile and the top of its profile is printed (with ``--import-jobs 0`` the
mapping runs in that process, so its whole path per line shows).
"""

from __future__ import annotations

import io
import pstats
import resource
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
    import_cpu_s: float = 0.0  # the import process and its workers (user + system)
    import_only: bool = False
    jobs: str = "default"
    profile: str = ""


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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(
    bootstrap: str,
    lines: int,
    *,
    import_only: bool = False,
    jobs: int | None = None,
    profile: bool = False,
) -> BootstrapFigures:
    fig = BootstrapFigures(lines, import_only=import_only)
    fig.jobs = "default" if jobs is None else str(jobs)
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
    worker = None if import_only else Proc("bootstrap-worker", ["worker"], env, logs)
    deadline = time.monotonic() + 180
    while worker is not None and not _ready(metrics_port):
        if not worker.alive() or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"the worker did not get ready:\n{worker.tail()}")
        time.sleep(0.5)

    print("[bootstrap] " + ("" if worker is None else "worker ready; ") + "importing…", flush=True)
    prof = home / "import.prof"
    argv = [sys.executable]
    if profile:
        argv += ["-m", "cProfile", "-o", str(prof)]
    argv += ["-m", "consentinel.streams.cli", "import", str(export)]
    argv += ["--connector", "mailchimp-bench", "--config", str(conf)]
    if jobs is not None:
        argv += ["--jobs", str(jobs)]
    cpu = _children_cpu()
    started = time.monotonic()
    imported = subprocess.run(argv, env=env, capture_output=True, text=True)
    fig.import_s = time.monotonic() - started
    fig.import_cpu_s = _children_cpu() - cpu
    if imported.returncode != 0:
        if worker is not None:
            worker.stop()
        raise RuntimeError(f"the import failed:\n{imported.stderr[-3000:]}")
    if profile:
        out = io.StringIO()
        pstats.Stats(str(prof), stream=out).sort_stats("tottime").print_stats(25)
        fig.profile = out.getvalue()
    consent_topic = prefix + topics.CONSENT
    fig.consents = end_offsets(bootstrap, consent_topic)
    print(
        f"[bootstrap] imported in {fig.import_s:.1f} s ({lines / fig.import_s:,.0f} lines/s); "
        f"{fig.consents:,} consent events on the topic"
        + ("" if worker is None else "; waiting for the ledger…"),
        flush=True,
    )
    if worker is None:
        return fig
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
    if fig.import_only:
        return report_import([fig])
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


def report_import(figs: list[BootstrapFigures]) -> str:
    """The import alone: rate and CPU per line (import process and workers together)."""
    rows = [
        [
            f"{f.lines:,}",
            f.jobs,
            f"{f.import_s:.1f} s",
            f"{f.lines / f.import_s:,.0f}" if f.import_s else "-",
            f"{f.import_cpu_s / f.lines * 1e6:,.0f}" if f.lines else "-",
            f"{f.consents:,}",
        ]
        for f in figs
    ]
    header = ["export lines", "--jobs", "import", "lines/s", "CPU µs/line", "consent events"]
    text = "\nImport alone (consentinel import, no worker):\n" + table(rows, header)
    for f in figs:
        if f.profile:
            text += f"\n\ncProfile of the import process (--jobs {f.jobs}):\n{f.profile}"
    return text
