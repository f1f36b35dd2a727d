"""R15 (recipient's first message), R16 (upstream proof of a transferred file), R18 (first
political message), R19 (HR, payroll, administrative files): allowed, violating and edge
cases, judged through ``evaluate`` with the first message noted as the processor notes it."""

from __future__ import annotations

import pytest
from consentinel.streams.events.records import (
    Channel,
    Proof,
    Sourcing,
    UsageKind,
)
from consentinel.streams.policy.engine import evaluate
from consentinel.streams.policy.history import ConsentHistory
from consentinel.streams.policy.registry import validate_declarations
from consentinel.streams.policy.rules import BY_ID

PARTNER = "marketing.partner_transfer"
POL = "political.communication"
MKT = "marketing.direct"
BROKER = "Broker"
CAMPAIGN = "Campagne 2027"
ACME = "Acme"
LQ = "Le Quotidien"


def rules_of(ev) -> list[str]:
    return [f.rule_id for f in ev.findings]


def summary(ev, rule_id: str) -> str:
    return next(f.summary for f in ev.findings if f.rule_id == rule_id)


def test_the_new_rules_say_their_source_and_severity() -> None:
    assert BY_ID["R15"].SOURCE == "[S6 art. 14(2)(f), 14(3)(b); FR1]"
    assert BY_ID["R16"].SOURCE == "[FR4]"
    assert BY_ID["R18"].SOURCE == "[FR5]" and BY_ID["R19"].SOURCE == "[FR5]"
    assert all(str(BY_ID[r].SEVERITY) == "critical" for r in ("R15", "R16", "R18", "R19"))


# -- R16 ------------------------------------------------------------------------------------


def transfer(make, **kw):
    kw.setdefault("campaign_id", None)
    kw.setdefault("list_id", "rental-1")
    return make.usage(controller=CAMPAIGN, kind=UsageKind.LIST_TRANSFER, **kw)


def rental_decl(make, **kw):
    kw.setdefault("acquired_from", [BROKER])
    return make.decl(
        ref="rental-1",
        ref_kind="list",
        controller=CAMPAIGN,
        purpose=POL,
        sourcing=Sourcing.RENTED,
        **kw,
    )


def test_r16_a_broker_with_no_consent_to_pass_the_address_on(make, policy) -> None:
    history = make.history(make.grant(controller=LQ))  # the newsletter only
    ev = evaluate(transfer(make), history, rental_decl(make), policy, final=True)
    assert "R16" in rules_of(ev) and "R2" in rules_of(ev)
    assert "from Broker: no consent to pass it on" in summary(ev, "R16")
    # a transfer is not a message
    assert "R1" not in rules_of(ev) and "R17" not in rules_of(ev)


def test_r16_upstream_consent_without_proof(make, policy) -> None:
    upstream = make.grant(
        controller=LQ, purposes=[PARTNER], recipients=[BROKER], proof=Proof(method="checkbox")
    )
    ev = evaluate(transfer(make), make.history(upstream), rental_decl(make), policy, final=True)
    assert "R16" in rules_of(ev)
    assert f"consent event {upstream.event_id} (held by {LQ}) has no auditable proof" in (
        summary(ev, "R16")
    )


def test_r16_allowed_with_proven_upstream_consent_naming_the_broker(make, policy) -> None:
    upstream = make.grant(controller=LQ, purposes=[PARTNER], recipients=[BROKER])
    ev = evaluate(transfer(make), make.history(upstream), rental_decl(make), policy, final=True)
    assert "R16" not in rules_of(ev)


def test_r16_allowed_with_the_brokers_own_proven_partner_consent(make, policy) -> None:
    own = make.grant(controller=BROKER, purposes=[PARTNER])
    ev = evaluate(transfer(make), make.history(own), rental_decl(make), policy, final=True)
    assert "R16" not in rules_of(ev)
    # proof by reference counts too (a CMP keeps the record)
    ref = make.grant(controller=BROKER, purposes=[PARTNER], proof=Proof(record_ref="cmp-9"))
    ev = evaluate(transfer(make), make.history(ref), rental_decl(make), policy, final=True)
    assert "R16" not in rules_of(ev)


def test_r16_edges(make, policy) -> None:
    # a proven consent that names someone else is not the broker's
    other = make.grant(controller=LQ, purposes=[PARTNER], recipients=[ACME])
    ev = evaluate(transfer(make), make.history(other), rental_decl(make), policy, final=True)
    assert "R16" in rules_of(ev)
    # withdrawn before the transfer: nothing left to pass on
    grant = make.grant(controller=BROKER, purposes=[PARTNER])
    gone = make.withdraw(make.T0 + make.HOUR, controller=BROKER, purposes=[PARTNER])
    ev = evaluate(transfer(make), make.history(grant, gone), rental_decl(make), policy, final=True)
    assert "R16" in rules_of(ev)
    # the report names the sender: it wins over the declaration's suppliers
    acme = make.grant(controller=ACME, purposes=[PARTNER])
    named = transfer(make, attributes={"transfer_from": ACME})
    assert "R16" not in rules_of(
        evaluate(named, make.history(acme), rental_decl(make), policy, final=True)
    )
    assert "R16" in rules_of(
        evaluate(transfer(make), make.history(acme), rental_decl(make), policy, final=True)
    )
    # no sender known, or a controller moving its own file: nothing to judge
    alone = rental_decl(make, acquired_from=[])
    assert "R16" not in rules_of(evaluate(transfer(make), None, alone, policy, final=True))
    own = rental_decl(make, acquired_from=[CAMPAIGN])
    assert "R16" not in rules_of(evaluate(transfer(make), None, own, policy, final=True))
    # a send is not a transfer
    send = make.usage(controller=CAMPAIGN, campaign_id=None, list_id="rental-1")
    assert "R16" not in rules_of(evaluate(send, None, rental_decl(make), policy, final=True))


# -- R15 and R18: first messages --------------------------------------------------------------


class Sender:
    """Sends messages as the processor does: judge, then note the use in the history."""

    def __init__(self, make, policy, decl, history: ConsentHistory | None = None) -> None:
        self.make, self.policy, self.decl = make, policy, decl
        self.history = history or ConsentHistory(make.SUBJECT)

    def send(self, at: int, **kw):
        usage = self.make.usage(at=at, controller="esp-account", campaign_id=self.decl.ref, **kw)
        ev = evaluate(usage, self.history, self.decl, self.policy, final=True)
        self.history.note_use(usage, self.decl)
        return usage, ev


def political(make, **kw):
    return make.decl(
        ref="pol-1",
        controller=CAMPAIGN,
        purpose=POL,
        sourcing=Sourcing.RENTED,
        acquired_from=[BROKER],
        **kw,
    )


def test_r18_on_the_first_political_message_only(make, policy) -> None:
    s = Sender(make, policy, political(make, names_source=False))
    _, first = s.send(make.T0 + make.DAY)
    _, second = s.send(make.T0 + 2 * make.DAY)
    assert "R18" in rules_of(first) and "R17" in rules_of(first)
    assert "does not say where the address came from" in summary(first, "R18")
    assert "R18" not in rules_of(second) and "R17" in rules_of(second)
    assert "R15" not in rules_of(first)  # a political message is R18's


def test_r18_allowed_when_source_and_opt_out_are_stated(make, policy) -> None:
    s = Sender(make, policy, political(make, names_source=True, opt_out_in_message=True))
    _, ev = s.send(make.T0 + make.DAY)
    assert "R18" not in rules_of(ev)


def test_r18_what_the_message_shows_wins_over_the_declaration(make, policy) -> None:
    s = Sender(make, policy, political(make, names_source=True))
    _, ev = s.send(make.T0 + make.DAY, source_named=False)
    assert "R18" in rules_of(ev)
    s = Sender(make, policy, political(make, names_source=False))
    _, ev = s.send(make.T0 + make.DAY, source_named=True)
    assert "R18" not in rules_of(ev)
    # no opt-out seen: the List-Unsubscribe header missing from the e-mail
    s = Sender(make, policy, political(make))
    _, ev = s.send(make.T0 + make.DAY, list_unsubscribe=False)
    assert "how to object" in summary(ev, "R18")


def test_r18_edges(make, policy) -> None:
    # unknown on both sides is no finding
    s = Sender(make, policy, political(make))
    _, ev = s.send(make.T0 + make.DAY)
    assert "R18" not in rules_of(ev)
    # judged again later (a late consent): the first message is still the first
    s = Sender(make, policy, political(make, names_source=False))
    usage, _ = s.send(make.T0 + make.DAY)
    s.send(make.T0 + 3 * make.DAY)
    again = evaluate(usage, s.history, s.decl, policy, final=True)
    assert "R18" in rules_of(again)
    # an earlier message arriving late is the first; the later one judged now is not
    s = Sender(make, policy, political(make, names_source=False))
    s.send(make.T0 + make.DAY)
    _, later_judged = s.send(make.T0 + make.HOUR)
    assert "R18" in rules_of(later_judged)
    _, after = s.send(make.T0 + 2 * make.HOUR)
    assert "R18" not in rules_of(after)
    # a test message is not the first message
    s = Sender(make, policy, political(make, names_source=False))
    s.send(make.T0 + make.HOUR, is_test=True)
    _, ev = s.send(make.T0 + make.DAY)
    assert "R18" in rules_of(ev)
    # not political: not R18's
    decl = make.decl(ref="promo", controller=ACME, purpose=MKT, names_source=False)
    _, ev = Sender(make, policy, decl).send(make.T0 + make.DAY)
    assert "R18" not in rules_of(ev)


def partner_promo(make, **kw):
    return make.decl(
        ref="promo",
        controller=ACME,
        purpose=MKT,
        sourcing=Sourcing.PARTNER,
        acquired_from=[LQ],
        **kw,
    )


def test_r15_on_a_recipients_first_message_without_the_source(make, policy) -> None:
    s = Sender(make, policy, partner_promo(make, names_source=False))
    _, first = s.send(make.T0 + make.DAY)
    _, second = s.send(make.T0 + 2 * make.DAY)
    assert "R15" in rules_of(first)
    assert "received from another organisation" in summary(first, "R15")
    assert "R15" not in rules_of(second)


def test_r15_allowed_for_a_notice_or_an_own_file(make, policy) -> None:
    s = Sender(make, policy, partner_promo(make, names_source=True, opt_out_in_message=True))
    assert "R15" not in rules_of(s.send(make.T0 + make.DAY)[1])
    own = make.decl(ref="promo", controller=ACME, purpose=MKT, names_source=False)
    assert "R15" not in rules_of(Sender(make, policy, own).send(make.T0 + make.DAY)[1])


def test_r15_edges(make, policy) -> None:
    # a supplier named without a sourcing still makes the controller a recipient
    decl = make.decl(ref="promo", controller=ACME, purpose=MKT, acquired_from=[LQ])
    _, ev = Sender(make, policy, decl).send(make.T0 + make.DAY, source_named=False)
    assert "R15" in rules_of(ev)
    # SMS: the opt-out instruction seen in the text
    sms = partner_promo(make, names_source=True, channel=Channel.SMS)
    _, ev = Sender(make, policy, sms).send(
        make.T0 + make.DAY, channel=Channel.SMS, opt_out_instruction=False
    )
    assert "how to object" in summary(ev, "R15")
    # an earlier message to the person, whatever its campaign, was the first
    s = Sender(make, policy, make.decl(ref="hello", controller=ACME, purpose=MKT))
    s.send(make.T0 + make.HOUR)
    s.decl = partner_promo(make, names_source=False)
    assert "R15" not in rules_of(s.send(make.T0 + make.DAY)[1])
    # a call is not a message here
    call = make.usage(controller=ACME, kind=UsageKind.CALL, channel=Channel.PHONE)
    ev = evaluate(call, None, partner_promo(make, names_source=False), policy, final=True)
    assert "R15" not in rules_of(ev)


def test_first_message_survives_the_round_trip_and_an_erasure_forgets_it(make, policy) -> None:
    s = Sender(make, policy, political(make, names_source=False))
    s.send(make.T0 + make.DAY)
    obj = s.history.to_obj()
    assert obj["v"] == 4 and obj["c"][CAMPAIGN]["f"][0] == make.T0 + make.DAY
    back = ConsentHistory.from_obj(obj)
    assert not back.is_first_message(CAMPAIGN, make.T0 + 2 * make.DAY, "later")
    # a format-2 state has no first messages: read, every message may be the first
    v2 = {**obj, "v": 2, "c": {CAMPAIGN: {}}}
    assert ConsentHistory.from_obj(v2).is_first_message(CAMPAIGN, make.T0, "x")
    erase = make.consent("erase", at=make.T0 + 2 * make.DAY, controller=CAMPAIGN)
    assert back.erase(erase)
    assert back.is_first_message(CAMPAIGN, make.T0 + 3 * make.DAY, "after")
    # a message at or before the erasure is not noted afterwards
    s.history = back
    old = make.usage(at=make.T0 + make.HOUR, controller="esp-account", campaign_id="pol-1")
    assert not back.note_use(old, s.decl)


# -- R19 ------------------------------------------------------------------------------------


def test_r19_political_use_of_a_payroll_file(make, policy) -> None:
    decl = political(make, source_categories=["payroll"])
    ev = evaluate(make.usage(campaign_id="pol-1"), None, decl, policy, final=True)
    assert "R19" in rules_of(ev) and "payroll" in summary(ev, "R19")


def test_r19_allowed_for_other_files_or_other_purposes(make, policy) -> None:
    decl = political(make, source_categories=["members"])
    assert "R19" not in rules_of(
        evaluate(make.usage(campaign_id="pol-1"), None, decl, policy, final=True)
    )
    hr_mkt = make.decl(ref="promo", controller=ACME, purpose=MKT, source_categories=["hr"])
    assert "R19" not in rules_of(
        evaluate(make.usage(campaign_id="promo"), None, hr_mkt, policy, final=True)
    )


@pytest.mark.parametrize("category", ["HR", "administrative"])
def test_r19_a_transfer_stating_its_file_category(make, policy, category) -> None:
    usage = transfer(make, attributes={"source_category": category, "transfer_from": BROKER})
    ev = evaluate(usage, None, rental_decl(make), policy, final=True)
    assert "R19" in rules_of(ev)


def test_registry_reads_the_new_fields_and_refuses_unknown_categories() -> None:
    base = {"campaign": "pol-1", "controller": CAMPAIGN, "purpose": POL, "channel": "email"}
    decls, problems = validate_declarations(
        [(1, {**base, "names_source": False, "source_categories": ["hr", "members"]})]
    )
    assert problems == []
    assert decls[0].names_source is False and decls[0].source_categories == ["hr", "members"]
    _, problems = validate_declarations(
        [(3, {**base, "names_source": "no", "source_categories": ["staff"]})]
    )
    assert any("line 3: 'names_source' should be true or false" in p for p in problems)
    assert any("unknown source_categories staff" in p for p in problems)
