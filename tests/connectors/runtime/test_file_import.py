"""File import without a broker: parsing, dead letters, checkpoints, deterministic ids."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pytest
from consentinel.connectors import config
from consentinel.connectors.declarative import EXAMPLES
from consentinel.connectors.runtime.checkpoint import Checkpoint
from consentinel.connectors.runtime.file_import import Importer
from consentinel.connectors.runtime.producer import EventProducer, Record
from consentinel.connectors.runtime.rows import count_records, read_records
from consentinel.connectors.testkit import make_edge
from consentinel.streams.events import codec, topics
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.records import DeadLetter, UsageEvent

CONFIG = f"""\
- name: postmark-import
  type: declarative
  mapping: {EXAMPLES / "postmark.yaml"}
  controller: acme-sas
  secrets: {{username: env:U, password: env:P}}
"""
HEADER = "RecordType,MessageID,Recipient,DeliveredAt,Tag\n"


class FakeProducer(EventProducer):
    def __init__(self, settings, fail_after: int | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.records: list[Record] = []
        self.calls = 0
        self.fail_after = fail_after

    async def send_records(self, records: Iterable[Record]) -> int:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RetriableError("down (test)")
        batch = list(records)
        self.records.extend(batch)
        return len(batch)


def _importer(settings, producer, batch: int = 3, jobs: int = 0) -> Importer:  # type: ignore[no-untyped-def]
    cfg = config.load_text(CONFIG, settings, environ={"U": "u", "P": "p"})
    inst = cfg.get("postmark-import")
    connector = cfg.classes[inst.name](inst, make_edge())
    return Importer(
        settings, connector, producer, batch=batch, retries=0, jobs=jobs, stream=io.StringIO()
    )


#: mapped in this process, and in forked workers (``--jobs``): the same records either way
JOBS = pytest.mark.parametrize("jobs", [0, 2])


def _csv(tmp_path: Path, lines: list[str]) -> Path:
    f = tmp_path / "drop.csv"
    f.write_text(HEADER + "".join(lines))
    return f


GOOD = [f"Delivery,m{i},user{i}@example.org,2026-01-05T16:33:54Z,t\n" for i in range(8)]
BAD = [
    "Delivery,x1,not-an-address,2026-01-05T16:33:54Z,t\n",  # bad_email
    "Delivery,x2,a@example.org,yesterday,t\n",  # bad_time
    "Delivery,x3,a@example.org\n",  # bad_csv_columns
    "Teleport,x4,a@example.org,2026-01-05T16:33:54Z,t\n",  # unknown_event_type
]


def _usage_ids(records: list[Record]) -> list[str]:
    return [codec.decode(UsageEvent, v).event_id for t, _, v in records if t.endswith(topics.USAGE)]


def _letters(records: list[Record]) -> list[DeadLetter]:
    return [codec.decode(DeadLetter, v) for t, _, v in records if t.endswith(topics.DEADLETTER)]


@JOBS
async def test_good_lines_taken_bad_lines_deadlettered(
    make_settings, tmp_path: Path, jobs: int
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    f = _csv(tmp_path, GOOD[:4] + BAD + GOOD[4:])
    producer = FakeProducer(settings)
    summary = await _importer(settings, producer, jobs=jobs).run(f, "csv")
    assert summary.taken == 8 and summary.usage == 8
    assert dict(summary.deadlettered) == {
        "bad_email": 1,
        "bad_time": 1,
        "bad_csv_columns": 1,
        "unknown_event_type": 1,
    }
    assert len(set(_usage_ids(producer.records))) == 8
    letters = _letters(producer.records)
    assert [(dl.reason_code, dl.attributes["line"]) for dl in letters] == [
        ("bad_email", 6),
        ("bad_time", 7),
        ("bad_csv_columns", 8),
        ("unknown_event_type", 9),
    ]
    assert all(dl.stage == "import" for dl in letters)
    assert all(b"example.org" not in v for _, _, v in producer.records)
    text = summary.text(f, "postmark-import")
    assert "taken          8" in text and "bad_email" in text


@JOBS
async def test_interrupted_import_resumes_without_new_ids(
    make_settings, tmp_path: Path, jobs: int
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    f = _csv(tmp_path, GOOD + BAD)
    first = FakeProducer(settings, fail_after=2)
    with pytest.raises(RetriableError):
        await _importer(settings, first, jobs=jobs).run(f, "csv")
    assert Checkpoint.load(settings.home, f).record == 6  # two acknowledged batches of 3
    second = FakeProducer(settings)
    summary = await _importer(settings, second, jobs=jobs).run(f, "csv")
    assert summary.skipped == 6 and summary.taken == 2
    ids = _usage_ids(first.records) + _usage_ids(second.records)
    assert len(ids) == len(set(ids)) == 8
    # done: a third run produces nothing; --restart repeats exactly the same ids
    third = FakeProducer(settings)
    assert (
        await _importer(settings, third, jobs=jobs).run(f, "csv")
    ).taken == 0 and not third.records
    again = FakeProducer(settings)
    await _importer(settings, again, jobs=jobs).run(f, "csv", restart=True)
    assert set(_usage_ids(again.records)) == set(ids)


@JOBS
async def test_jsonl_lines(make_settings, tmp_path: Path, jobs: int) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    f = tmp_path / "drop.jsonl"
    f.write_text(
        '{"RecordType":"Open","MessageID":"1","Recipient":"a@example.org",'
        '"ReceivedAt":"2026-01-05T17:00:01Z"}\n'
        "\n"
        "[1,2]\n"
        '{"RecordType": \n'
    )
    producer = FakeProducer(settings)
    summary = await _importer(settings, producer, jobs=jobs).run(f, "jsonl")
    assert summary.taken == 1
    assert dict(summary.deadlettered) == {"not_an_object": 1, "malformed_json": 1}
    assert [dl.attributes["line"] for dl in _letters(producer.records)] == [3, 4]


def _shape(records: list[Record]) -> list[tuple[str, bytes, str]]:
    """Topic, key and event id (or reason and line of a dead letter) of each record, in
    order: all of a record but the receive time, which is the clock's."""
    out = []
    for topic, key, value in records:
        obj = codec.loads(value)
        what = obj.get("event_id") or f"{obj['reason_code']}@{obj['attributes']['line']}"
        out.append((topic, key, what))
    return out


async def test_workers_give_the_records_of_the_process_in_its_order(
    make_settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    lines = [
        BAD[i % len(BAD)] if i % 37 == 5 else
        f"Delivery,m{i},user{i}@example.org,2026-01-05T16:{i % 60:02d}:54Z,t\n"
        for i in range(3000)
    ]  # fmt: skip
    f = _csv(tmp_path, lines)
    inline, forked = FakeProducer(settings), FakeProducer(settings)
    a = await _importer(settings, inline, batch=700, jobs=0).run(f, "csv", restart=True)
    b = await _importer(settings, forked, batch=700, jobs=3).run(f, "csv", restart=True)
    assert _shape(forked.records) == _shape(inline.records)
    assert len(inline.records) == 3000 and inline.calls == forked.calls == 5
    assert (b.taken, b.usage, b.deadlettered) == (a.taken, a.usage, a.deadlettered)
    assert sum(a.deadlettered.values()) == len([i for i in range(3000) if i % 37 == 5])


@JOBS
async def test_a_connector_crash_is_a_dead_letter_in_a_worker_too(
    make_settings, tmp_path: Path, jobs: int
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    f = _csv(tmp_path, GOOD)
    importer = _importer(settings, FakeProducer(settings), jobs=jobs)
    original = importer.connector.map_row

    def flaky(row):  # type: ignore[no-untyped-def]
        if row["MessageID"] == "m5":
            raise KeyError("a bug in the connector")
        return original(row)

    importer.connector.map_row = flaky  # type: ignore[method-assign]
    summary = await importer.run(f, "csv")
    letters = _letters(importer.producer.records)  # type: ignore[attr-defined]
    assert [(dl.reason_code, dl.attributes["line"]) for dl in letters] == [("connector_error", 7)]
    assert "KeyError" in letters[0].reason and summary.taken == 7


async def test_an_event_listed_twice_keeps_one_id_per_entry(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    f = _csv(tmp_path, GOOD[:1])
    importer = _importer(settings, FakeProducer(settings))
    original = importer.connector.map_row

    def twice(row):  # type: ignore[no-untyped-def]
        out = original(row)
        out.usage = [out.usage[0], out.usage[0]]
        return out

    importer.connector.map_row = twice  # type: ignore[method-assign]
    await importer.run(f, "csv")
    ids = _usage_ids(importer.producer.records)  # type: ignore[attr-defined]
    assert len(ids) == 2 and len(set(ids)) == 2


def test_csv_reader_quoting_and_counting(tmp_path: Path) -> None:
    f = tmp_path / "q.csv"
    f.write_text('a,b\n"x, y","multi\nline"\n\n1,2\n')
    recs = list(read_records(f, "csv"))
    assert [r.row for r in recs] == [{"a": "x, y", "b": "multi\nline"}, {"a": "1", "b": "2"}]
    assert [r.line for r in recs] == [3, 5]
    assert count_records(f, "csv") >= 2


def _priority_after_main(argv: list[str]) -> tuple[int, int]:
    """(exit status, CPU priority) of ``consentinel import argv`` run in a child process
    (the priority it sets would otherwise stay with the test runner)."""
    import os

    from consentinel.connectors.runtime import file_import

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            status = file_import.main(argv)
            os.write(write, f"{status} {os.getpriority(os.PRIO_PROCESS, 0)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        text = answer.read()
    os.waitpid(pid, 0)
    status, priority = text.split()
    return int(status), int(priority)


def test_the_import_lowers_its_cpu_priority_before_its_workers_fork(tmp_path: Path) -> None:
    """A bulk import on the worker's host must not starve the worker that builds the ledger
    from what it sends: it runs at nice +10 by default (inherited by the mapping workers it
    forks), ``--nice N`` chooses, 0 keeps the priority, and less than 0 is refused."""
    import os

    before = os.getpriority(os.PRIO_PROCESS, 0)
    missing = str(tmp_path / "missing.csv")  # stops right after the priority is set (66)
    assert _priority_after_main([missing, "--connector", "x"]) == (66, min(19, before + 10))
    assert _priority_after_main([missing, "--connector", "x", "--nice", "3"]) == (
        66,
        min(19, before + 3),
    )
    assert _priority_after_main([missing, "--connector", "x", "--nice", "0"]) == (66, before)
    assert _priority_after_main([missing, "--connector", "x", "--nice", "-1"]) == (64, before)
