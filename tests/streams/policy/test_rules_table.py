"""``rules.rules_for`` leaves out only rules that could find nothing: on a grid of uses
(every kind and channel, the purposes rules name and others, declarations and consent
that make the restricted rules fire), evaluating with the table gives exactly the
findings of the walk over every rule."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from consentinel.streams.events.records import Channel, LegalBasis, Proof, Sourcing, UsageKind
from consentinel.streams.policy import engine
from consentinel.streams.policy.purposes import POLITICAL
from consentinel.streams.policy.rules import ALL_RULES, rules_for

T0 = 1_767_225_600_000
NIGHT_SUNDAY = 1_767_481_200_000  # 2026-01-03 23:00 UTC (Sunday 00:00 in Paris)
PURPOSES = [POLITICAL, "marketing.direct", "marketing.partner_transfer", "editorial.newsletter"]


def _findings(monkeypatch: pytest.MonkeyPatch, *args: Any, full: bool) -> list[str]:
    with monkeypatch.context() as m:
        if full:
            m.setattr(engine, "rules_for", lambda kind, channel, purpose: ALL_RULES)
        return engine.evaluate(*args, final=True).rule_ids


def test_the_table_gives_the_findings_of_every_rule(make, policy, monkeypatch) -> None:
    histories = [
        None,
        make.history(make.grant(at=T0, controller="Other", purposes=[], channels=[])),
        make.history(make.grant(at=T0, controller="Le Quotidien", purposes=[], channels=[])),
        make.history(
            make.grant(at=T0, controller="Le Quotidien", purposes=PURPOSES, proof=Proof())
        ),
        # a refusal during a call (R11)
        make.history(make.withdraw(at=T0, controller="Le Quotidien", channels=[Channel.PHONE])),
    ]
    fired: set[str] = set()
    compared = 0
    for kind, channel, purpose, sourcing, at, history in itertools.product(
        UsageKind, Channel, [*PURPOSES, None], [Sourcing.RENTED, Sourcing.OWN],
        [T0 + 86_400_000, NIGHT_SUNDAY], histories,
    ):  # fmt: skip
        usage = make.usage(
            at=at,
            kind=kind,
            channel=channel,
            declared_purpose=purpose,
            campaign_id=None if purpose is None else "c1",
            attributes={"sender_type": "long_code", "source_category": "hr"},
            opt_out_instruction=False,
            list_unsubscribe=False,
            list_unsubscribe_post=False,
            source_named=False,
        )
        decl = None
        if purpose is not None:
            decl = make.decl(
                ref="c1",
                purpose=purpose,
                channel=channel,
                sourcing=sourcing,
                legal_basis=LegalBasis.CONSENT,
                acquired_from=["Other"] if sourcing is Sourcing.RENTED else [],
                source_categories=["hr"],
                names_source=False,
                opt_out_in_message=False,
            )
        args = (usage, history, decl, policy)
        table = _findings(monkeypatch, *args, full=False)
        full = _findings(monkeypatch, *args, full=True)
        assert table == full, (kind, channel, purpose, sourcing, at)
        fired.update(full)
        compared += 1
    restricted = {r.RULE_ID for r in ALL_RULES if r.KINDS or r.CHANNELS or r.PURPOSES}
    # the grid reaches every restricted rule: a wrong restriction would show above
    assert restricted <= fired, restricted - fired
    assert compared > 1000


def test_rules_for_keeps_the_order_and_leaves_out_what_cannot_apply() -> None:
    email_send = rules_for(UsageKind.SEND, "email", "editorial.newsletter")
    ids = [r.RULE_ID for r in email_send]
    assert ids == [r.RULE_ID for r in ALL_RULES if r.RULE_ID in ids]
    assert not {"R8", "R9", "R10", "R11", "R17", "R18", "R19"} & set(ids)
    assert {"R1", "R2", "R3", "R5", "R6", "R15"} <= set(ids)
    political_call = {r.RULE_ID for r in rules_for(UsageKind.CALL, "phone", POLITICAL)}
    assert {"R10", "R11", "R17", "R19"} <= political_call
    assert not {"R6", "R8", "R9", "R15", "R18"} & political_call
