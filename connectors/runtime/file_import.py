"""``consentinel import FILE --connector INSTANCE``: a CSV or JSONL drop through a connector.

Every record goes through ``connector.map_row``. Records that cannot be read or mapped
are sealed to the dead-letter topic with their reason and line number; the rest are
produced in batches, and the checkpoint advances only after Kafka acknowledged a whole
batch (events and dead letters). A re-run continues after the checkpoint; ``--restart``
ignores it. Event ids are ``event_id(instance, file identity, record content, n)``, so
even a re-run without the checkpoint only repeats ids, never adds new ones.

Exit codes: 0 done (dead letters are reported, not fatal), 75 Kafka unavailable (re-run
to continue), 78 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from consentinel.connectors import config as config_mod
from consentinel.connectors.contract import Connector, Edge, Output
from consentinel.connectors.runtime.checkpoint import Checkpoint, file_identity
from consentinel.connectors.runtime.deadletters import DeadLetters
from consentinel.connectors.runtime.producer import EventProducer, Record, records_of
from consentinel.connectors.runtime.progress import Progress
from consentinel.connectors.runtime.rows import (
    FORMATS,
    FileRecord,
    count_records,
    guess_format,
    read_records,
)
from consentinel.streams.events import codec, ids, topics
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.settings import Settings

EX_TEMPFAIL = 75


@dataclass
class Summary:
    records: int = 0
    skipped: int = 0  # before the checkpoint
    taken: int = 0
    usage: int = 0
    consent: int = 0
    deadlettered: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def text(self, file: Path, instance: str) -> str:
        lines = [
            f"imported {file} through {instance}: {self.records:,} record(s) in "
            f"{self.seconds:.1f} s",
            f"  taken          {self.taken:,} ({self.usage:,} usage, {self.consent:,} consent "
            f"events)",
        ]
        if self.skipped:
            lines.append(f"  skipped        {self.skipped:,} (before the checkpoint, done earlier)")
        total = sum(self.deadlettered.values())
        lines.append(f"  dead-lettered  {total:,}")
        for code, n in self.deadlettered.most_common():
            lines.append(f"    {code:<22} {n:,}")
        return "\n".join(lines)


class Importer:
    """Imports one file through one connector instance."""

    def __init__(
        self,
        settings: Settings,
        connector: Connector,
        producer: EventProducer,
        *,
        batch: int = 5000,
        retries: int = 5,
        stream: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.connector = connector
        self.producer = producer
        self.batch = batch
        self.retries = retries
        self.stream = stream or sys.stderr
        self.deadletters = DeadLetters(settings)
        self.instance = connector.instance.name
        self._dl_topic = settings.topic(topics.DEADLETTER)

    def _map(self, rec: FileRecord, file_id: str) -> Output:
        if rec.error is not None:
            raise rec.error
        assert rec.row is not None
        try:
            output = self.connector.map_row(rec.row)
        except InvalidInput:
            raise
        except Exception as exc:
            raise InvalidInput(
                "connector_error", f"the connector failed on this record ({type(exc).__name__})"
            ) from exc
        # ids from (instance, file identity, content): stable across re-runs
        output.usage = [
            dataclasses.replace(
                e, event_id=ids.event_id(self.instance, file_id, rec.content, "usage", k)
            )
            for k, e in enumerate(output.usage)
        ]
        output.consent = [
            dataclasses.replace(
                e, event_id=ids.event_id(self.instance, file_id, rec.content, "consent", k)
            )
            for k, e in enumerate(output.consent)
        ]
        return output

    async def _flush(self, records: list[Record]) -> None:
        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                await self.producer.send_records(records)
                return
            except RetriableError:
                if attempt == self.retries:
                    raise
                self.stream.write(
                    f"import: Kafka did not acknowledge the batch; retrying in {delay:.0f} s\n"
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def run(
        self, path: Path, fmt: str, *, restart: bool = False, delimiter: str = ","
    ) -> Summary:
        started = time.monotonic()
        checkpoint = Checkpoint.load(self.settings.home, path)
        if restart:
            checkpoint = Checkpoint(checkpoint.path)
        summary = Summary()
        if checkpoint.done:
            summary.skipped = checkpoint.record
            summary.records = checkpoint.record
            self.stream.write(
                f"import: {path} was fully imported through this file version already "
                f"({checkpoint.record:,} records); --restart imports it again\n"
            )
            return summary
        file_id = file_identity(path)
        total = count_records(path, fmt)
        progress = Progress(total, f"import {path.name}", self.stream, start_at=checkpoint.record)
        if checkpoint.record:
            self.stream.write(f"import: resuming after record {checkpoint.record:,}\n")
        pending: list[Record] = []
        pending_dl: Counter[str] = Counter()
        pending_taken = pending_usage = pending_consent = 0
        in_batch = 0
        last = checkpoint.record

        async def flush() -> None:
            nonlocal pending, pending_dl, pending_taken, pending_usage, pending_consent, in_batch
            await self._flush(pending)
            checkpoint.record = last
            checkpoint.taken += pending_taken
            for code, n in pending_dl.items():
                checkpoint.deadlettered[code] = checkpoint.deadlettered.get(code, 0) + n
                self.deadletters.count(self.instance, code, n)
            checkpoint.save()
            summary.taken += pending_taken
            summary.usage += pending_usage
            summary.consent += pending_consent
            summary.deadlettered.update(pending_dl)
            pending, pending_dl = [], Counter()
            pending_taken = pending_usage = pending_consent = in_batch = 0

        for rec in read_records(path, fmt, delimiter):
            summary.records = rec.number
            if rec.number <= checkpoint.record:
                summary.skipped += 1
                continue
            try:
                output = self._map(rec, file_id)
            except InvalidInput as exc:
                letter = self.deadletters.letter(
                    self.instance,
                    exc,
                    rec.raw,
                    stage="import",
                    content_type="application/json" if fmt == "jsonl" or rec.row else "text/csv",
                    attributes={"line": rec.line, "record": rec.number, "file": file_id},
                )
                pending.append((self._dl_topic, self.instance.encode(), codec.encode(letter)))
                pending_dl[exc.code] += 1
            else:
                pending.extend(records_of(output, self.settings))
                pending_taken += 1
                pending_usage += len(output.usage)
                pending_consent += len(output.consent)
            last = rec.number
            in_batch += 1
            if in_batch >= self.batch:
                await flush()
                progress.update(last)
        if in_batch:
            await flush()
        checkpoint.record = last
        checkpoint.done = True
        checkpoint.save()
        progress.update(last, force=True)
        progress.finish()
        summary.seconds = time.monotonic() - started
        return summary


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="consentinel import",
        description="Import a CSV (header row) or JSONL file through a connector instance.",
    )
    p.add_argument("file", type=Path, help="the CSV or JSONL file")
    p.add_argument(
        "--connector",
        required=True,
        metavar="INSTANCE",
        help="the connector instance (a name in the connectors file)",
    )
    p.add_argument(
        "--config",
        help=f"instances file (default ${config_mod.CONFIG_ENV} or ./{config_mod.DEFAULT_FILE})",
    )
    p.add_argument("--format", choices=FORMATS, help="default: from the file name")
    p.add_argument("--delimiter", default=",", help="CSV delimiter (default ,)")
    p.add_argument(
        "--batch", type=int, default=5000, help="records per acknowledged batch (default 5000)"
    )
    p.add_argument("--restart", action="store_true", help="ignore the checkpoint")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.file
    if not path.is_file():
        print(f"consentinel import: {path}: no such file", file=sys.stderr)
        return 66  # EX_NOINPUT
    settings = Settings.from_env()
    cfg = config_mod.load(config_mod.default_path(args.config), settings)
    try:
        inst = cfg.get(args.connector)
    except Exception as exc:
        print(f"consentinel import: {exc}", file=sys.stderr)
        return 78
    edge = Edge(Pseudonymizer(settings.pepper.reveal()), inst.default_region)
    connector = cfg.classes[inst.name](inst, edge)
    fmt = args.format or guess_format(path)

    async def run() -> Summary:
        producer = EventProducer(
            settings, client_id="consentinel-import", linger_ms=20, ack_timeout=30.0
        )
        try:
            importer = Importer(settings, connector, producer, batch=max(1, args.batch))
            return await importer.run(path, fmt, restart=args.restart, delimiter=args.delimiter)
        finally:
            await producer.stop()

    try:
        summary = asyncio.run(run())
    except RetriableError as exc:
        print(
            f"consentinel import: {exc}; nothing after the last checkpoint was lost, "
            f"run the same command again to continue",
            file=sys.stderr,
        )
        return EX_TEMPFAIL
    except InvalidInput as exc:
        print(f"consentinel import: {path}: {exc.message} [{exc.code}]", file=sys.stderr)
        return 65  # EX_DATAERR
    print(summary.text(path, inst.name), file=sys.stderr)
    return 0
