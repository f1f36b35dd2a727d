"""``consentinel registry apply FILE.yaml | show``: the purpose registry on its Kafka topic.

``apply`` validates the whole file first: every problem is printed with its line and
nothing is published when there is one. Then it compares the file with what is in force
and publishes only new and changed declarations (kafka-python, acks=all, each send
confirmed). Declarations in force that the file no longer has are left alone unless
``--prune`` is given, which publishes tombstones for them.

``show`` reads the topic to its end and prints what is in force; ``export --format
csv|json`` writes it as GDPR art. 30 records of processing (``records_of_processing``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.records import Declaration
from consentinel.streams.events.settings import Settings
from consentinel.streams.registry import file as registry_file
from consentinel.streams.registry import records_of_processing as art30
from consentinel.streams.registry.topic import read_all

EX_DATAERR = 65
EX_UNAVAILABLE = 69


def _publish(settings: Settings, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            acks="all",
            enable_idempotence=True,
            client_id="consentinel-registry",
            retries=5,
        )
    except (KafkaTimeoutError, KafkaConnectionError):
        raise RetriableError(f"no Kafka broker answers at {settings.bootstrap_servers}") from None
    try:
        futures = [
            producer.send(topic, key=key.encode("utf-8"), value=value) for key, value in records
        ]
        producer.flush(timeout=30)
        for fut in futures:
            fut.get(timeout=30)
    except KafkaError as exc:
        raise RetriableError(
            f"Kafka did not acknowledge every declaration ({exc}); run the same command again "
            f"(publishing is idempotent)"
        ) from None
    finally:
        producer.close(timeout=10)


def apply(
    settings: Settings,
    path: str,
    *,
    prune: bool = False,
    dry_run: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    loaded = registry_file.load(path, updated_at_ms=int(time.time() * 1000))
    if not loaded.ok:
        for problem in loaded.problems:
            print(problem, file=err)
        print(
            f"{path}: {len(loaded.problems)} problem(s); nothing was published. Fix them and run "
            f"`consentinel registry apply {path}` again.",
            file=err,
        )
        return EX_DATAERR
    topic = settings.topic(topics.REGISTRY)
    in_force = read_all(settings.bootstrap_servers, topic).snapshot()
    plan = registry_file.plan(loaded.declarations, in_force)
    records: list[tuple[str, bytes | None]] = [(d.decl_id, codec.encode(d)) for d in plan.publishes]
    if prune:
        records += [(decl_id, None) for decl_id in plan.removed]
    verb = "would publish" if dry_run else "published"
    for decl in plan.new:
        print(
            f"  new        {decl.decl_id}  ({decl.controller}, {decl.purpose}, {decl.channel})",
            file=out,
        )
    for decl in plan.changed:
        print(
            f"  changed    {decl.decl_id}  ({decl.controller}, {decl.purpose}, {decl.channel})",
            file=out,
        )
    for decl_id in plan.removed:
        what = "tombstone " if prune else "kept      "
        print(f"  {what} {decl_id}  (in force, not in the file)", file=out)
    if records and not dry_run:
        _publish(settings, topic, records)
    summary = (
        f"{verb} {len(plan.publishes)} declaration(s) to {topic}: {len(plan.new)} new, "
        f"{len(plan.changed)} changed, {len(plan.unchanged)} unchanged"
    )
    if plan.removed:
        summary += f"; {len(plan.removed)} removed from the file " + (
            "(tombstoned)" if prune else "(still in force: use --prune to retire them)"
        )
    print(summary, file=out)
    return 0


def _row(decl: Declaration) -> list[str]:
    sources = ",".join(decl.data_sources) or "-"
    return [
        decl.decl_id,
        decl.controller,
        decl.purpose,
        str(decl.channel),
        str(decl.legal_basis),
        str(decl.sourcing),
        sources,
    ]


def show(settings: Settings, *, out: TextIO = sys.stdout) -> int:
    topic = settings.topic(topics.REGISTRY)
    registry = read_all(settings.bootstrap_servers, topic)
    decls = [d for _, d in sorted(registry.snapshot().items())]
    header = [
        "declaration",
        "controller",
        "purpose",
        "channel",
        "basis",
        "sourcing",
        "data sources",
    ]
    rows = [header] + [_row(d) for d in decls]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
    note = f" ({registry.skipped} unreadable record(s) skipped)" if registry.skipped else ""
    print(f"{len(decls)} declaration(s) in force on {topic}{note}", file=out)
    return 0


def export(settings: Settings, fmt: str, out_path: str | None) -> int:
    """``registry export``: the art. 30 view of the declarations in force."""
    registry = read_all(settings.bootstrap_servers, settings.topic(topics.REGISTRY))
    rows = art30.records(registry.snapshot().values(), settings.retention_days)
    text = art30.as_csv(rows) if fmt == "csv" else codec.dumps(rows).decode("utf-8") + "\n"
    if out_path is None:
        sys.stdout.write(text)
    else:
        with open(out_path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        print(f"wrote {len(rows)} record(s) of processing to {out_path}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="consentinel registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    a = sub.add_parser("apply", help="validate a registry file and publish what changed")
    a.add_argument("file", help="the registry YAML file (see deploy/registry.example.yaml)")
    a.add_argument(
        "--prune", action="store_true", help="tombstone declarations in force that the file lacks"
    )
    a.add_argument("--dry-run", action="store_true", help="say what would change, publish nothing")
    sub.add_parser("show", help="print the declarations in force")
    e = sub.add_parser("export", help="write the GDPR art. 30 records of processing")
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--out", help="the file to write (default: standard output)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.action == "apply":
            return apply(settings, args.file, prune=args.prune, dry_run=args.dry_run)
        if args.action == "export":
            return export(settings, args.format, args.out)
        return show(settings)
    except RetriableError as exc:
        print(f"consentinel registry: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
