"""Issue #8: corrections in both directions, and one verdict per usage event id.

- A withdrawal (or refusal) reported late, dated before an ALLOWED use, raises the alerts
  that use would have raised, under the deterministic alert ids, with a correction verdict.
- A late consent event dated after the use changes nothing.
- A redelivered allowed use (same event id) gets no second verdict: in the same process,
  and after a restart over the same tables.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from consentinel.streams.checker.holds import Holds
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import TickClock
from consentinel.streams.events import codec, ids
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    AlertStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Decision,
    Declaration,
    Proof,
    UsageEvent,
    UsageKind,
    Verdict,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings

T0 = 1_767_225_600_000
DAY = 86_400_000
SUBJECT = "d" * 64
DECL = Declaration(
    "list:morning", "list", "morning", "le-quotidien", "editorial.newsletter", Channel.EMAIL
)
PROOF = Proof("double_opt_in", T0, "https://x.test/f", notice_version="3")
POLICY = PolicySettings(grace_ms=60_000, allowance_ms_by_channel={"email": 0})
_ids = itertools.count(1)


def consent(at: int, action: ConsentAction = ConsentAction.GRANT) -> ConsentEvent:
    grant = action is ConsentAction.GRANT
    return ConsentEvent(
        event_id=f"cmp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="cmp",
        processor="test",
        subject_key=SUBJECT,
        hint="a***@e***.org",
        controller="le-quotidien",
        action=action,
        purposes=["editorial.newsletter"] if grant else [],
        channels=[Channel.EMAIL],
        proof=PROOF if grant else None,
    )


def use(at: int = T0 + DAY, event_id: str | None = None) -> UsageEvent:
    return UsageEvent(
        event_id=event_id or f"esp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="esp",
        processor="test",
        channel=Channel.EMAIL,
        kind=UsageKind.SEND,
        subject_key=SUBJECT,
        hint="a***@e***.org",
        controller="le-quotidien",
        list_id="morning",
    )


def judge() -> Judge:
    return Judge(POLICY, {DECL.decl_id: DECL}.get)


def test_a_late_withdrawal_dated_before_an_allowed_use_raises_its_alerts() -> None:
    j, holds = judge(), Holds()
    _, history = j.consent(consent(T0), None, holds, T0)
    u = use(T0 + DAY)
    step, history = j.usage(u, history, holds, T0 + DAY)
    assert [v.decision for v in step.verdicts] == [Decision.ALLOWED] and not step.alerts
    # reported two days later, dated half a day before the send
    late = consent(T0 + DAY // 2, ConsentAction.WITHDRAW)
    step, history = j.consent(late, history, holds, T0 + 3 * DAY)
    assert step.alerts, "the withdrawal was in force at the send: it is a violation"
    assert {a.status for a in step.alerts} == {AlertStatus.FIRING}
    assert {a.alert_id for a in step.alerts} == {
        ids.alert_id(u.event_id, a.rule_id) for a in step.alerts
    }
    (verdict,) = step.verdicts
    assert verdict.usage_event_id == u.event_id and verdict.correction
    assert verdict.decision == Decision.VIOLATION
    # applied once: the same withdrawal again (a redelivery) changes nothing more
    again, _ = j.consent(late, history, holds, T0 + 4 * DAY)
    assert again.alerts == [] and again.verdicts == []
    # and a grant dated before the use, reported later still, resolves them (same ids)
    regrant = consent(T0 + DAY // 2 + 1)
    step, _ = j.consent(regrant, history, holds, T0 + 5 * DAY)
    resolved = {a.alert_id for a in step.alerts if a.status is AlertStatus.RESOLVED}
    assert resolved == {ids.alert_id(u.event_id, r) for r in verdict.rule_ids}


def test_a_late_withdrawal_dated_after_the_use_changes_nothing() -> None:
    j, holds = judge(), Holds()
    _, history = j.consent(consent(T0), None, holds, T0)
    j.usage(use(T0 + DAY), history, holds, T0 + DAY)
    step, _ = j.consent(consent(T0 + 2 * DAY, ConsentAction.WITHDRAW), history, holds, T0 + 3 * DAY)
    assert step.alerts == [] and step.verdicts == []


def test_a_redelivered_allowed_use_gets_no_second_verdict() -> None:
    j, holds = judge(), Holds()
    _, history = j.consent(consent(T0), None, holds, T0)
    first, history = j.usage(use(T0 + DAY, "sg:1"), history, holds, T0 + DAY)
    again, _ = j.usage(use(T0 + DAY, "sg:1"), history, holds, T0 + DAY + 5)
    assert len(first.verdicts) == 1
    assert again.duplicate and again.verdicts == []


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Acked:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        import asyncio

        self.sent.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def processor(ledger: dict[bytes, bytes], holds: dict[bytes, bytes], out: Acked) -> Processor:
    return Processor(
        judge=judge(),
        names=Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter"),
        partitions=6,
        ledger=ledger,
        holds=holds,
        stats={},
        send=out.send,
        scan=lambda table, p, prefix: [],
        ticks=TickClock(lambda p: 0),
        sealer=Sealer(b"k" * 32),
        clock=lambda: T0 + 2 * DAY,
    )


async def test_a_redelivery_after_a_restart_gets_no_second_verdict() -> None:
    part = partition_for(subject_message_key(SUBJECT), 6)
    key = subject_message_key(SUBJECT)
    ledger: dict[bytes, bytes] = {}
    holds: dict[bytes, bytes] = {}
    out = Acked()
    first = processor(ledger, holds, out)
    await first.handle(Rec("consent", part, 0, key, codec.encode(consent(T0))))
    await first.handle(Rec("usage", part, 0, key, codec.encode(use(T0 + DAY, "sg:7"))))
    assert [codec.decode(Verdict, v).decision for _, _, v in out.sent] == ["allowed"]
    restarted = processor(ledger, holds, out)  # a new process over the same tables
    await restarted.handle(Rec("usage", part, 1, key, codec.encode(use(T0 + DAY, "sg:7"))))
    assert len(out.sent) == 1, "the platform's redelivery is recognized after a restart"
