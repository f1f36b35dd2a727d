"""The decision memo (``engine.evaluate``) answers exactly what the full evaluation does.

Random histories (grants, some expiring, some list-scoped or naming partners; withdrawals,
refusals, expiries, erasures; contacts; a second controller; folding past a few versions)
are asked about uses of a few shapes at times drawn around every time the answer may
change (each version, expiry, contact, erasure, with and without the allowance, and R20's
retention edge), in random order, so the memo is filled by one use and read by the next;
between uses, consent events arrive and clicks are noted. Every answer is compared with
``engine._evaluate`` (no memo).
"""

from __future__ import annotations

import random
from typing import Any

from consentinel.streams.events import ids
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    LegalBasis,
    Proof,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy import engine
from consentinel.streams.policy.engine import PolicySettings
from consentinel.streams.policy.history import ConsentHistory

T0 = 1_767_225_600_000
DAY = 86_400_000
PAPER = "paper"
BROKER = "broker"
SUBJECT = "s" * 64
POLICY = PolicySettings(retention_days=3)
PROOF = Proof(method="double_opt_in", collected_at_ms=T0, collection_point="x", notice_version="1")


def _decl(ref: str, controller: str, purpose: str, **kw: Any) -> Declaration:
    return Declaration(
        ids.declaration_id("campaign", ref),
        "campaign",
        ref,
        controller,
        purpose,
        Channel.EMAIL,
        **kw,
    )


DECLS = [
    _decl("news", PAPER, "editorial.newsletter", promotional=False),
    _decl("promo", PAPER, "marketing.direct"),
    _decl("interest", PAPER, "marketing.direct", legal_basis=LegalBasis.LEGITIMATE_INTEREST),
    _decl("partner", BROKER, "marketing.direct", sourcing=Sourcing.PARTNER, acquired_from=[PAPER]),
    _decl("listed", PAPER, "marketing.direct", data_sources=["list:vip"], notice_version="2"),
    None,
]


def _history(rng: random.Random) -> tuple[ConsentHistory, list[int], list[ConsentEvent]]:
    """A history, the times its answers may change at, and events to apply later."""
    history = ConsentHistory(SUBJECT, max_versions=rng.choice([2, 3, 64]))
    times: list[int] = []
    later: list[ConsentEvent] = []
    for n in range(rng.randrange(1, 9)):
        at = T0 + rng.randrange(0, 10) * DAY // 2 + rng.randrange(0, 3)
        action = rng.choice(
            [ConsentAction.GRANT] * 4
            + [ConsentAction.WITHDRAW, ConsentAction.REFUSE, ConsentAction.EXPIRE]
            + [ConsentAction.ERASE] * (1 if rng.random() < 0.2 else 0)
        )
        kw: dict[str, Any] = {}
        if action is ConsentAction.GRANT:
            kw["proof"] = PROOF if rng.random() < 0.8 else None
            if rng.random() < 0.3:
                kw["expires_at_ms"] = at + rng.randrange(1, 4 * DAY)
                times.append(kw["expires_at_ms"])
            if rng.random() < 0.2:
                kw["scope"] = "vip"
            if rng.random() < 0.2:
                kw["recipients"] = [BROKER]
        event = ConsentEvent(
            event_id=f"c{n}",
            occurred_at_ms=at,
            received_at_ms=at,
            source="t",
            processor="t",
            subject_key=SUBJECT,
            hint="h",
            controller=rng.choice([PAPER, PAPER, PAPER, BROKER]),
            action=action,
            purposes=rng.choice(
                [[], ["editorial.newsletter"], ["marketing.direct"], ["marketing.partner_transfer"]]
            ),
            channels=rng.choice([[], [Channel.EMAIL], [Channel.SMS]]),
            **kw,
        )
        if rng.random() < 0.3:
            later.append(event)
        else:
            history.apply(event)
        times.append(at)
    return history, times, later


def _shape(rng: random.Random) -> dict[str, Any]:
    decl = rng.choice(DECLS)
    return {
        "kind": rng.choice([UsageKind.SEND] * 4 + [UsageKind.CLICK, UsageKind.OPEN]),
        "campaign_id": decl.ref if decl else "undeclared",
        "list_id": rng.choice([None, "vip"]),
        "list_unsubscribe": rng.choice([None, True, False]),
    }, decl


def _use(n: int, at: int, shape: dict[str, Any]) -> UsageEvent:
    return UsageEvent(
        event_id=f"u{n}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="t",
        processor="t",
        channel=Channel.EMAIL,
        subject_key=SUBJECT,
        hint="h",
        controller=PAPER,
        **shape,
    )


def _count_full_evaluations(monkeypatch) -> list[None]:
    """One item per evaluation in full (``engine._evaluate``) from now on."""
    full = engine._evaluate
    judged: list[None] = []

    def counted(*args: Any) -> Any:
        judged.append(None)
        return full(*args)

    monkeypatch.setattr(engine, "_evaluate", counted)
    return judged


def test_the_memo_answers_what_the_full_evaluation_answers(monkeypatch) -> None:
    rng = random.Random(5)
    asked = 0
    full = engine._evaluate
    judged = _count_full_evaluations(monkeypatch)
    allowance = POLICY.allowance_ms("email")
    for _ in range(300):
        history, times, later = _history(rng)
        edges = [t + d for t in times for d in (0, allowance, POLICY.retention_ms + 1)]
        moments = [e + d for e in edges for d in (-1, 0, 1)] + [T0 - DAY, T0 + 30 * DAY]
        shapes = [_shape(rng) for _ in range(3)]
        for n in range(60):
            shape, decl = rng.choice(shapes)
            usage = _use(n, rng.choice(moments), shape)
            final = rng.random() < 0.5
            got = engine.evaluate(usage, history, decl, POLICY, final=final)
            want = full(usage, history, decl, POLICY, final)[0]
            assert got == want, (usage, decl, final)
            asked += 1
            if rng.random() < 0.1:
                history.note_use(usage, decl)  # a click is a contact: the memo is emptied
            if later and rng.random() < 0.1:
                history.apply(later.pop())  # a consent arrives: the memo is emptied
    hits = asked - len(judged)
    assert hits > asked // 10, (hits, asked)  # the memo was read, not only filled


def test_a_change_to_the_history_empties_the_memo() -> None:
    history = ConsentHistory(SUBJECT)
    decl = DECLS[0]
    assert decl is not None
    use = _use(1, T0 + DAY, {"kind": UsageKind.SEND, "campaign_id": decl.ref})
    first = engine.evaluate(use, history, decl, POLICY, final=True)
    grant = ConsentEvent(
        "g", T0, T0, "t", "t", SUBJECT, "h", PAPER, ConsentAction.GRANT,
        purposes=["editorial.newsletter"], proof=PROOF,
    )  # fmt: skip
    history.apply(grant)
    second = engine.evaluate(use, history, decl, POLICY, final=True)
    assert first.consent_version is None and second.consent_version == "g"


def test_the_rules_memoized_do_not_read_the_time_of_use() -> None:
    """A tripwire for ``engine._TIME_FREE``: a rule listed there that starts reading the
    time of use would make the memo answer from another time. R12 reads it only for a
    call, which is never memoized; R15 and R18 read the first message, which the memo key
    holds when a notice is missing (``transfers.notice_missing``)."""
    import inspect
    import re

    from consentinel.streams.policy.rules import ALL_RULES

    time_reads = (
        r"\bt_ms\b",
        r"occurred_at",
        r"received_at",
        r"\busage\.event_id",
        r"\bu\.event_id",
    )
    for r in ALL_RULES:
        if r.RULE_ID not in engine._TIME_FREE or r.RULE_ID == "R12":
            continue
        source = inspect.getsource(r)
        found = [w for w in time_reads if re.search(w, source)]
        assert not found, f"{r.RULE_ID} reads {found}: not time-free, take it out of _TIME_FREE"
    assert "R12" in engine._TIME_FREE and "sales_call(ctx)" in inspect.getsource(
        next(r for r in ALL_RULES if r.RULE_ID == "R12")
    )
