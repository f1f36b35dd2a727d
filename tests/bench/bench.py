"""``make bench``: consentinel's benchmarks, each side by side with its reference, in one run.

Checker (issue "The core"): for each subject count, the same preloaded usage topic is read
by (a) a bare aiokafka consumer with orjson and a dict lookup (the ceiling) and (b) the
real worker; then (c) open-loop latency at half the drain rate and (d) peak RSS and state
on disk. Ingest (issue "Connectors"): the real ingest server against a bare aiohttp +
aiokafka reference, for single-event posts and batched SendGrid posts.

Options: --subjects 100000,1000000  --usages 2000000  --quick (a small smoke run)
         --only checker|ingest
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import ceiling
import checker
import dataset
from common import mib, table
from consentinel.streams import topics_admin
from consentinel.streams.events.settings import Settings


def checker_section(
    bootstrap: str, subject_counts: list[int], usages: int, drain_cap: float
) -> None:
    rows = []
    for subjects in subject_counts:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        home = Path(tempfile.mkdtemp(prefix="consentinel-bench-"))
        settings = Settings.from_env(
            {
                "CONSENTINEL_HOME": str(home),
                "CONSENTINEL_TOPIC_PREFIX": prefix,
                "CONSENTINEL_BOOTSTRAP_SERVERS": bootstrap,
                "CONSENTINEL_PARTITIONS": "6",
            }
        )
        with open(os.devnull, "w") as sink:
            topics_admin.create(settings, out=sink)
        print(f"\n[{subjects:,} subjects] preloading consent…", flush=True)
        t = dataset.preload_registry_and_consent(bootstrap, prefix, subjects)
        print(
            f"  {subjects:,} consent events in {t:.1f} s; the worker builds its ledger…", flush=True
        )
        produced = {}

        def produce_usage(
            prefix: str = prefix, subjects: int = subjects, produced=produced
        ) -> None:
            print(f"  preloading {usages:,} usage events…", flush=True)
            produced["s"] = dataset.preload_usage(bootstrap, prefix, subjects, usages)
            print(f"  done in {produced['s']:.1f} s; draining with the worker…", flush=True)

        fig = checker.run(
            bootstrap,
            prefix,
            home,
            subjects,
            usages,
            home / "logs",
            produce_usage,
            drain_cap_s=drain_cap,
        )
        print("  ceiling: bare aiokafka consumer + orjson + dict lookup…", flush=True)
        ceil = ceiling.run(bootstrap, prefix, subjects, usages)
        ratio = fig.drain_rate / ceil["rate"] if ceil["rate"] else 0.0
        rows.append(
            [
                f"{subjects:,}",
                f"{ceil['rate']:,.0f}",
                f"{fig.drain_rate:,.0f}",
                f"{ratio:.3f}",
                f"{fig.consent_rate:,.0f}",
                f"{fig.latency_rate:,.0f}",
                f"{fig.p50_ms:,.0f}",
                f"{fig.p99_ms:,.0f}",
                mib(fig.peak_rss),
                mib(fig.state_bytes),
            ]
        )
        for note in fig.notes:
            print(f"  note: {note}")
    print(
        "\nChecker vs ceiling (events/s; latency in ms at the open-loop rate; "
        "6 partitions, one worker)"
    )
    print(
        table(
            rows,
            [
                "subjects",
                "ceiling ev/s",
                "checker ev/s",
                "ratio",
                "ledger build ev/s",
                "open-loop ev/s",
                "p50 ms",
                "p99 ms",
                "peak RSS",
                "state on disk",
            ],
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", default="100000,1000000")
    parser.add_argument("--usages", type=int, default=2_000_000)
    parser.add_argument(
        "--drain-cap", type=float, default=150.0, help="seconds of drain measured at most"
    )
    parser.add_argument("--quick", action="store_true", help="10k subjects, 100k usages")
    parser.add_argument("--only", choices=("checker", "ingest"))
    args = parser.parse_args()
    bootstrap = os.environ.get("CONSENTINEL_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    subjects = [int(s) for s in args.subjects.split(",")]
    usages = args.usages
    if args.quick:
        subjects, usages = [10_000], 100_000
    started = time.monotonic()
    if args.only in (None, "checker"):
        checker_section(bootstrap, subjects, usages, args.drain_cap)
    if args.only in (None, "ingest"):
        import ingest

        ingest.section(bootstrap, quick=args.quick)
    print(f"\nbench finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
