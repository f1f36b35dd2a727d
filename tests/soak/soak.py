"""``make soak``: SIGKILL the worker, the ingest server and the alert router in turn, under a
steady signed load, on the local broker; then print what was accepted and what came out.

    .venv/bin/python tests/soak/soak.py [--kills 20] [--interval 4]

Each round SIGKILLs one process (worker, ingest, router, worker, ...), restarts it and waits
until it serves again. The load (tests/soak/soak_harness.py) retries 503s and refused connections
as platforms do, so only requests answered 2xx count as accepted. At the end it prints, per
kind, expected vs found and duplicate records by id: usage and consent events (every event
answered 2xx must be on its topic), verdicts and alerts (the pure policy over the accepted
events says which are owed), and the alerts in the router's store.

Not part of ``make test``: with the default 20 kills of each it runs for several minutes.
Exit status 0 when nothing is missing, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from consentinel.streams.events.settings import Settings

HERE = Path(__file__).resolve().parent


# run as a program: the harness beside it, the worker tests' helpers it uses
sys.path[:0] = [str(HERE), str(HERE.parent / "streams"), str(HERE.parent)]
import soak_harness as H  # noqa: E402
from topicnames import fresh_prefix  # noqa: E402


def _router_alerts(home: Path) -> set[str]:
    """Alert ids in the router's incident store (any SQLite file under its home)."""
    ids: set[str] = set()
    for path in home.rglob("*"):
        if path.suffix not in (".db", ".sqlite", ".sqlite3"):
            continue
        try:
            db = sqlite3.connect(path, timeout=10)  # WAL: reading beside the router is fine
        except sqlite3.Error:
            continue
        try:
            ids |= {row[0] for row in db.execute("SELECT alert_id FROM alerts")}
        except sqlite3.Error:
            pass  # not the store, or the router is creating it
        finally:
            db.close()
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tests/soak/soak.py", description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs of EACH process (default 20)")
    p.add_argument("--interval", type=float, default=4.0, help="seconds of load between kills")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    args = p.parse_args(argv)

    run = uuid.uuid4().hex[:8]
    home = Path(tempfile.mkdtemp(prefix=f"consentinel-soak-{run}-"))
    settings = Settings.from_env(
        {
            "CONSENTINEL_ENV": "test",
            "CONSENTINEL_HOME": str(home / "home"),
            "CONSENTINEL_BOOTSTRAP_SERVERS": args.bootstrap,
            "CONSENTINEL_TOPIC_PREFIX": fresh_prefix("soak"),
            "CONSENTINEL_APP_ID": f"consentinel-soak{run}",
            "CONSENTINEL_PARTITIONS": "3",
            "CONSENTINEL_GRACE_SECONDS": "30",
            "CONSENTINEL_PEPPER": "soak-pepper-" + uuid.uuid4().hex,
            "CONSENTINEL_TOKEN": "soak-token-" + uuid.uuid4().hex,
        }
    )
    print(f"soak {run}: topics prefix {settings.topic_prefix}, logs in {home}", flush=True)
    H.create_topics(settings, 1)
    worker = H.worker(settings, home, 1)
    ingest, url = H.ingest(settings, home)
    router = H.router(settings, home)
    procs = {"worker": worker, "ingest": ingest, "router": router}
    ready = {
        "worker": lambda: H.worker_judging(worker),
        "ingest": lambda: H.ingest_listening(ingest),
        "router": lambda: router.alive() and "router consuming" in router.since_last_start(),
    }
    for proc in procs.values():
        proc.start()
    load = None
    t0 = time.monotonic()
    try:
        for name in procs:
            H.wait_for(ready[name], 180, f"the {name} to be ready")
        load = H.Load(settings, url, run)
        load.start(threads=2, pace_s=0.02)
        order = ["worker", "ingest", "router"]
        for i in range(args.kills * len(order)):
            time.sleep(args.interval)
            name = order[i % len(order)]
            procs[name].kill()
            procs[name].start()
            H.wait_for(ready[name], 180, f"the {name} to be ready after kill {i // 3 + 1}")
            print(
                f"[{time.monotonic() - t0:6.0f}s] SIGKILL {name} #{i // 3 + 1}: "
                f"{load.accepted()} events accepted so far",
                flush=True,
            )
        time.sleep(args.interval)
        load.stop()
        exp = H.expected(settings, load)
        found = H.Found.read(settings)

        def complete() -> bool:
            nonlocal found
            found = H.Found.read(settings)
            return exp.verdict_ids <= set(found.verdicts) and exp.alert_ids <= set(found.alerts)

        try:
            H.wait_for(complete, 300, "the verdicts and alerts the accepted events owe", 5.0)
        except AssertionError as exc:
            print(f"soak: {exc}")
        in_router: set[str] = set()
        try:
            H.wait_for(lambda: exp.alert_ids <= _router_alerts(home), 120, "the router", 3.0)
        except AssertionError as exc:
            print(f"soak: {exc}")
        in_router = _router_alerts(home)
        print(f"\nsoak {run}: {args.kills} SIGKILLs each of worker, ingest, router")
        print(f"requests by final status: {dict(sorted(load.tally.requests.items()))}")
        print(f"retries (503, 429, no answer): {load.tally.retries}; gave up: {load.tally.gave_up}")
        missing = H.report(exp, found)
        lost_in_router = len(exp.alert_ids - in_router)
        print(
            f"{'router store':16}{len(exp.alert_ids):>10}"
            f"{len(exp.alert_ids & in_router):>10}{lost_in_router:>10}"
        )
        return 0 if not any(missing.values()) and not lost_in_router else 1
    finally:
        if load is not None:
            load.stop()
        for proc in procs.values():
            proc.stop()


if __name__ == "__main__":
    sys.exit(main())
