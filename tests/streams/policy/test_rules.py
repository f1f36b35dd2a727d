"""Each rule with an allowed and a violating case, judged through ``evaluate``."""

from __future__ import annotations

import pytest
from consentinel.streams.events.records import (
    Channel,
    Decision,
    LegalBasis,
    Proof,
    Severity,
    Sourcing,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings, evaluate
from consentinel.streams.policy.rules import ALL_RULES, BY_ID

T0 = 1_767_225_600_000
DAY = 86_400_000
LQ = "Le Quotidien"
MKT = "marketing.direct"
POL = "political.communication"
NOON = 11 * 3_600_000  # 12:00 Paris in winter: SMS inside the R9 charter hours


def rules_of(ev) -> list[str]:
    return [f.rule_id for f in ev.findings]


def test_every_rule_declares_id_source_and_severity() -> None:
    ids = [r.RULE_ID for r in ALL_RULES]
    assert ids == [
        "R1",
        "R2",
        "R3",
        "R5",
        "R6",
        "R13",
        "R14",
        "R15",
        "R16",
        "R8",
        "R9",
        "R10",
        "R11",
        "R12",
        "R17",
        "R18",
        "R19",
        "R20",
        "R4",
        "R21",
        "R22",
        "R23",
        "CFG-UNDECLARED",
        "CFG-UNMAPPED",
    ]
    for r in ALL_RULES:
        assert r.SOURCE.startswith("[") and r.SOURCE.endswith("]")
        assert isinstance(r.SEVERITY, Severity)
    assert BY_ID["R1"].SOURCE == "[S7 art. 13(1)–(2); CPCE L34-5 via FR2; FR11]"  # noqa: RUF001
    assert BY_ID["R20"].SEVERITY is Severity.WARNING


# -- R1 -------------------------------------------------------------------------------


def test_r1_marketing_email_without_any_opt_in(make, policy) -> None:
    h = make.history(make.grant(controller="Shop", purposes=[MKT], channels=[Channel.SMS]))
    d = make.decl(controller="Shop", purpose=MKT)
    ev = evaluate(make.usage(controller="Shop"), h, d, policy, final=True)
    assert ev.decision is Decision.VIOLATION
    assert "R1" in rules_of(ev) and "R2" in rules_of(ev)
    ok = evaluate(
        make.usage(at=T0 + NOON + DAY, controller="Shop", channel=Channel.SMS),
        h,
        make.decl(controller="Shop", purpose=MKT, channel=Channel.SMS),
        policy,
        final=True,
    )
    assert ok.decision is Decision.ALLOWED and ok.findings == []


def test_r1_not_for_an_opt_in_on_the_channel_for_another_purpose(make, policy) -> None:
    h = make.history(make.grant(purposes=["editorial.newsletter"]))
    ev = evaluate(make.usage(), h, make.decl(purpose=MKT), policy, final=True)
    assert rules_of(ev) == ["R2"]


def test_r1_soft_opt_in_holds_for_own_customers(make, policy) -> None:
    d = make.decl(
        controller="Shop",
        purpose=MKT,
        legal_basis=LegalBasis.SOFT_OPT_IN,
        sourcing=Sourcing.CUSTOMER,
    )
    ev = evaluate(make.usage(controller="Shop"), make.history(), d, policy, final=False)
    assert ev.decision is Decision.ALLOWED and ev.findings == []  # decided at once, not pending


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sourcing": Sourcing.RENTED}, "sourced 'rented'"),
        ({"acquired_from": ["Broker"]}, "came from Broker"),
        ({"purpose": POL}, "not political.communication"),
    ],
)
def test_r1_soft_opt_in_that_does_not_hold(make, policy, change, reason) -> None:
    fields = {
        "controller": "Shop",
        "purpose": MKT,
        "legal_basis": LegalBasis.SOFT_OPT_IN,
        "sourcing": Sourcing.CUSTOMER,
        **change,
    }
    ev = evaluate(
        make.usage(controller="Shop"), make.history(), make.decl(**fields), policy, final=True
    )
    r1 = [f for f in ev.findings if f.rule_id == "R1"]
    assert r1 and reason in r1[0].summary
    assert ev.decision is Decision.VIOLATION


def test_r1_soft_opt_in_still_honours_an_unsubscribe(make, policy) -> None:
    d = make.decl(
        controller="Shop",
        purpose=MKT,
        legal_basis=LegalBasis.SOFT_OPT_IN,
        sourcing=Sourcing.CUSTOMER,
    )
    h = make.history(make.withdraw(at=T0, controller="Shop"))
    ev = evaluate(make.usage(controller="Shop", at=T0 + 5 * DAY), h, d, policy, final=True)
    assert rules_of(ev) == ["R5"]


def test_r1_b2b_basis_needs_no_opt_in(make, policy) -> None:
    d = make.decl(controller="Shop", purpose=MKT, legal_basis=LegalBasis.B2B)
    ev = evaluate(make.usage(controller="Shop"), None, d, policy, final=True)
    assert ev.decision is Decision.ALLOWED


def test_r1_not_for_transactional_mail_under_contract(make, policy) -> None:
    d = make.decl(
        controller="Shop",
        purpose="service.transactional",
        legal_basis=LegalBasis.CONTRACT,
        promotional=False,
    )
    ev = evaluate(make.usage(controller="Shop"), None, d, policy, final=True)
    assert ev.decision is Decision.ALLOWED and ev.findings == []


def test_r1_legitimate_interest_does_not_cover_marketing_email(make, policy) -> None:
    d = make.decl(controller="Shop", purpose=MKT, legal_basis=LegalBasis.LEGITIMATE_INTEREST)
    ev = evaluate(make.usage(controller="Shop"), make.history(), d, policy, final=True)
    assert "R1" in rules_of(ev)


# -- R2 -------------------------------------------------------------------------------


def test_r2_purpose_absent_from_consent(make, policy) -> None:
    h = make.history(make.grant(purposes=["editorial.newsletter"]))
    ok = evaluate(make.usage(), h, make.decl(), policy, final=True)
    assert ok.decision is Decision.ALLOWED and ok.findings == []
    bad = evaluate(make.usage(), h, make.decl(purpose="profiling.scoring"), policy, final=True)
    assert rules_of(bad) == ["R2"]
    assert "editorial.newsletter for Le Quotidien only" in bad.findings[0].summary


def test_r2_refused_purpose(make, policy) -> None:
    h = make.history(make.grant(), make.consent("refuse", at=T0 + 1, purposes=[MKT]))
    ev = evaluate(make.usage(), h, make.decl(purpose=MKT), policy, final=True)
    assert rules_of(ev) == ["R2"] and "refused" in ev.findings[0].summary


# -- R3 -------------------------------------------------------------------------------


def test_r3_unprovable_consent(make, policy) -> None:
    h = make.history(make.grant(proof=Proof(method="checkbox")))
    ev = evaluate(make.usage(), h, make.decl(), policy, final=True)
    assert rules_of(ev) == ["R3"]
    summary = ev.findings[0].summary
    assert "timestamp" in summary and "collection point" in summary and "notice" in summary
    assert "method" not in summary.split("lacks")[1]
    assert ev.decision is Decision.VIOLATION


def test_r3_text_hash_stands_in_for_the_notice_version(make, policy) -> None:
    proof = Proof(method="checkbox", collected_at_ms=T0, collection_point="form-1", text_hash="h")
    ev = evaluate(
        make.usage(), make.history(make.grant(proof=proof)), make.decl(), policy, final=True
    )
    assert ev.findings == []


@pytest.mark.parametrize(
    ("strength", "decision", "rules"),
    [
        ("violation", Decision.VIOLATION, ["R3"]),
        ("warning", Decision.WARNING, ["R3"]),
        ("off", Decision.ALLOWED, []),
    ],
)
def test_r3_strength_is_configurable(make, strength, decision, rules) -> None:
    h = make.history(make.grant(proof=None))
    ev = evaluate(make.usage(), h, make.decl(), PolicySettings(r3_strength=strength), final=True)
    assert ev.decision is decision and rules_of(ev) == rules


# -- R5 -------------------------------------------------------------------------------


def test_r5_email_after_unsubscribe_past_the_allowance(make, policy) -> None:
    h = make.history(make.grant(at=T0), make.withdraw(at=T0 + DAY))
    within = evaluate(make.usage(at=T0 + 2 * DAY), h, make.decl(), policy, final=True)
    assert within.decision is Decision.ALLOWED  # e-mail allowance: 2 days
    past = evaluate(make.usage(at=T0 + 3 * DAY + 1), h, make.decl(), policy, final=True)
    assert rules_of(past) == ["R5"]
    assert "after the person's withdrawal" in past.findings[0].summary


def test_r5_sms_after_stop_has_no_allowance(make, policy) -> None:
    h = make.history(
        make.grant(at=T0, purposes=[MKT], channels=[Channel.SMS], controller="Shop"),
        make.withdraw(at=T0 + NOON + DAY, channels=[Channel.SMS], controller="Shop"),
    )
    d = make.decl(controller="Shop", purpose=MKT, channel=Channel.SMS)
    before = evaluate(
        make.usage(at=T0 + NOON + DAY - 1, controller="Shop", channel=Channel.SMS),
        h,
        d,
        policy,
        final=True,
    )
    assert before.decision is Decision.ALLOWED
    after = evaluate(
        make.usage(at=T0 + NOON + DAY + 1000, controller="Shop", channel=Channel.SMS),
        h,
        d,
        policy,
        final=True,
    )
    assert rules_of(after) == ["R5"]


def test_r5_does_not_stop_transactional_mail(make, policy) -> None:
    h = make.history(make.grant(at=T0), make.withdraw(at=T0 + DAY))
    d = make.decl(
        purpose="service.transactional", legal_basis=LegalBasis.CONTRACT, promotional=False
    )
    ev = evaluate(make.usage(at=T0 + 9 * DAY), h, d, policy, final=True)
    assert ev.decision is Decision.ALLOWED


def test_r5_use_after_erasure(make, policy) -> None:
    h = make.history(make.grant(at=T0))
    h.apply(make.consent("erase", at=T0 + DAY))
    after = evaluate(make.usage(at=T0 + 2 * DAY), h, make.decl(), policy, final=True)
    assert rules_of(after) == ["R5"] and "erased" in after.findings[0].summary
    before = evaluate(make.usage(at=T0 + DAY - 1), h, make.decl(), policy, final=True)
    assert before.decision is Decision.ALLOWED and before.consent is not None
    assert before.consent.state == "erased"


# -- R13 ------------------------------------------------------------------------------


def partner_history(make, recipients):
    return make.history(
        make.grant(
            at=T0,
            controller=LQ,
            purposes=["editorial.newsletter", "marketing.partner_transfer"],
            recipients=recipients,
        )
    )


def test_r13_partner_named_at_collection_is_allowed(make, policy) -> None:
    h = partner_history(make, ["Shop"])
    d = make.decl(controller="Shop", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=[LQ])
    ev = evaluate(make.usage(controller="Shop"), h, d, policy, final=False)
    assert ev.decision is Decision.ALLOWED and ev.findings == []
    assert ev.consent is not None and ev.consent.recipients == ["Shop"]


def test_r13_partner_not_named(make, policy) -> None:
    h = partner_history(make, ["Other Shop"])
    d = make.decl(controller="Shop", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=[LQ])
    ev = evaluate(make.usage(controller="Shop"), h, d, policy, final=True)
    assert rules_of(ev) == ["R13"]
    assert "named Other Shop, not Shop" in ev.findings[0].summary
    off = evaluate(
        make.usage(controller="Shop"), h, d, PolicySettings(r13_strength="off"), final=True
    )
    assert off.decision is Decision.ALLOWED
    warn = evaluate(
        make.usage(controller="Shop"), h, d, PolicySettings(r13_strength="warning"), final=True
    )
    assert warn.decision is Decision.WARNING


def test_r13_own_consent_collected_by_someone_else(make, policy) -> None:
    h = make.history(
        make.grant(controller="Shop", purposes=[MKT], collected_by="LeadGen", recipients=["Bank"])
    )
    d = make.decl(controller="Shop", purpose=MKT)
    assert rules_of(evaluate(make.usage(controller="Shop"), h, d, policy, final=True)) == ["R13"]
    named = make.history(
        make.grant(controller="Shop", purposes=[MKT], collected_by="LeadGen", recipients=["Shop"])
    )
    assert evaluate(make.usage(controller="Shop"), named, d, policy, final=True).findings == []


# -- R14 ------------------------------------------------------------------------------


def test_r14_second_hop(make, policy) -> None:
    # Le Quotidien collected and named Shop; Shop passed the addresses on to Reseller.
    h = partner_history(make, ["Shop", "Reseller"])
    first_hop = make.decl(
        controller="Shop", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=[LQ]
    )
    assert evaluate(make.usage(controller="Shop"), h, first_hop, policy, final=True).findings == []
    second_hop = make.decl(
        controller="Reseller", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=["Shop"]
    )
    ev = evaluate(make.usage(controller="Reseller"), h, second_hop, policy, final=True)
    assert "R14" in rules_of(ev)
    r14 = next(f for f in ev.findings if f.rule_id == "R14")
    assert "passed on by Shop" in r14.summary and "partner of Le Quotidien" in r14.summary


def test_r14_supplier_whose_own_consent_was_collected_by_another(make, policy) -> None:
    h = make.history(
        make.grant(
            controller="Broker",
            purposes=["marketing.partner_transfer"],
            collected_by="Quiz Site",
            recipients=["Broker", "Shop"],
        )
    )
    d = make.decl(
        controller="Shop", purpose=MKT, sourcing=Sourcing.RENTED, acquired_from=["Broker"]
    )
    ev = evaluate(make.usage(controller="Shop"), h, d, policy, final=True)
    assert "R14" in rules_of(ev)


def test_r14_not_when_the_person_consented_to_the_controller_directly(make, policy) -> None:
    h = partner_history(make, ["Shop"])
    h.apply(make.grant(controller="Reseller", purposes=[MKT]))
    d = make.decl(
        controller="Reseller", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=["Shop"]
    )
    assert evaluate(make.usage(controller="Reseller"), h, d, policy, final=True).findings == []


# -- R17 ------------------------------------------------------------------------------


def political(make, **kw):
    fields = {
        "controller": "Campagne 2027",
        "purpose": POL,
        "sourcing": Sourcing.RENTED,
        "acquired_from": ["ListCo"],
    }
    fields.update(kw)
    return make.decl(ref="c2027", **fields)


def test_r17_political_email_to_a_rented_newsletter_file(make, policy) -> None:
    h = make.history(make.grant(controller=LQ))
    ev = evaluate(
        make.usage(controller="ListCo", campaign_id="c2027"), h, political(make), policy, final=True
    )
    assert {"R2", "R17"} <= set(rules_of(ev))
    r2 = next(f for f in ev.findings if f.rule_id == "R2")
    assert r2.summary == (
        "political.communication e-mail by Campagne 2027 to an address whose consent covers "
        "editorial.newsletter for Le Quotidien only"
    )


def test_r17_explicit_political_consent_naming_the_campaign(make, policy) -> None:
    h = make.history(
        make.grant(
            controller="ListCo",
            purposes=["marketing.partner_transfer", POL],
            recipients=["Campagne 2027"],
        )
    )
    ev = evaluate(make.usage(campaign_id="c2027"), h, political(make), policy, final=True)
    assert ev.findings == []


def test_r17_an_all_purpose_grant_is_not_explicit(make, policy) -> None:
    h = make.history(make.grant(controller="Campagne 2027", purposes=[]))
    ev = evaluate(make.usage(campaign_id="c2027"), h, political(make), policy, final=True)
    assert rules_of(ev) == ["R17"]
    own = evaluate(
        make.usage(campaign_id="c2027"),
        h,
        political(make, sourcing=Sourcing.OWN),
        policy,
        final=True,
    )
    assert own.findings == []


# -- R20 ------------------------------------------------------------------------------


def test_r20_prospect_contacted_after_three_years_without_contact(make, policy) -> None:
    h = make.history(make.grant(at=T0, purposes=[MKT]))
    d = make.decl(purpose=MKT)
    ok = evaluate(make.usage(at=T0 + 1000 * DAY), h, d, policy, final=True)
    assert ok.findings == []
    stale = evaluate(make.usage(at=T0 + 1100 * DAY), h, d, policy, final=True)
    assert rules_of(stale) == ["R20"] and stale.decision is Decision.WARNING


def test_r20_a_click_counts_as_contact_an_open_does_not(make, policy) -> None:
    h = make.history(make.grant(at=T0, purposes=[MKT]))
    d = make.decl(purpose=MKT)
    h.note_contact(make.usage(at=T0 + 500 * DAY, kind=UsageKind.OPEN))
    assert rules_of(evaluate(make.usage(at=T0 + 1100 * DAY), h, d, policy, final=True)) == ["R20"]
    h.note_contact(make.usage(at=T0 + 500 * DAY, kind=UsageKind.CLICK))
    assert evaluate(make.usage(at=T0 + 1100 * DAY), h, d, policy, final=True).findings == []


# -- configuration ------------------------------------------------------------------------


def test_cfg_undeclared_only_when_final(make, policy) -> None:
    h = make.history(make.grant())
    u = make.usage(campaign_id="mystery", list_id="9")
    pending = evaluate(u, h, None, policy, final=False)
    assert pending.decision is Decision.PENDING and pending.findings == []
    final = evaluate(u, h, None, policy, final=True)
    assert rules_of(final) == ["CFG-UNDECLARED"]
    assert "campaign mystery, list 9" in final.findings[0].summary
    assert final.decision is Decision.WARNING


def test_cfg_undeclared_with_a_platform_purpose_still_judges_consent(make, policy) -> None:
    h = make.history(make.grant())
    u = make.usage(campaign_id="mystery", declared_purpose="profiling.scoring")
    ev = evaluate(u, h, None, policy, final=True)
    assert set(rules_of(ev)) == {"CFG-UNDECLARED", "R2"}


def test_cfg_unmapped_fails_closed_and_raises_a_config_alert(make, policy) -> None:
    h = make.history(make.grant(purposes=[], unmapped_purposes=["onetrust:1234"]))
    ev = evaluate(make.usage(), h, make.decl(), policy, final=True)
    assert "CFG-UNMAPPED" in rules_of(ev) and "R2" in rules_of(ev)
    assert ev.decision is Decision.VIOLATION
    assert "onetrust:1234" in next(f for f in ev.findings if f.rule_id == "CFG-UNMAPPED").summary
    mapped = make.history(make.grant(purposes=["editorial.newsletter"], unmapped_purposes=["x"]))
    ev2 = evaluate(make.usage(), mapped, make.decl(), policy, final=True)
    assert rules_of(ev2) == ["CFG-UNMAPPED"] and ev2.decision is Decision.WARNING


def test_r13_a_partner_grant_naming_the_controller_is_preferred(make, policy) -> None:
    h = make.history(
        make.grant(controller="A Site", purposes=["marketing.partner_transfer"], recipients=["X"]),
        make.grant(
            controller="B Site", purposes=["marketing.partner_transfer"], recipients=["Shop"]
        ),
    )
    d = make.decl(controller="Shop", purpose=MKT, sourcing=Sourcing.PARTNER)  # no acquired_from
    ev = evaluate(make.usage(controller="Shop"), h, d, policy, final=True)
    assert ev.findings == [] and ev.consent is not None and ev.consent.recipients == ["Shop"]


def test_r5_scoped_unsubscribe_only_for_that_list(make, policy) -> None:
    h = make.history(
        make.grant(at=T0, controller="Shop", purposes=[MKT]),
        make.withdraw(at=T0 + DAY, controller="Shop", purposes=[MKT], scope="list:42"),
    )
    d = make.decl(controller="Shop", purpose=MKT, ref="spring")
    other_list = make.usage(at=T0 + 9 * DAY, controller="Shop", campaign_id="spring", list_id="7")
    assert evaluate(other_list, h, d, policy, final=True).findings == []
    that_list = make.usage(at=T0 + 9 * DAY, controller="Shop", campaign_id="spring", list_id="42")
    assert rules_of(evaluate(that_list, h, d, policy, final=True)) == ["R5"]


def test_partner_consent_does_not_override_the_persons_own_withdrawal(make, policy) -> None:
    h = partner_history(make, ["Shop"])
    h.apply(make.withdraw(at=T0 + DAY, controller="Shop", channels=[]))
    d = make.decl(controller="Shop", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=[LQ])
    ev = evaluate(make.usage(controller="Shop", at=T0 + 9 * DAY), h, d, policy, final=True)
    assert rules_of(ev) == ["R5"]


# -- #8 findings: proof by reference, narrow matching ---------------------------------


@pytest.mark.parametrize(
    ("proof", "reference"),
    [
        # a CMP keeps the consent record (Didomi, OneTrust): the event names it
        (Proof(method="cmp", collected_at_ms=T0, record_ref="didomi:evt-81f3"), "evt-81f3"),
        (Proof(record_ref="onetrust:receipt-9"), "receipt-9"),
        # a TCF consent string, or a CMP receipt id, as the vendor receipt
        (Proof(method="tcf", vendor_receipt="CPzHq4APzHq4AAHABBENAx"), "CPzHq4APzHq4AAHABBENAx"),
        # a lead certificate kept by TrustedForm / LeadiD
        (Proof(certificate_id="https://cert.trustedform.com/abc"), "trustedform"),
    ],
)
def test_r3_a_consent_that_references_its_proof_record_is_provable(
    make, policy, proof, reference
) -> None:
    """#8: 80 of 80 SMS on Didomi opt-ins raised R3; the CMP holds the proof."""
    h = make.history(make.grant(proof=proof))
    ev = evaluate(make.usage(), h, make.decl(), policy, final=True)
    assert ev.findings == [] and ev.decision is Decision.ALLOWED
    # the reference travels with the evidence
    assert ev.consent is not None and ev.consent.proof == proof
    assert reference in str(ev.consent.proof)


def test_r3_still_fires_where_no_proof_exists_anywhere(make, policy) -> None:
    for proof in (None, Proof(), Proof(method="checkbox", collected_at_ms=T0)):
        ev = evaluate(
            make.usage(), make.history(make.grant(proof=proof)), make.decl(), policy, final=True
        )
        assert rules_of(ev) == ["R3"], proof
        assert "references no proof record" in ev.findings[0].summary
    # its strength setting is unchanged
    weak = make.history(make.grant(proof=None))
    warn = evaluate(
        make.usage(), weak, make.decl(), PolicySettings(r3_strength="warning"), final=True
    )
    assert warn.decision is Decision.WARNING
    off = evaluate(make.usage(), weak, make.decl(), PolicySettings(r3_strength="off"), final=True)
    assert off.findings == []


def test_partner_offers_naming_acme_cover_acmes_own_direct_marketing(make, policy) -> None:
    """#8: a consent to partner offers that names Acme, recorded under Acme (a CMP's
    vendor list), allows Acme's marketing.direct (10 of 10 sends got R2)."""
    h = make.history(
        make.grant(
            controller="Acme",
            purposes=["marketing.partner_transfer"],
            collected_by=LQ,
            recipients=["Acme"],
        )
    )
    for decl in (
        make.decl(controller="Acme", purpose=MKT),
        make.decl(controller="Acme", purpose=MKT, sourcing=Sourcing.PARTNER, acquired_from=[LQ]),
    ):
        ev = evaluate(make.usage(controller="Acme"), h, decl, policy, final=True)
        assert ev.findings == [] and ev.decision is Decision.ALLOWED, rules_of(ev)
    # the same grant does not cover a political message, and not naming Acme is R13's case
    pol = evaluate(
        make.usage(controller="Acme"),
        h,
        make.decl(controller="Acme", purpose=POL),
        policy,
        final=True,
    )
    assert "R2" in rules_of(pol)
    unnamed = make.history(
        make.grant(
            controller="Acme",
            purposes=["marketing.partner_transfer"],
            collected_by=LQ,
            recipients=[],
        )
    )
    ev = evaluate(
        make.usage(controller="Acme"),
        unnamed,
        make.decl(controller="Acme", purpose=MKT),
        policy,
        final=True,
    )
    assert rules_of(ev) == ["R13"]
    # and the person's own later withdrawal of Acme's marketing still wins
    withdrawn = make.history(
        make.grant(
            controller="Acme",
            purposes=["marketing.partner_transfer"],
            collected_by=LQ,
            recipients=["Acme"],
        ),
        make.withdraw(at=T0 + 1, controller="Acme", purposes=[MKT]),
    )
    ev = evaluate(
        make.usage(controller="Acme", at=T0 + 5 * DAY),
        withdrawn,
        make.decl(controller="Acme", purpose=MKT),
        policy,
        final=True,
    )
    assert rules_of(ev) == ["R5"]


def test_a_list_scoped_consent_covers_a_campaign_declared_with_that_list_as_data_source(
    make, policy
) -> None:
    """#8: the publisher's newsletter sent through Mandrill without the list id in its tags
    got R2 (20 of 20) though its declaration names the list among its data sources."""
    h = make.history(make.grant(scope="morning-news"))
    usage = make.usage(campaign_id="mandrill-weekly")  # no list id, no tag
    decl = make.decl(ref="mandrill-weekly", data_sources=["morning-news"])
    ev = evaluate(usage, h, decl, policy, final=True)
    assert ev.findings == [] and ev.decision is Decision.ALLOWED, rules_of(ev)
    # a declaration that names another list is not covered
    other = make.decl(ref="mandrill-weekly", data_sources=["evening-news"])
    assert rules_of(evaluate(usage, h, other, policy, final=True)) == ["R2"]
    # and an unsubscribe from that list binds the campaign too
    gone = make.history(
        make.grant(scope="morning-news"), make.withdraw(at=T0 + 1, scope="morning-news")
    )
    ev = evaluate(
        make.usage(campaign_id="mandrill-weekly", at=T0 + 5 * DAY), gone, decl, policy, final=True
    )
    assert rules_of(ev) == ["R5"]
