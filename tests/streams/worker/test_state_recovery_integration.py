"""State written in batches (``worker.batches.StateWriter``) recovers after a restart: every
RocksDB partition database records its changelog as read up to the changelog's last record
(so a restart re-reads nothing), and the restarted worker judges with the ledger it kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import worker_harness as h
from consentinel.streams.events.settings import Settings
from consentinel.streams.worker.command import TABLES, changelog_topics
from kafka import KafkaConsumer, TopicPartition

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[2] / "deploy" / "registry.example.yaml"
TIMEOUT_S = 120
PARTITIONS = 4
#: Faust's key of the changelog offset in each partition database (faust/stores/rocksdb.py)
OFFSET_KEY = b"__faust\0offset__"


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, make_settings) -> Settings:
    s: Settings = make_settings(
        topic_prefix=topic_prefix,
        bootstrap_servers=kafka_bootstrap,
        partitions=PARTITIONS,
        grace_seconds=4,
    )
    return h.prepare(s, EXAMPLE)


@pytest.fixture
def producer(settings: Settings) -> Iterator[Any]:
    p = h.Producer(settings)
    yield p
    p.close()


def changelog_ends(settings: Settings) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers.split(","))
    try:
        tps = [TopicPartition(t, p) for t in changelog_topics(settings) for p in range(PARTITIONS)]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def persisted_offsets(settings: Settings) -> dict[tuple[str, int], int | None]:
    """Each table's persisted changelog offset per partition, read from its RocksDB
    database (the worker stopped: nothing holds the databases)."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[tuple[str, int], int | None] = {}
    for table, topic in zip(TABLES, changelog_topics(settings), strict=True):
        for p in range(PARTITIONS):
            (path,) = settings.state_dir.glob(f"faust/**/{table}-{p}.db")
            db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
            try:
                raw = db.get(OFFSET_KEY)
            finally:
                db.close()
            found[(topic, p)] = None if raw is None else int(raw)
    return found


def judge_uses(
    settings: Settings, producer: Any, outputs: Any, log: Path, uses: list[Any], before: list[Any]
) -> dict[str, Any]:
    """Run a worker until it has judged ``uses`` (sent after ``before``), stop it with
    SIGTERM, and return its first verdicts on them."""
    with h.running_worker(settings, log) as worker:
        worker.wait_judging()
        producer.send(before + uses)
        ids = {u.event_id for u in uses}
        h.wait_for(
            lambda: ids <= set(outputs.poll().first_verdicts()),
            TIMEOUT_S,
            f"the verdicts of {len(ids)} uses ({log.name})",
        )
        assert worker.stop() == 0
    verdicts = outputs.first_verdicts()
    return {i: verdicts[i] for i in ids}


def test_a_restart_recovers_the_tables_from_where_their_changelogs_end(
    settings: Settings, producer: Any, tmp_path: Path
) -> None:
    sc = h.Scenario(settings)
    outputs = h.Outputs(settings)
    try:
        first = [sc.use(i, list_id="lequotidien-morning") for i in range(60)]
        consents = [sc.consent(i) for i in range(60)]
        judge_uses(settings, producer, outputs, tmp_path / "worker.log", first, consents)
        ends = changelog_ends(settings)
        persisted = persisted_offsets(settings)
        ledger = changelog_topics(settings)[TABLES.index("ledger")]
        assert all(ends[(ledger, p)] > 0 for p in range(PARTITIONS)), "every ledger written"
        for tp, end in ends.items():
            # the offset of the last changelog record: recovery has nothing left to read
            assert persisted[tp] == (end - 1 if end else None), tp

        again = [sc.use(i, list_id="lequotidien-morning") for i in range(60)]
        verdicts = judge_uses(settings, producer, outputs, tmp_path / "worker.log", again, [])
        assert {str(v.decision) for v in verdicts.values()} == {"allowed"}, (
            "every consent was recovered"
        )
    finally:
        outputs.close()


def test_a_worker_without_its_state_directory_restores_its_tables_in_batches(
    settings: Settings, producer: Any, tmp_path: Path
) -> None:
    """The state directory lost (a new host, a disk replaced): the tables come back from
    their changelogs through the batched restore (``worker.restore``), not record by record
    through Faust's recovery, and the worker judges with every consent it had."""
    import shutil

    sc = h.Scenario(settings)
    outputs = h.Outputs(settings)
    try:
        first = [sc.use(i, list_id="lequotidien-morning") for i in range(80)]
        consents = [sc.consent(i) for i in range(80)]
        judge_uses(settings, producer, outputs, tmp_path / "first.log", first, consents)
        ends = changelog_ends(settings)
        shutil.rmtree(settings.state_dir / "faust")

        again = [sc.use(i, list_id="lequotidien-morning") for i in range(80)]
        second = tmp_path / "second.log"
        verdicts = judge_uses(settings, producer, outputs, second, again, [])
        assert {str(v.decision) for v in verdicts.values()} == {"allowed"}, (
            "every consent was restored"
        )
        log = second.read_text(errors="replace")
        restored = [line for line in log.splitlines() if "restored " in line]
        assert restored, "the batched restore ran"
        assert "left to Faust's slower recovery" not in log
        total = sum(int(line.split("restored ")[1].split()[0]) for line in restored)
        # every changelog record of the first run, read back once (the second run's own
        # writes come after the restore)
        assert total == sum(ends.values()), restored
    finally:
        outputs.close()
