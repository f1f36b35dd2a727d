from __future__ import annotations

from consentinel.streams.events.records import Channel, LegalBasis, Sourcing
from consentinel.streams.policy.registry import candidate_ids, resolve, validate_declarations


def test_resolution_order_campaign_list_form_sender_tags(make) -> None:
    u = make.usage(campaign_id="c1", list_id="l1", form_id="f1", sender="news@x", tags=["t1", "t2"])
    assert candidate_ids(u) == [
        "campaign:c1",
        "list:l1",
        "form:f1",
        "sender:news@x",
        "tag:t1",
        "tag:t2",
    ]
    known = {
        "list:l1": make.decl(ref="l1", ref_kind="list"),
        "tag:t2": make.decl(ref="t2", ref_kind="tag"),
    }
    asked: list[str] = []

    def lookup(decl_id: str):
        asked.append(decl_id)
        return known.get(decl_id)

    assert resolve(u, lookup) is known["list:l1"]
    assert asked == ["campaign:c1", "list:l1"]
    only_tags = make.usage(campaign_id=None, tags=["t1", "t2"])
    assert resolve(only_tags, known.get) is known["tag:t2"]
    assert resolve(make.usage(campaign_id=None), known.get) is None


def test_validate_good_declarations_both_spellings() -> None:
    decls, problems = validate_declarations(
        [
            (
                1,
                {
                    "campaign": "spring-2027",
                    "controller": "Shop",
                    "purpose": "marketing.direct",
                    "channel": "email",
                },
            ),
            (
                7,
                {
                    "ref_kind": "list",
                    "ref": 42,
                    "controller": "Campagne 2027",
                    "purpose": "political.communication",
                    "channel": "sms",
                    "legal_basis": "consent",
                    "sourcing": "rented",
                    "acquired_from": ["ListCo"],
                    "data_sources": ["file-2026-03.csv"],
                    "description": "GOTV",
                },
            ),
            (
                15,
                {
                    "sender": "noreply@shop",
                    "controller": "Shop",
                    "purpose": "service.transactional",
                    "channel": "email",
                    "legal_basis": "contract",
                },
            ),
        ],
        updated_at_ms=5,
    )
    assert problems == []
    assert [d.decl_id for d in decls] == ["campaign:spring-2027", "list:42", "sender:noreply@shop"]
    assert decls[1].sourcing is Sourcing.RENTED and decls[1].channel is Channel.SMS
    assert decls[1].acquired_from == ["ListCo"] and decls[1].updated_at_ms == 5
    assert decls[0].promotional is True and decls[2].promotional is False
    assert decls[2].legal_basis is LegalBasis.CONTRACT


def test_validate_reports_every_problem_with_its_line() -> None:
    decls, problems = validate_declarations(
        [
            (
                3,
                {
                    "campaign": "a",
                    "controller": "Shop",
                    "purpose": "newsletter",
                    "channel": "email",
                },
            ),
            (
                9,
                {
                    "campaign": "b",
                    "controller": "Shop",
                    "purpose": "marketing.direct",
                    "channel": "fax",
                    "legal_basis": "vibes",
                    "sourcing": "found",
                },
            ),
            (14, {"controller": "", "purpose": "marketing.direct"}),
            (
                20,
                {
                    "campaign": "c",
                    "controller": "Shop",
                    "purpose": "marketing.direct",
                    "channel": "email",
                    "colour": "red",
                },
            ),
            (
                25,
                {
                    "campaign": "d",
                    "controller": "Shop",
                    "purpose": "marketing.direct",
                    "channel": "email",
                },
            ),
            (
                31,
                {"campaign": "d", "controller": "Shop", "purpose": "measurement", "channel": "web"},
            ),
            (
                40,
                {
                    "campaign": "e",
                    "list": "f",
                    "controller": "Shop",
                    "purpose": "measurement",
                    "channel": "web",
                    "acquired_from": "X",
                },
            ),
        ]
    )
    assert [d.decl_id for d in decls] == ["campaign:d"]
    text = "\n".join(problems)
    assert "line 3: unknown purpose 'newsletter'" in text and "editorial.newsletter" in text
    assert "line 9: unknown channel 'fax'" in text
    assert "line 9: unknown legal_basis 'vibes'" in text
    assert "line 9: unknown sourcing 'found'" in text
    assert "line 14: missing what is declared" in text
    assert "line 14: missing 'controller'" in text
    assert "line 14: missing 'channel'" in text
    assert "line 20: unknown field(s) colour" in text
    assert "line 31: campaign:d is already declared at line 25" in text
    assert "line 40: names several things (campaign, list)" in text
    assert all(p.startswith("line ") for p in problems)


def test_resolve_asks_the_registry_every_time_and_keeps_candidates_bounded(make) -> None:
    from consentinel.streams.policy import registry

    known: dict[str, object] = {}
    u = make.usage(campaign_id="c1", list_id="l1", tags=["t1"])
    assert resolve(u, known.get) is None
    known["tag:t1"] = make.decl(ref="t1", ref_kind="tag")
    assert resolve(u, known.get) is known["tag:t1"]  # a declaration added since: found
    known["list:l1"] = make.decl(ref="l1", ref_kind="list")
    assert resolve(u, known.get) is known["list:l1"]  # the earlier candidate wins
    # uses that differ in one name only (here a tag) each get their own candidates
    by_tag = make.usage(campaign_id="c1", list_id="l2", tags=["t2"])
    known["tag:t2"] = make.decl(ref="t2", ref_kind="tag")
    assert resolve(by_tag, known.get) is known["tag:t2"]
    assert (
        resolve(make.usage(campaign_id="c1", list_id="l2", tags=["t1"]), known.get)
        is (known["tag:t1"])
    )
    for n in range(registry._CANDIDATES_MAX + 10):  # every name different: bounded
        other = make.usage(campaign_id=f"c{n}", tags=[f"t{n % 3}"])
        asked: list[str] = []
        resolve(other, lambda d, asked=asked: asked.append(d))  # type: ignore[func-returns-value]
        assert asked == candidate_ids(other)
        assert len(registry._CANDIDATES) <= registry._CANDIDATES_MAX
