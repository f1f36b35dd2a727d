"""``make bench``: consentinel's benchmarks, each side by side with its reference, in one run.

Checker (issue "The core"): for each subject count, the same preloaded usage topic is read
by (a) bare aiokafka consumers with orjson and a dict lookup (the ceilings: nothing
produced, and one verdict produced per use) and (b) the real worker; then (c) open-loop
latency at half the drain rate and (d) peak RSS and state on disk. (e) Peers (issue #9):
the same job written plainly with Quix Streams and as a plain Faust agent, on the same
topics in the same run, with the ratios consentinel / peer and consentinel / ceiling, and
the agreement of every system's decisions on the uses they all handled. Ingest (issue
"Connectors"): the real ingest server against a bare aiohttp + aiokafka reference.
Scale-out (``--scaleout``, issue #9): two worker processes in one group against one, and
the time from a SIGKILL to the first verdict on a moved partition.

``make bench`` runs this in the bench's own environment (build/bench-venv), where the peers
are installed; consentinel's own dependencies never include them.

Bootstrap (``--bootstrap``, issue #9): a 1,000,000-line consent export through ``consentinel
import`` while a worker builds its ledger, timed to judged-ready.

Options: --subjects 100000[,1000000,10000000]  --usages 200000  --quick (a small smoke run)
         --peers quix,faust|none  --only checker|ingest|scaleout|bootstrap  --scaleout
         --bootstrap  --bootstrap-lines 1000000  --import-only  --import-jobs N
         --import-profile
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import benchtopics
import ceiling
import checker
import dataset
import peers
from common import mib, table
from consentinel.streams import topics_admin
from consentinel.streams.events import topics
from consentinel.streams.events.settings import Settings


def checker_section(
    bootstrap: str,
    subject_counts: list[int],
    usages: int,
    drain_cap: float,
    peer_names: list[str],
    ledger_only: bool = False,
) -> None:
    rows = []
    for subjects in subject_counts:
        prefix = benchtopics.fresh_prefix("bench")
        home = Path(tempfile.mkdtemp(prefix="consentinel-bench-"))
        settings = Settings.from_env(
            {
                "CONSENTINEL_HOME": str(home),
                "CONSENTINEL_TOPIC_PREFIX": prefix,
                "CONSENTINEL_BOOTSTRAP_SERVERS": bootstrap,
                "CONSENTINEL_PARTITIONS": str(dataset.PARTITIONS),
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
            ledger_only=ledger_only,
        )
        if ledger_only:
            continue
        print("  ceilings: bare aiokafka consumer + orjson + dict lookup…", flush=True)
        ceiling_topic = peers.verdicts_topic(prefix, "ceiling")
        peers.create_topic(bootstrap, ceiling_topic, dataset.PARTITIONS)
        ceil = ceiling.run(bootstrap, prefix, subjects, usages, ceiling_topic)
        ratio = fig.drain_rate / ceil["rate"] if ceil["rate"] else 0.0
        rows.append(
            [
                f"{subjects:,}",
                f"{ceil['rate']:,.0f}",
                f"{fig.drain_rate:,.0f}",
                f"{ratio:.3f}",
                f"{fig.consent_rate:,.0f}",
                f"{fig.latency_rate:,.0f}",
                f"{fig.p50_ms:,.0f} / {fig.p99_ms:,.0f}",
                f"{fig.cold_p50_ms:,.0f} / {fig.cold_p99_ms:,.0f}",
                mib(fig.peak_rss),
                mib(fig.state_bytes),
            ]
        )
        for note in fig.notes:
            print(f"  note: {note}")
        peer_section(bootstrap, prefix, home, subjects, drain_cap, peer_names, fig, ceil)
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
                "p50 / p99 ms steady",
                "p50 / p99 ms cold (first 10 s)",
                "peak RSS",
                "state on disk",
            ],
        )
    )


def peer_section(
    bootstrap: str,
    prefix: str,
    home: Path,
    subjects: int,
    drain_cap: float,
    peer_names: list[str],
    fig: checker.CheckerFigures,
    ceil: dict[str, float],
) -> None:
    """The peers on the same topics, then the peer table and the agreement (printed now,
    so a long multi-size run shows each size's table as soon as it is measured)."""
    figures: list[peers.PeerFigures] = []
    for name in peer_names:
        why = peers.missing(name)
        if why:
            print(f"  {name} peer NOT RUN: {why}", flush=True)
            continue
        print(f"  {peers.LABELS[name]}…", flush=True)
        figures.append(
            peers.run(name, bootstrap, prefix, home, subjects, dataset.PARTITIONS, drain_cap)
        )

    def vs(rate: float) -> str:
        return f"{fig.drain_rate / rate:.3f}" if rate else "-"

    rows = [
        [
            "consentinel worker",
            f"{fig.drain_rate:,.0f}",
            "1.000",
            f"{fig.consent_rate:,.0f}",
            mib(fig.peak_rss),
            mib(fig.state_bytes),
        ]
    ]
    rows += [
        [
            peers.LABELS[p.name],
            f"{p.drain_rate:,.0f}",
            vs(p.drain_rate),
            f"{p.consent_rate:,.0f}",
            mib(p.peak_rss),
            mib(p.state_bytes),
        ]
        for p in figures
    ]
    rows += [
        ["ceiling: consume + dict, one verdict produced", f"{ceil['produce_rate']:,.0f}",
         vs(ceil["produce_rate"]), f"{ceil['consent_rate']:,.0f}", "-", "-"],
        ["ceiling: consume + dict, nothing produced", f"{ceil['rate']:,.0f}",
         vs(ceil["rate"]), "-", "-", "-"],
    ]  # fmt: skip
    print(f"\nPeers at {subjects:,} subjects (same topics, same run; one process each)")
    print(
        table(
            rows,
            ["system", "uses/s", "consentinel / it", "consents/s", "peak RSS", "state on disk"],
        )
    )
    quix = next((p for p in figures if p.name == "quix"), None)
    if quix and quix.drain_rate:
        print(f"consentinel / Quix Streams peer: {fig.drain_rate / quix.drain_rate:.3f}")
    if ceil["produce_rate"]:
        ratio = fig.drain_rate / ceil["produce_rate"]
        print(f"consentinel / consume-and-produce ceiling: {ratio:.3f}")
    for p in figures:
        for note in p.notes:
            print(f"  note: {note}")
    systems = {"consentinel": prefix + topics.VERDICTS}
    systems.update({p.name: peers.verdicts_topic(prefix, p.name) for p in figures})
    systems["ceiling"] = peers.verdicts_topic(prefix, "ceiling")
    print("Agreement of the decisions (allowed / violation; pending verdicts not counted):")
    for line in peers.agreement(bootstrap, systems):
        print(f"  {line}")


def sections(
    args: argparse.Namespace,
    bootstrap: str,
    subjects: list[int],
    usages: int,
    peer_names: list[str],
) -> None:
    if args.only in (None, "checker"):
        checker_section(bootstrap, subjects, usages, args.drain_cap, peer_names, args.ledger_only)
    if args.only == "scaleout" or (args.scaleout and args.only is None):
        import scaleout

        so_subjects = 10_000 if args.quick else args.scaleout_subjects
        fig = scaleout.run(bootstrap, so_subjects, usages, args.drain_cap)
        print(scaleout.report(fig))
    if args.only == "bootstrap" or (args.bootstrap and args.only is None):
        import bootstrap as ledger_bootstrap

        lines = 20_000 if args.quick else args.bootstrap_lines
        fig = ledger_bootstrap.run(
            bootstrap,
            lines,
            import_only=args.import_only,
            jobs=args.import_jobs,
            profile=args.import_profile,
        )
        print(ledger_bootstrap.report(fig))
    if args.only in (None, "ingest"):
        import ingest

        ingest.section(bootstrap, quick=args.quick)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", default="100000", help="comma-separated subject counts")
    parser.add_argument("--usages", type=int, default=200_000)
    parser.add_argument(
        "--peers", default="quix,faust", help="peers to run beside the worker, or none"
    )
    parser.add_argument(
        "--drain-cap", type=float, default=150.0, help="seconds of drain measured at most"
    )
    parser.add_argument("--quick", action="store_true", help="10k subjects, 20k usages")
    parser.add_argument(
        "--ledger-only", action="store_true", help="checker: the ledger build (phase 1) only"
    )
    parser.add_argument("--only", choices=("checker", "ingest", "scaleout", "bootstrap"))
    parser.add_argument(
        "--scaleout",
        action="store_true",
        help="also measure 2 worker processes against 1 and the take-over after a SIGKILL",
    )
    parser.add_argument(
        "--scaleout-subjects", type=int, default=100_000, help="subjects of the scale-out run"
    )
    parser.add_argument(
        "--bootstrap",
        action="store_true",
        help="also import a consent export and time the ledger build (--bootstrap-lines)",
    )
    parser.add_argument("--bootstrap-lines", type=int, default=1_000_000)
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="bootstrap: the import alone, no worker (its rate and CPU per line)",
    )
    parser.add_argument(
        "--import-jobs",
        type=int,
        default=None,
        help="bootstrap: --jobs of the import (default: the import's own)",
    )
    parser.add_argument(
        "--import-profile",
        action="store_true",
        help="bootstrap: run the import under cProfile and print the top of its profile",
    )
    args = parser.parse_args()
    if (args.import_only or args.import_profile or args.import_jobs is not None) and (
        args.only is None and not args.bootstrap
    ):
        args.only = "bootstrap"
    bootstrap = os.environ.get("CONSENTINEL_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    subjects = [int(s) for s in args.subjects.split(",")]
    usages = args.usages
    if args.quick:
        subjects, usages = [10_000], 20_000
    started = time.monotonic()
    peer_names = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
    for name in peer_names:
        if name not in peers.SCRIPTS:
            parser.error(f"--peers: unknown peer {name!r} (known: {', '.join(peers.SCRIPTS)})")
    try:
        sections(args, bootstrap, subjects, usages, peer_names)
    finally:
        benchtopics.delete_created(bootstrap)
    print(f"\nbench finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
