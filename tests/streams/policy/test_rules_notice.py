"""R4 (notice changed), R21 (GPC), R22 (TCF purpose and vendor) and R6 (opt-out means):
allowed, violating and edge cases, judged through ``evaluate``."""

from __future__ import annotations

import dataclasses

import pytest
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    LegalBasis,
    Proof,
    UsageKind,
)
from consentinel.streams.policy.engine import evaluate
from consentinel.streams.policy.history import ConsentHistory
from consentinel.streams.policy.registry import validate_declarations

NEWS = "editorial.newsletter"
MKT = "marketing.direct"
PARTNER = "marketing.partner_transfer"
#: purposes 1-4 consented; vendors 12, 42 and 755 consented; no publisher restriction
TC_PLAIN = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAAA"
#: the same, with a publisher restriction "not allowed" on purpose 2 for vendor 42 (made with
#: the encoder of tests/connectors/test_tcf.py: core(restrictions=[(2, 0, [(42, None)])]))
TC_RESTRICTED = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAIQACACoAAA"


def rules_of(ev) -> list[str]:
    return [f.rule_id for f in ev.findings]


def summary(ev, rule_id: str) -> str:
    return next(f.summary for f in ev.findings if f.rule_id == rule_id)


# -- R4 -------------------------------------------------------------------------------------


def judge_notice(make, policy, consented: str | None, in_force: str | None, **kw):
    proof = dataclasses.replace(make.FULL_PROOF, notice_version=consented)
    history = make.history(make.grant(proof=proof))
    return evaluate(
        make.usage(), history, make.decl(notice_version=in_force, **kw), policy, final=True
    )


def test_r4_consent_to_an_older_notice_is_a_warning(make, policy) -> None:
    ev = judge_notice(make, policy, "notice-v3", "notice-v4")
    assert rules_of(ev) == ["R4"]
    assert str(ev.decision) == "warning"
    assert "notice-v3" in summary(ev, "R4") and "notice-v4" in summary(ev, "R4")


def test_r4_not_when_the_versions_match_or_either_is_unknown(make, policy) -> None:
    assert judge_notice(make, policy, "notice-v4", "notice-v4").findings == []
    assert judge_notice(make, policy, "notice-v3", None).findings == []
    # no notice version on the consent: R4 cannot tell (the proof has a text hash instead)
    proof = Proof(method="checkbox", collected_at_ms=make.T0, collection_point="f", text_hash="h")
    ev = evaluate(
        make.usage(),
        make.history(make.grant(proof=proof)),
        make.decl(notice_version="notice-v4"),
        policy,
        final=True,
    )
    assert ev.findings == []


def test_r4_renewed_consent_clears_it(make, policy) -> None:
    old = make.grant(proof=dataclasses.replace(make.FULL_PROOF, notice_version="notice-v3"))
    renewed = make.grant(
        at=make.T0 + make.HOUR,
        proof=dataclasses.replace(make.FULL_PROOF, notice_version="notice-v4"),
    )
    decl = make.decl(notice_version="notice-v4")
    ev = evaluate(make.usage(), make.history(old, renewed), decl, policy, final=True)
    assert ev.findings == []


def test_r4_not_for_a_use_that_does_not_rest_on_consent(make, policy) -> None:
    ev = judge_notice(
        make,
        policy,
        "notice-v3",
        "notice-v4",
        purpose="service.transactional",
        legal_basis=LegalBasis.CONTRACT,
        promotional=False,
    )
    assert "R4" not in rules_of(ev)


# -- R21 ------------------------------------------------------------------------------------


def transfer(make, policy, gpc: bool | None, kind=UsageKind.LIST_TRANSFER, purpose=PARTNER):
    grant = make.grant(controller="Broker", purposes=[PARTNER], gpc=gpc)
    usage = make.usage(controller="Broker", kind=kind, campaign_id="rental")
    decl = make.decl(ref="rental", controller="Broker", purpose=purpose)
    return evaluate(usage, make.history(grant), decl, policy, final=True)


def test_r21_transfer_of_a_contact_collected_with_gpc_is_a_violation(make, policy) -> None:
    ev = transfer(make, policy, gpc=True)
    assert rules_of(ev) == ["R21"]
    assert "Sec-GPC: 1" in summary(ev, "R21")
    assert "R21" in rules_of(transfer(make, policy, True, UsageKind.LEAD_DELIVERED, MKT))
    assert "R21" in rules_of(transfer(make, policy, True, UsageKind.SEND, "data.sale_enrichment"))


def test_r21_not_without_the_signal_or_for_the_controllers_own_use(make, policy) -> None:
    assert transfer(make, policy, gpc=None).findings == []
    assert transfer(make, policy, gpc=False).findings == []
    assert "R21" not in rules_of(transfer(make, policy, True, UsageKind.SEND, MKT))


def test_r21_a_gpc_objection_in_force_counts_too(make, policy) -> None:
    grant = make.grant(controller="Broker", purposes=[PARTNER])
    refusal = make.consent(
        ConsentAction.REFUSE,
        at=make.T0 + 1,
        controller="Broker",
        purposes=["data.sale_enrichment"],
        gpc=True,
    )
    usage = make.usage(controller="Broker", kind=UsageKind.LIST_TRANSFER, campaign_id="rental")
    decl = make.decl(ref="rental", controller="Broker", purpose=PARTNER)
    ev = evaluate(usage, make.history(grant, refusal), decl, policy, final=True)
    assert "R21" in rules_of(ev)


def test_r21_gpc_survives_the_history_wire_format(make) -> None:
    h = make.history(make.grant(gpc=True), make.grant(controller="Other"))
    obj = h.to_obj()
    assert obj["c"]["Le Quotidien"]["e"][0]["gp"] is True
    assert "gp" not in obj["c"]["Other"]["e"][0]
    back = ConsentHistory.from_obj(obj)
    assert back.state_at("Le Quotidien", make.T0).entries[0].gpc is True
    assert back.state_at("Other", make.T0).entries[0].gpc is False


# -- R22 ------------------------------------------------------------------------------------


def tcf_use(make, policy, tc: str | None, purpose: int = 2, vendor: int = 42, **decl):
    events = []
    if tc is not None:
        proof = Proof(method="tcf", collected_at_ms=make.T0, vendor_receipt=tc)
        events.append(make.grant(purposes=[MKT], channels=[], proof=proof))
    else:
        events.append(make.grant(purposes=[MKT], channels=[]))
    d = make.decl(purpose=MKT, tcf_purpose=purpose, tcf_vendor=vendor, **decl)
    return evaluate(make.usage(), make.history(*events), d, policy, final=True)


def test_r22_allowed_when_the_tc_string_consents_to_purpose_and_vendor(make, policy) -> None:
    assert tcf_use(make, policy, TC_PLAIN).findings == []
    assert tcf_use(make, policy, TC_RESTRICTED, purpose=2, vendor=12).findings == []


@pytest.mark.parametrize(
    ("tc", "purpose", "vendor", "why"),
    [
        (TC_PLAIN, 7, 42, "no consent for TCF purpose 7"),
        (TC_PLAIN, 2, 43, "no consent for vendor 43"),
        (TC_RESTRICTED, 2, 42, "publisher restriction on purpose 2 for vendor 42"),
        (None, 2, 42, "no TC string on record"),
        ("CPzHq4APzHq4AAHABBENAx", 2, 42, "unreadable"),
    ],
)
def test_r22_violations(make, policy, tc, purpose, vendor, why) -> None:
    ev = tcf_use(make, policy, tc, purpose, vendor)
    assert rules_of(ev) == ["R22"]
    assert why in summary(ev, "R22")


def test_r22_only_for_uses_declared_under_a_tcf_purpose_on_consent(make, policy) -> None:
    ev = evaluate(make.usage(), make.history(make.grant()), make.decl(), policy, final=True)
    assert ev.findings == []
    li = tcf_use(make, policy, None, legal_basis=LegalBasis.LEGITIMATE_INTEREST)
    assert "R22" not in rules_of(li)


def test_r22_reads_the_latest_tc_string(make, policy) -> None:
    old = make.grant(
        purposes=[MKT], channels=[], proof=Proof(method="tcf", vendor_receipt=TC_RESTRICTED)
    )
    new = make.grant(
        at=make.T0 + make.HOUR,
        purposes=[MKT],
        channels=[],
        proof=Proof(method="tcf", vendor_receipt=TC_PLAIN),
    )
    d = make.decl(purpose=MKT, tcf_purpose=2, tcf_vendor=42)
    assert evaluate(make.usage(), make.history(old, new), d, policy, final=True).findings == []
    assert rules_of(evaluate(make.usage(), make.history(new, old), d, policy, final=True)) == []
    only_old = evaluate(make.usage(), make.history(old), d, policy, final=True)
    assert rules_of(only_old) == ["R22"]


# -- R6 -------------------------------------------------------------------------------------


def mail(make, policy, declared: bool | None = None, **seen):
    usage = make.usage(**seen)
    return evaluate(
        usage,
        make.history(make.grant()),
        make.decl(opt_out_in_message=declared),
        policy,
        final=True,
    )


def text(make, policy, seen: bool | None, declared: bool | None = None, purpose=MKT, **decl):
    noon = make.T0 + 11 * make.HOUR  # 12:00 Paris: inside the SMS charter hours
    usage = make.usage(at=noon, channel=Channel.SMS, opt_out_instruction=seen, campaign_id="weekly")
    history = make.history(make.grant(purposes=[MKT], channels=[Channel.SMS]))
    d = make.decl(purpose=purpose, channel=Channel.SMS, opt_out_in_message=declared, **decl)
    return evaluate(usage, history, d, policy, final=True)


def test_r6_email_needs_both_headers(make, policy) -> None:
    both = mail(make, policy, list_unsubscribe=True, list_unsubscribe_post=True)
    assert both.findings == []
    no_post = mail(make, policy, list_unsubscribe=True, list_unsubscribe_post=False)
    assert rules_of(no_post) == ["R6"]
    assert "List-Unsubscribe-Post" in summary(no_post, "R6")
    assert "as the connector saw it" in summary(no_post, "R6")
    neither = mail(make, policy, list_unsubscribe=False, list_unsubscribe_post=False)
    assert "List-Unsubscribe and List-Unsubscribe-Post" in summary(neither, "R6")


def test_r6_unknown_is_no_finding_and_the_declaration_fills_in(make, policy) -> None:
    assert mail(make, policy).findings == []  # nothing seen, nothing declared
    assert mail(make, policy, declared=True).findings == []
    declared_without = mail(make, policy, declared=False)
    assert rules_of(declared_without) == ["R6"]
    assert "as its declaration says" in summary(declared_without, "R6")
    # seen for one header, declared for the other
    half = mail(make, policy, declared=False, list_unsubscribe=True)
    assert "List-Unsubscribe-Post" in summary(half, "R6")


def test_r6_what_the_connector_saw_wins_over_the_declaration(make, policy) -> None:
    seen_ok = mail(make, policy, declared=False, list_unsubscribe=True, list_unsubscribe_post=True)
    assert seen_ok.findings == []
    seen_missing = mail(
        make, policy, declared=True, list_unsubscribe=False, list_unsubscribe_post=True
    )
    assert rules_of(seen_missing) == ["R6"]


def test_r6_sms_needs_an_opt_out_instruction(make, policy) -> None:
    assert text(make, policy, True).findings == []
    assert text(make, policy, None).findings == []
    assert rules_of(text(make, policy, False)) == ["R6"]
    assert "STOP" in summary(text(make, policy, False), "R6")
    assert rules_of(text(make, policy, None, declared=False)) == ["R6"]
    assert text(make, policy, True, declared=False).findings == []


def test_r6_not_for_transactional_messages_nor_non_sends(make, policy) -> None:
    ev = text(make, policy, False, purpose="service.transactional", promotional=False)
    assert "R6" not in rules_of(ev)
    click = make.usage(kind=UsageKind.CLICK, list_unsubscribe=False, list_unsubscribe_post=False)
    ev = evaluate(click, make.history(make.grant()), make.decl(), policy, final=True)
    assert ev.findings == []


# -- the registry file accepts the fields these rules read ------------------------------------


def test_registry_accepts_the_single_rule_fields() -> None:
    decls, problems = validate_declarations(
        [
            (
                1,
                {
                    "campaign": "c",
                    "controller": "acme",
                    "purpose": MKT,
                    "channel": "email",
                    "notice_version": "v8",
                    "opt_out_in_message": True,
                    "tcf_purpose": 2,
                    "tcf_vendor": 42,
                    "bloctel_cleaned_at_ms": 1_767_225_600_000,
                    "sector": "press",
                },
            )
        ]
    )
    assert problems == []
    d = decls[0]
    assert (d.notice_version, d.opt_out_in_message, d.tcf_purpose, d.tcf_vendor) == (
        "v8",
        True,
        2,
        42,
    )
    assert (d.bloctel_cleaned_at_ms, d.sector) == (1_767_225_600_000, "press")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"tcf_purpose": 2}, "tcf_purpose and tcf_vendor go together"),
        ({"tcf_purpose": 0, "tcf_vendor": 42}, "1 to 24"),
        ({"tcf_purpose": 2, "tcf_vendor": True}, "'tcf_vendor' should be"),
        ({"opt_out_in_message": "yes"}, "'opt_out_in_message' should be true or false"),
        ({"notice_version": " "}, "'notice_version' should be"),
        ({"bloctel_cleaned_at_ms": "2026-08-01"}, "epoch milliseconds"),
    ],
)
def test_registry_explains_a_wrong_single_rule_field(extra, says) -> None:
    doc = {"campaign": "c", "controller": "acme", "purpose": MKT, "channel": "email", **extra}
    decls, problems = validate_declarations([(7, doc)])
    assert decls == []
    assert any(p.startswith("line 7:") and says in p for p in problems), problems
