"""Scale-out over a Kafka consumer group, on the real broker (issue #9, item 5).

Two `consentinel worker` processes in one group share 12 partitions. A stream of consents
and uses flows in; one worker is SIGKILLed in the middle of it and the stream goes on. The
survivor takes over the killed worker's partitions and restores their state from the
changelogs: uses whose consent the killed worker had taken in are judged "allowed" by the
survivor, and no consented use is alerted as "no consent" while the group rebalances.

The same stream, in the same order, goes at the same time to a second set of topics judged
by a single worker that nobody kills: both runs give the same alert ids, and both agree
with the pure policy.

Everything goes through the worker's public interface (the `consentinel topics`,
`consentinel registry` and `consentinel worker` commands, the topics, the settings), so the
test holds before and after the worker's rebuild. Waits are condition-based with generous
timeouts; nothing asserts on time.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import worker_harness as h  # tests/streams is on pytest's pythonpath
from consentinel.streams.events import topics
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Settings
from kafka.admin import KafkaAdminClient
from topicnames import fresh_prefix

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[1] / "deploy" / "registry.example.yaml"
PARTITIONS = 12
# long enough that the rebalance after the kill (session timeout 10 s, then the restore)
# cannot by itself push a use past its grace period: a "no consent" alert on a consented
# use would then be the worker's fault, not the clock's
GRACE_S = 30
TIMEOUT_S = 150


# kafka-python cannot decode Faust's member metadata (its own format) and warns with the
# whole raw record on every describe: the assignments, which it does decode, are enough
logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)


def cli(env: dict[str, str], *args: str) -> None:
    """Run a `consentinel` command with a worker's environment; fail with its output."""
    done = subprocess.run(
        [str(h.EXE), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"consentinel {' '.join(args)} failed:\n{done.stderr[-3000:]}"


def assigned(admin: KafkaAdminClient, group: str, topic: str) -> list[set[int]]:
    """The partitions of ``topic`` assigned to each live member of ``group``."""
    description = admin.describe_groups([group]).get(group) or {}
    if description.get("group_state") != "Stable":
        return []
    out: list[set[int]] = []
    for member in description.get("members", []):
        assignment = member.get("member_assignment") or {}
        parts: set[int] = set()
        for entry in assignment.get("assigned_partitions", []):
            if entry.get("topic") == topic:
                parts |= set(entry.get("partitions", []))
        out.append(parts)
    return out


class Run:
    """One set of topics and the workers that judge them."""

    def __init__(self, name: str, settings: Settings, tmp_path: Path, workers: int) -> None:
        self.settings = settings
        self.workers = [
            h.WorkerProcess(
                settings,
                tmp_path / f"{name}-{n}.log",
                # each process its own state directory, as on two machines
                CONSENTINEL_HOME=str(tmp_path / f"{name}-{n}"),
            )
            for n in range(workers)
        ]
        env = self.workers[0].env
        cli(env, "topics", "create")
        cli(env, "registry", "apply", str(EXAMPLE))
        self.outputs = h.Outputs(settings)
        self.producer = h.Producer(settings)

    def logs(self) -> str:
        """Each worker's warnings and errors (Faust's tables of offsets left out)."""
        parts = []
        for w in self.workers:
            lines = w.log().splitlines()
            worth = [
                line
                for line in lines
                if any(s in line for s in ("ERROR", "WARNING", "Error", "=====", "Rebalanc"))
                and "producer buffer full" not in line
            ]
            parts.append(f"--- {w.log_path.name}\n" + "\n".join(worth[-30:] + lines[-3:]))
        return "\n".join(parts)

    def close(self) -> None:
        for w in self.workers:
            if w.alive():
                w.stop()
        self.producer.close()
        self.outputs.close()


@pytest.fixture
def runs(kafka_bootstrap: str, make_settings, tmp_path: Path) -> Iterator[tuple[Run, Run]]:
    def settings(prefix: str) -> Settings:
        s: Settings = make_settings(
            topic_prefix=prefix,
            bootstrap_servers=kafka_bootstrap,
            partitions=PARTITIONS,
            grace_seconds=GRACE_S,
        )
        return s

    solo = Run("solo", settings(fresh_prefix("solo")), tmp_path, workers=1)
    pair = Run("pair", settings(fresh_prefix("pair")), tmp_path, workers=2)
    yield solo, pair
    solo.close()
    pair.close()


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","))
    yield client
    client.close()


def test_a_killed_workers_partitions_move_to_the_survivor_with_their_state(
    runs: tuple[Run, Run], admin: KafkaAdminClient
) -> None:
    solo, pair = runs
    sc = h.Scenario(pair.settings)  # the same pepper in both runs: the same subject keys
    political = {"campaign_id": "municipales-2026-dupont", "controller": "broker"}
    news = {"list_id": "lequotidien-morning"}

    # before the kill: consents for every subject; some uses
    before: list[ConsentEvent | UsageEvent] = []
    restored: list[int] = []  # consent before the kill, use after it
    for i in range(1000, 1360):
        if i % 3 == 0:
            before += [sc.consent(i), sc.use(i, **news)]
        elif i % 3 == 1:
            before.append(sc.consent(i))
            restored.append(i)
        else:  # a newsletter reader rented out to the campaign: alerted once grace passed
            before += [sc.consent(i), sc.use(i, **political)]
    keys = {subject_message_key(c.subject_key) for c in sc.consents}
    assert {partition_for(k, PARTITIONS) for k in keys} == set(range(PARTITIONS))

    for run in (solo, pair):
        for w in run.workers:
            w.start()
    for run in (solo, pair):
        for w in run.workers:
            w.wait_judging(TIMEOUT_S)
    group = f"{pair.settings.topic_prefix}{pair.settings.app_id}"
    usage_topic = pair.settings.topic(topics.USAGE)

    def shared() -> bool:
        parts = assigned(admin, group, usage_topic)
        return len(parts) == 2 and all(parts) and set.union(*parts) == set(range(PARTITIONS))

    h.wait_for(
        shared,
        TIMEOUT_S,
        "both workers of the pair to hold usage partitions",
        every_s=1.0,
        explain=lambda: f"assignments: {assigned(admin, group, usage_topic)}\n{pair.logs()}",
    )

    def send(events: list[ConsentEvent | UsageEvent]) -> None:
        solo.producer.send(events)
        pair.producer.send(events)

    send(before)
    before_uses = {e.event_id for e in before if isinstance(e, UsageEvent)}
    h.wait_for(
        lambda: bool(before_uses & set(pair.outputs.poll().first_verdicts())),
        TIMEOUT_S,
        "the pair to be judging the stream",
    )
    victim = pair.workers[1]
    victim.kill()

    # after the kill, while the group notices and rebalances: a steady trickle of uses of
    # subjects consented before the kill, and new subjects (consent first, or the use first
    # with its consent right behind, within the grace period)
    after: list[ConsentEvent | UsageEvent] = []
    fresh = iter(range(2000, 2200))
    for chunk_start in range(0, len(restored), 12):
        chunk: list[ConsentEvent | UsageEvent] = [
            sc.use(i, **news) for i in restored[chunk_start : chunk_start + 12]
        ]
        for _ in range(4):
            i = next(fresh)
            pair_of = [sc.consent(i), sc.use(i, **news)]
            chunk += pair_of if i % 2 else pair_of[::-1]
        send(chunk)
        after += chunk
        time.sleep(1.0)  # ten chunks: the stream spans the session timeout and rebalance

    # the survivor alone holds every partition now, the killed worker's included
    h.wait_for(
        lambda: assigned(admin, group, usage_topic) == [set(range(PARTITIONS))],
        TIMEOUT_S,
        "the survivor to hold all the partitions",
        every_s=1.0,
        explain=lambda: f"assignments: {assigned(admin, group, usage_topic)}\n{pair.logs()}",
    )
    restored_keys = {subject_message_key(sc.person(i)[0]) for i in restored}
    assert {partition_for(k, PARTITIONS) for k in restored_keys} == set(range(PARTITIONS))

    uses = [e for e in before + after if isinstance(e, UsageEvent)]
    consented = {e.event_id for e in uses if e.controller == "le-quotidien"}
    decls = h.declarations(EXAMPLE)
    expected = {u.event_id: h.oracle(pair.settings, u, sc.consents, decls) for u in uses}
    expected_alerts = set().union(*(h.alert_ids(u, expected[u.event_id]) for u in uses))
    assert expected_alerts, "the story has violations"
    assert {str(expected[u].decision) for u in consented} == {"allowed"}

    def complete(run: Run) -> bool:
        run.outputs.poll()
        return set(run.outputs.first_verdicts()) >= set(expected) and expected_alerts <= set(
            run.outputs.alert_status()
        )

    restored_ids = {
        e.event_id
        for e in after
        if isinstance(e, UsageEvent) and e.subject_key in {sc.person(i)[0] for i in restored}
    }
    for run in (solo, pair):
        h.wait_for(
            lambda run=run: complete(run),
            TIMEOUT_S,
            f"every verdict and alert of the {'pair' if run is pair else 'solo'} run",
            explain=lambda run=run: (
                "uses without a verdict (id, partition, consented before the kill): "
                + str(
                    sorted(
                        (
                            u.event_id,
                            partition_for(subject_message_key(u.subject_key), PARTITIONS),
                            u.event_id in restored_ids,
                        )
                        for u in uses
                        if u.event_id not in run.outputs.first_verdicts()
                    )[:20]
                )
                + f"\n{run.logs()}"
            ),
        )
    time.sleep(2)  # anything spurious still in flight shows up in the last poll
    for run in (solo, pair):
        run.outputs.poll()

    assert not victim.alive()
    assert pair.workers[0].alive(), pair.logs()
    # no "no consent" (or any other) alert on a consented use, during the rebalance or not
    wrongly_alerted = [
        (a.usage_event_id, a.rule_id) for a in pair.outputs.alerts if a.usage_event_id in consented
    ]
    assert wrongly_alerted == [], pair.logs()
    got = pair.outputs.first_verdicts()
    assert {str(got[u].decision) for u in restored_ids} == {"allowed"}
    # the same alert ids as the single worker that was never killed, and as the policy
    assert set(pair.outputs.alert_status()) == set(solo.outputs.alert_status())
    assert set(pair.outputs.alert_status()) == expected_alerts
    assert {k: h.summary(v) for k, v in expected.items()} == {
        k: (str(v.decision), tuple(sorted(v.rule_ids)))
        for k, v in pair.outputs.first_verdicts().items()
    }
    # the survivor took the victim's partitions over with their state: restored from the
    # changelogs in batches (worker.restore), all of it, none left to Faust's own recovery
    survivor_log = pair.workers[0].log()
    took_over = [
        int(line.split("restored ")[1].split()[0])
        for line in survivor_log.splitlines()
        if "restored " in line and "changelog record(s)" in line
    ]
    assert any(n > 0 for n in took_over), pair.logs()
    assert "left to Faust's slower recovery" not in survivor_log
    assert pair.workers[0].stop() == 0, pair.logs()
