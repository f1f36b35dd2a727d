"""``consentinel import FILE --connector INSTANCE``: a CSV or JSONL drop through a connector.

Every record goes through ``connector.map_row``, in ``--jobs`` worker processes forked
from this one (default: the CPUs, up to 4; see ``rowmap``) whose results are taken back
in file order, so batches, dead letters and checkpoints are those of ``--jobs 0`` (mapped
in this process). Records that cannot be read or mapped are sealed to the dead-letter
topic with their reason and line number; the rest are produced in batches, and the
checkpoint advances only after Kafka acknowledged a whole batch (events and dead
letters) and every batch before it; one batch is on its way while the next is mapped.
A re-run continues after the checkpoint; ``--restart`` ignores it. Event ids are
``event_id(instance, file identity, record content, n)``, so even a re-run without the
checkpoint only repeats ids, never adds new ones. The import and its workers run at a
lower CPU priority (``--nice``, default ``DEFAULT_NICE``): on a host it shares with a
worker, the worker judging live traffic and building the ledger from what the import sends
gets the CPU first.

Exit codes: 0 done (dead letters are reported, not fatal), 64 --nice below 0, 70 a mapping
worker died (re-run to continue), 75 Kafka unavailable (re-run to continue), 78
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from consentinel.connectors import config as config_mod
from consentinel.connectors.contract import Connector, Edge
from consentinel.connectors.runtime.checkpoint import Checkpoint, file_identity
from consentinel.connectors.runtime.deadletters import DeadLetters
from consentinel.connectors.runtime.importmap import Outcome, Payload, RecordMapping, inline
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.runtime.progress import Progress
from consentinel.connectors.runtime.rowmap import RowMapper, WorkerDied, default_jobs
from consentinel.connectors.runtime.rows import (
    FORMATS,
    FileRecord,
    count_records,
    guess_format,
    read_records,
)
from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.identity import Pseudonymizer
from consentinel.streams.events.settings import Settings

EX_TEMPFAIL = 75
EX_SOFTWARE = 70
#: How much the import lowers its CPU priority (``--nice``). On a shared host the worker
#: building the ledger from what the import sends is the slower of the two, and the
#: import's three processes (the reader and two mapping workers) compete with it for the
#: CPUs: at nice 10 the worker kept a whole core through a 1,000,000-line import, judged-ready
#: in 116-127 s against 120-133 s at the same priority (bench, 2 cores, 2026-12).
DEFAULT_NICE = 10


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
        jobs: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.connector = connector
        self.producer = producer
        self.batch = batch
        self.retries = retries
        self.jobs = max(0, jobs)
        self.stream = stream or sys.stderr
        self.deadletters = DeadLetters(settings)
        self.instance = connector.instance.name
        self._dl_topic = settings.topic(topics.DEADLETTER)

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
        batch = _Batch()
        # one batch is on its way to Kafka while the next one is mapped; the checkpoint
        # moves only once a batch (and every batch before it) is acknowledged
        sending: tuple[asyncio.Task[None], _Batch] | None = None

        async def settle() -> None:
            nonlocal sending
            if sending is None:
                return
            task, done = sending
            sending = None
            await task
            checkpoint.record = done.last
            checkpoint.taken += done.taken
            for code, n in done.deadlettered.items():
                checkpoint.deadlettered[code] = checkpoint.deadlettered.get(code, 0) + n
                self.deadletters.count(self.instance, code, n)
            checkpoint.save()
            summary.taken += done.taken
            summary.usage += done.usage
            summary.consent += done.consent
            summary.deadlettered.update(done.deadlettered)
            progress.update(done.last)

        async def flush() -> None:
            nonlocal batch, sending
            await settle()
            sending = (asyncio.ensure_future(self._flush(batch.records)), batch)
            batch = _Batch(last=batch.last)

        def fresh() -> Iterator[tuple[FileRecord, Payload | None]]:
            for rec in read_records(path, fmt, delimiter):
                summary.records = rec.number
                if rec.number <= checkpoint.record:
                    summary.skipped += 1
                    continue
                if rec.error is not None or rec.row is None:
                    yield rec, None
                else:
                    yield rec, (rec.content, rec.row)

        batch.last = checkpoint.record
        work = RecordMapping(self.connector, self.settings, file_id)
        async with contextlib.AsyncExitStack() as stack:
            outcomes: AsyncGenerator[tuple[FileRecord, Outcome | None], None]
            if self.jobs > 0:
                mapper = RowMapper(work, self.jobs)
                await stack.enter_async_context(mapper)
                outcomes = mapper.map(fresh())
            else:
                outcomes = inline(work, fresh())
            try:
                await stack.enter_async_context(contextlib.aclosing(outcomes))
                async for rec, outcome in outcomes:
                    if outcome is None:
                        self._dead_letter(batch, rec, rec.error, fmt, file_id)
                    elif outcome[3] is not None:
                        code, message = outcome[3]
                        self._dead_letter(batch, rec, InvalidInput(code, message), fmt, file_id)
                    else:
                        records, usage, consent, _ = outcome
                        batch.records.extend(records)
                        batch.taken += 1
                        batch.usage += usage
                        batch.consent += consent
                    batch.last = rec.number
                    batch.size += 1
                    if batch.size >= self.batch:
                        await flush()
                if batch.size:
                    await flush()
                await settle()
            finally:
                if sending is not None:  # failed: what is on its way is not checkpointed
                    sending[0].cancel()
                    with contextlib.suppress(BaseException):
                        await sending[0]
        checkpoint.record = batch.last
        checkpoint.done = True
        checkpoint.save()
        progress.update(batch.last, force=True)
        progress.finish()
        summary.seconds = time.monotonic() - started
        return summary

    def _dead_letter(
        self, batch: _Batch, rec: FileRecord, exc: InvalidInput | None, fmt: str, file_id: str
    ) -> None:
        assert exc is not None
        letter = self.deadletters.letter(
            self.instance,
            exc,
            rec.raw,
            stage="import",
            content_type="application/json" if fmt == "jsonl" or rec.row else "text/csv",
            attributes={"line": rec.line, "record": rec.number, "file": file_id},
        )
        batch.records.append((self._dl_topic, self.instance.encode(), codec.encode(letter)))
        batch.deadlettered[exc.code] += 1


@dataclass
class _Batch:
    """The records of one acknowledged unit, and what the checkpoint gains with it."""

    last: int = 0  # the number of its last record
    size: int = 0
    records: list[Record] = field(default_factory=list)
    taken: int = 0
    usage: int = 0
    consent: int = 0
    deadlettered: Counter[str] = field(default_factory=Counter)


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
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes mapping the records (default: the CPUs, up to 4; "
        "0 maps in this process)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=DEFAULT_NICE,
        metavar="N",
        help=f"lower the import's CPU priority by N, as nice(1) does, for it and its workers: "
        f"a bulk import yields the CPU to the workers judging on the same host "
        f"(default {DEFAULT_NICE}; 0 keeps it)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path: Path = args.file
    if args.nice < 0:
        print("consentinel import: --nice must be 0 or more", file=sys.stderr)
        return 64  # EX_USAGE
    if args.nice:
        os.nice(args.nice)  # before the workers fork: they inherit it
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
            importer = Importer(
                settings,
                connector,
                producer,
                batch=max(1, args.batch),
                jobs=default_jobs() if args.jobs is None else max(0, args.jobs),
            )
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
    except WorkerDied as exc:
        print(
            f"consentinel import: {exc}; nothing after the last checkpoint was lost, "
            f"run the same command again to continue (--jobs 0 maps without workers)",
            file=sys.stderr,
        )
        return EX_SOFTWARE
    print(summary.text(path, inst.name), file=sys.stderr)
    return 0
