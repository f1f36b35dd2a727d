from __future__ import annotations

import dataclasses
import json

import pytest
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind
from consentinel.streams.policy.history import ConsentHistory, ConsentStatus

T0 = 1_767_225_600_000
DAY = 86_400_000
NL = "editorial.newsletter"
MKT = "marketing.direct"
LQ = "Le Quotidien"


def test_unknown_before_any_consent_and_given_after(make) -> None:
    h = make.history(make.grant(at=T0))
    assert h.state_at(LQ, T0 - 1).status is ConsentStatus.UNKNOWN
    state = h.state_at(LQ, T0)
    assert state.status is ConsentStatus.GIVEN
    assert state.covers(NL, "email")
    assert not state.covers(NL, "sms")
    assert not state.covers(MKT, "email")
    assert h.state_at("Someone Else", T0 + DAY).status is ConsentStatus.UNKNOWN


def test_late_event_is_inserted_at_its_event_time_not_appended(make) -> None:
    grant = make.grant(at=T0)
    withdraw = make.withdraw(at=T0 + 2 * DAY)
    regrant = make.grant(at=T0 + 4 * DAY)
    h = make.history(grant, regrant)
    assert h.state_at(LQ, T0 + 3 * DAY).covers(NL, "email")
    assert h.apply(withdraw)  # arrives last, happened in between
    assert not h.state_at(LQ, T0 + 3 * DAY).covers(NL, "email")
    assert h.state_at(LQ, T0 + 3 * DAY).status is ConsentStatus.WITHDRAWN
    assert h.state_at(LQ, T0 + 3 * DAY).withdrawn_at_ms == T0 + 2 * DAY
    assert h.state_at(LQ, T0 + 5 * DAY).covers(NL, "email")
    assert h.state_at(LQ, T0 + DAY).covers(NL, "email")


def test_arrival_order_does_not_matter(make) -> None:
    events = [
        make.grant(at=T0, purposes=[NL, MKT]),
        make.withdraw(at=T0 + DAY, purposes=[MKT]),
        make.grant(at=T0 + 2 * DAY, purposes=[MKT], channels=[Channel.SMS]),
        make.consent("refuse", at=T0 + 3 * DAY, purposes=[NL]),
    ]
    forward = make.history(*events)
    backward = make.history(*reversed(events))
    for t in range(T0 - DAY, T0 + 5 * DAY, DAY // 2):
        assert forward.state_at(LQ, t) == backward.state_at(LQ, t)
    assert forward.to_obj() == backward.to_obj()


def test_duplicates_are_ignored(make) -> None:
    grant = make.grant(at=T0)
    h = make.history()
    assert h.apply(grant) is True
    assert h.apply(grant) is False
    assert h.version_count == 1


def test_partial_withdrawal_per_purpose_and_per_channel(make) -> None:
    h = make.history(
        make.grant(at=T0, purposes=[NL, MKT], channels=[]),  # all channels
        make.withdraw(at=T0 + DAY, purposes=[MKT], channels=[Channel.SMS]),  # STOP by SMS
    )
    s = h.state_at(LQ, T0 + 2 * DAY)
    assert s.status is ConsentStatus.GIVEN
    assert s.covers(MKT, "email") and s.covers(NL, "sms")
    assert not s.covers(MKT, "sms")
    blocked = s.block_for(MKT, "sms")
    assert blocked is not None and blocked.action is ConsentAction.WITHDRAW
    assert s.purposes == {NL, MKT}  # marketing is still granted by e-mail
    assert s.all_channels


def test_withdraw_with_no_purposes_withdraws_everything(make) -> None:
    h = make.history(
        make.grant(at=T0, purposes=[NL, MKT], channels=[]),
        make.withdraw(at=T0 + DAY, channels=[]),
    )
    s = h.state_at(LQ, T0 + DAY)
    assert s.status is ConsentStatus.WITHDRAWN
    assert not s.covers(NL, "email") and not s.covers(MKT, "sms")
    assert s.summary().purposes == []


def test_grant_with_no_purposes_is_all_purposes_and_summarised_as_star(make) -> None:
    h = make.history(
        make.grant(at=T0, purposes=[], channels=[]),
        make.withdraw(at=T0 + DAY, purposes=[MKT], channels=[]),
    )
    s = h.state_at(LQ, T0 + DAY)
    assert s.covers("measurement", "web") and s.covers(None, "email")
    assert not s.covers(MKT, "email")
    assert s.summary().purposes == ["*", f"-{MKT}"]
    assert s.summary().channels == ["*"]


def test_expiry_is_honoured_at_the_time_asked(make) -> None:
    h = make.history(make.grant(at=T0, expires_at_ms=T0 + 10 * DAY))
    assert h.state_at(LQ, T0 + 9 * DAY).covers(NL, "email")
    s = h.state_at(LQ, T0 + 10 * DAY)
    assert s.status is ConsentStatus.EXPIRED and not s.covers(NL, "email")


def test_expire_action(make) -> None:
    h = make.history(make.grant(at=T0), make.consent("expire", at=T0 + DAY))
    assert h.state_at(LQ, T0 + DAY).status is ConsentStatus.EXPIRED


def test_tie_at_the_same_millisecond_withdrawal_wins(make) -> None:
    a = make.grant(at=T0 + DAY, event_id="z-grant")
    b = make.withdraw(at=T0 + DAY, event_id="a-withdraw")
    for order in ((a, b), (b, a)):
        assert not make.history(*order).state_at(LQ, T0 + DAY).covers(NL, "email")


def test_scoped_withdrawal_only_blocks_uses_naming_the_scope(make) -> None:
    h = make.history(
        make.grant(at=T0, purposes=[MKT]),
        make.withdraw(at=T0 + DAY, purposes=[MKT], scope="list:42"),
    )
    s = h.state_at(LQ, T0 + 2 * DAY)
    assert s.covers(MKT, "email", frozenset({"list:7"}))
    assert not s.covers(MKT, "email", frozenset({"list:42", "42"}))


def test_unmapped_purposes_fail_closed(make) -> None:
    h = make.history(make.grant(at=T0, purposes=[], unmapped_purposes=["didomi:xyz"]))
    s = h.state_at(LQ, T0)
    assert not s.covers(NL, "email") and not s.covers(None, "email")
    assert s.unmapped_purposes == {"didomi:xyz"}
    # a withdrawal naming only unmapped purposes withdraws everything
    h2 = make.history(
        make.grant(at=T0, purposes=[NL]),
        make.withdraw(at=T0 + DAY, purposes=[], unmapped_purposes=["didomi:xyz"]),
    )
    assert not h2.state_at(LQ, T0 + DAY).covers(NL, "email")


def test_state_carries_proof_recipients_and_version_ids(make) -> None:
    first = make.grant(at=T0, purposes=[NL])
    second = make.grant(
        at=T0 + DAY,
        purposes=["marketing.partner_transfer"],
        recipients=["Partner A"],
        collected_by="Le Quotidien",
    )
    h = make.history(first, second)
    s = h.state_at(LQ, T0 + DAY)
    assert s.version_event_ids == (first.event_id, second.event_id)
    assert s.version_id == second.event_id
    assert s.valid_from_ms == T0 + DAY
    assert s.recipients == {"Partner A"}
    assert s.proof == make.FULL_PROOF
    summary = s.summary()
    assert summary.state == "given"
    assert summary.consent_event_ids == [first.event_id, second.event_id]
    assert summary.purposes == ["editorial.newsletter", "marketing.partner_transfer"]


def test_allowance_keeps_a_recent_withdrawal_out_of_effect(make) -> None:
    h = make.history(make.grant(at=T0), make.withdraw(at=T0 + DAY))
    t = T0 + DAY + 3_600_000
    assert not h.state_at(LQ, t).covers(NL, "email")
    assert h.state_at(LQ, t, allowance_ms=2 * DAY).covers(NL, "email")
    assert not h.state_at(LQ, T0 + 3 * DAY + 1, allowance_ms=2 * DAY).covers(NL, "email")


def test_erasure_keeps_only_its_fact_and_time(make) -> None:
    h = make.history(make.grant(at=T0), make.withdraw(at=T0 + DAY))
    erase = make.consent("erase", at=T0 + 2 * DAY)
    assert h.apply(erase) is True
    assert h.apply(erase) is False
    for t in (T0, T0 + 2 * DAY, T0 + 9 * DAY):
        s = h.state_at(LQ, t)
        assert s.status is ConsentStatus.ERASED
        assert s.erased_at_ms == T0 + 2 * DAY
        assert s.entries == () and s.version_event_ids == ()
    assert h.version_count == 0
    stored = json.dumps(h.to_obj())
    assert "editorial.newsletter" not in stored and "cmp:0001" not in stored
    # an event from before the erasure arriving late is not applied
    assert h.apply(make.grant(at=T0 + DAY)) is False
    # a new subscription after the erasure counts
    assert h.apply(make.grant(at=T0 + 5 * DAY))
    assert h.state_at(LQ, T0 + 4 * DAY).status is ConsentStatus.ERASED
    assert h.state_at(LQ, T0 + 5 * DAY).covers(NL, "email")


def test_erasure_of_one_controller_leaves_the_others(make) -> None:
    h = make.history(make.grant(at=T0), make.grant(at=T0, controller="Other"))
    h.erase(make.consent("erase", at=T0 + DAY))
    assert h.state_at("Other", T0 + DAY).covers(NL, "email")
    assert h.controllers() == ["Le Quotidien", "Other"]


def test_bounded_history_folds_the_oldest_and_stays_right_for_recent_times(make) -> None:
    events = []
    for i in range(10):
        action = "grant" if i % 2 == 0 else "withdraw"
        events.append(make.consent(action, at=T0 + i * DAY))
    bounded = make.history(*events, max_versions=4)
    full = make.history(*events)
    assert bounded.version_count == 4 and full.version_count == 10
    base_time = T0 + 5 * DAY  # versions 6..9 are kept; 5 is the base
    for t in range(base_time, T0 + 11 * DAY, DAY // 2):
        assert bounded.state_at(LQ, t) == full.state_at(LQ, t)
    early = bounded.state_at(LQ, T0 + DAY)
    assert early.approximate
    assert early.status is full.state_at(LQ, base_time).status
    # a late event older than the base cannot be placed
    assert bounded.apply(make.withdraw(at=T0 + 2 * DAY + 1)) is False
    assert bounded.too_old_count == 1
    # a late event after the base is placed correctly
    assert bounded.apply(make.withdraw(at=T0 + 8 * DAY + 1))
    assert not bounded.state_at(LQ, T0 + 8 * DAY + 2).covers(NL, "email")


def test_serialization_round_trip_is_exact_and_compact(make) -> None:
    events = [
        make.grant(at=T0, purposes=[NL, MKT], recipients=["P"], collected_by="Co"),
        make.withdraw(at=T0 + DAY, purposes=[MKT], channels=[Channel.SMS], scope="list:1"),
        make.grant(at=T0 + 2 * DAY, purposes=[], channels=[], expires_at_ms=T0 + 9 * DAY),
    ]
    h = make.history(*events)
    h.note_contact(make.usage(at=T0 + 3 * DAY, kind=UsageKind.CLICK))
    obj = h.to_obj()
    text = json.dumps(obj, separators=(",", ":"))
    assert len(text) < 700, len(text)
    back = ConsentHistory.from_obj(json.loads(text))
    assert back.to_obj() == obj
    for t in range(T0 - DAY, T0 + 12 * DAY, DAY // 3):
        assert back.state_at(LQ, t) == h.state_at(LQ, t)


def test_three_version_history_is_a_few_hundred_bytes(make) -> None:
    h = make.history(make.grant(at=T0), make.withdraw(at=T0 + DAY), make.grant(at=T0 + 2 * DAY))
    size = len(json.dumps(h.to_obj(), separators=(",", ":")))
    assert 100 < size < 800, size


def test_serialization_round_trip_keeps_base_erasure_and_counters(make) -> None:
    h = make.history(*(make.grant(at=T0 + i * DAY) for i in range(6)), max_versions=3)
    h.apply(make.grant(at=T0 - DAY))  # too old
    h.erase(make.consent("erase", at=T0 + 10 * DAY, controller="Other"))
    back = ConsentHistory.from_obj(json.loads(json.dumps(h.to_obj())), max_versions=3)
    assert back.to_obj() == h.to_obj()
    assert back.too_old_count == 1
    assert back.state_at("Other", T0 + 11 * DAY).status is ConsentStatus.ERASED
    assert back.state_at(LQ, T0).approximate
    assert back.apply(make.grant(at=T0 + DAY)) is False  # still before the base


def test_from_obj_refuses_garbage_with_a_clear_error() -> None:
    with pytest.raises(InvalidInput) as info:
        ConsentHistory.from_obj({"v": 1, "s": "x", "c": {"A": {"e": [{"t": 1}]}}})
    assert info.value.code == "ledger_state"
    assert "rebuild the ledger" in info.value.message
    with pytest.raises(InvalidInput, match="upgrade"):
        ConsentHistory.from_obj({"v": 99, "s": "x", "c": {}})


def test_contacts_clicks_count_opens_do_not(make) -> None:
    h = make.history(make.grant(at=T0))
    assert not h.note_contact(make.usage(at=T0 + 5 * DAY, kind=UsageKind.OPEN))
    assert h.state_at(LQ, T0 + 6 * DAY).last_contact_ms == T0
    assert h.note_contact(make.usage(at=T0 + 5 * DAY, kind=UsageKind.CLICK))
    assert h.state_at(LQ, T0 + 6 * DAY).last_contact_ms == T0 + 5 * DAY
    assert h.state_at(LQ, T0 + 4 * DAY).last_contact_ms == T0  # event time, not arrival


def test_note_use_notes_a_click_for_the_declarations_controller(make) -> None:
    h = make.history(make.grant(at=T0))
    decl = make.decl(controller=LQ)
    click = make.usage(at=T0 + 5 * DAY, kind=UsageKind.CLICK, controller="esp-account")
    assert h.note_use(click, decl)
    assert h.state_at(LQ, T0 + 6 * DAY).last_contact_ms == T0 + 5 * DAY
    assert not h.note_use(make.usage(at=T0 + 7 * DAY, kind=UsageKind.OPEN), decl)
    # a send is no contact; the first one is noted as the first message (R15, R18)
    assert h.note_use(make.usage(at=T0 + 7 * DAY, kind=UsageKind.SEND), decl)
    assert h.state_at(LQ, T0 + 8 * DAY).last_contact_ms == T0 + 5 * DAY
    assert not h.note_use(make.usage(at=T0 + 8 * DAY, kind=UsageKind.SEND), decl)


def test_metrics_counts(make) -> None:
    h = ConsentHistory("s")
    assert h.subject_count == 0 and h.version_count == 0
    h.apply(make.grant(at=T0))
    h.apply(make.grant(at=T0, controller="B"))
    assert h.subject_count == 1 and h.version_count == 2


def test_entries_of_many_subjects_share_one_instance_of_each_set(make) -> None:
    """A decoded history is cached per subject: each entry's sets are one shared instance
    (fewer objects for the garbage collector to scan, less memory), applied or read back,
    and equal to what they were."""
    grant = make.grant(at=T0, purposes=[NL, MKT], channels=[Channel.EMAIL], recipients=["P"])
    grants = [dataclasses.replace(grant, subject_key=f"{i:064x}") for i in range(3)]
    applied = [make.history(g) for g in grants]
    read = [ConsentHistory.from_obj(json.loads(json.dumps(h.to_obj()))) for h in applied]
    entries = [h._lines[LQ].versions[0].entry for h in applied + read]
    for name in ("purposes", "channels", "recipients", "unmapped"):
        sets = [getattr(e, name) for e in entries]
        assert all(s is sets[0] for s in sets), name
    first = entries[0]
    assert first.purposes == frozenset({NL, MKT}) and first.recipients == frozenset({"P"})
    assert first.channels == frozenset({"email"}) and first.unmapped == frozenset()


#: A history as main (994bfb3) stored it: two versions, a folded base, a contact.
STORED_BY_MAIN = (
    b'{"v":4,"s":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","c":{"Le '
    b'Quotidien":{"e":[{"i":"cmp:0002","t":1767312000000,"a":"withdraw","p":["marketing.direct"],'
    b'"c":["sms"],"sc":"list:1"},{"i":"cmp:0003","t":1767398400000,"a":"grant","pf":{"m":"double'
    b'_opt_in","ca":1767225600000,"cp":"https://lequotidien.example/newsletter","nv":"notice-v3"}'
    b',"ex":1768003200000}],"b":{"k":[1767225600000,0,"cmp:0001"],"e":[{"i":"cmp:0001","t":17672'
    b'25600000,"a":"grant","p":["editorial.newsletter","marketing.direct"],"c":["email"],"r":["P"'
    b'],"cb":"Co","pf":{"m":"double_opt_in","ca":1767225600000,"cp":"https://lequotidien.example/'
    b'newsletter","nv":"notice-v3"}}],"la":"grant","g":1767225600000},"k":[1767484800000]}}}'
)


def test_a_history_stored_by_main_reads_back_the_same(make) -> None:
    """The stored form did not change: main's bytes read back into the same history, and
    written again byte for byte."""
    from consentinel.streams.events import codec

    events = [
        make.grant(at=T0, purposes=[NL, MKT], recipients=["P"], collected_by="Co"),
        make.withdraw(at=T0 + DAY, purposes=[MKT], channels=[Channel.SMS], scope="list:1"),
        make.grant(at=T0 + 2 * DAY, purposes=[], channels=[], expires_at_ms=T0 + 9 * DAY),
    ]
    h = make.history(*events, max_versions=2)
    h.note_contact(make.usage(at=T0 + 3 * DAY, kind=UsageKind.CLICK))
    read = ConsentHistory.from_obj(codec.loads(STORED_BY_MAIN), 2)
    assert codec.dumps(read.to_obj()) == STORED_BY_MAIN == codec.dumps(h.to_obj())
    for t in range(T0 - DAY, T0 + 12 * DAY, DAY // 3):
        assert read.state_at(LQ, t) == h.state_at(LQ, t)


def test_a_stored_entry_leaves_the_garbage_collectors_sight(make) -> None:
    """The stored form of an entry is kept with the cached history: its sorted items are
    tuples (the same JSON arrays), which the collector stops tracking at its first pass."""
    import gc

    from consentinel.streams.events import codec

    h = make.history(
        make.grant(at=T0, purposes=[NL, MKT], channels=[Channel.EMAIL], recipients=["P"])
    )
    (entry,) = h.to_obj()["c"][LQ]["e"]
    gc.collect()
    for part in ("p", "c", "r"):
        assert not gc.is_tracked(entry[part]), part
    assert codec.loads(codec.dumps(entry))["p"] == sorted([NL, MKT])


def test_a_read_history_is_written_again_without_encoding_its_entries(make, monkeypatch) -> None:
    """A subject's first send changes its history (the first message, R15/R18), so a subject
    read from the table is written again: its entries, stored in this format, are written
    as they were read (no entry encoded again), and the bytes are those of the same
    history built from its events."""
    from consentinel.streams.events import codec
    from consentinel.streams.events.records import LegalBasis
    from consentinel.streams.policy import history as module

    events = [
        make.grant(
            at=T0,
            purposes=[NL, MKT],
            recipients=["P", "A"],
            collected_by="Co",
            legal_basis=LegalBasis.CONTRACT,
            expires_at_ms=T0 + 90 * DAY,
            unmapped_purposes=["x.unknown"],
            gpc=True,
        ),
        make.withdraw(at=T0 + DAY, purposes=[MKT], channels=[Channel.SMS], scope="list:1"),
        make.grant(at=T0 + 2 * DAY, purposes=[], channels=[], controller="Other"),
    ]
    built = make.history(*events)
    stored = codec.dumps(built.to_obj())
    send = make.usage(at=T0 + 3 * DAY)
    assert built.note_use(send, None)
    read = ConsentHistory.from_obj(codec.loads(stored))

    def encoded(entry: object) -> None:
        raise AssertionError(f"entry encoded again: {entry}")

    monkeypatch.setattr(module, "_entry_obj", encoded)
    assert read.note_use(send, None)
    assert codec.dumps(read.to_obj()) == codec.dumps(built.to_obj())
    assert codec.loads(codec.dumps(read.to_obj()))["c"][LQ]["f"] == [T0 + 3 * DAY, send.event_id]
    for t in range(T0 - DAY, T0 + 100 * DAY, DAY // 2):
        assert read.state_at(LQ, t) == built.state_at(LQ, t)


def test_a_history_of_an_older_format_is_written_again_from_its_entries(make) -> None:
    """Entries read from an older format are not kept as read: they are written in this
    format's form (here a format-1 entry naming the default legal basis)."""
    from consentinel.streams.events import codec

    h = make.history(make.grant(at=T0, purposes=[NL]))
    obj = codec.loads(codec.dumps(h.to_obj()))
    (entry,) = obj["c"][LQ]["e"]
    entry["lb"] = "consent"
    obj["v"] = 1
    read = ConsentHistory.from_obj(obj)
    assert "lb" not in read.to_obj()["c"][LQ]["e"][0]
    assert read.to_obj()["c"] == h.to_obj()["c"]


def test_an_entry_kept_as_read_leaves_the_garbage_collectors_sight(make) -> None:
    """An entry read back is kept as its stored form with the cached history: its item
    lists become tuples (the same JSON arrays), untracked after the collector's first pass."""
    import gc

    from consentinel.streams.events import codec

    h = make.history(
        make.grant(at=T0, purposes=[NL, MKT], channels=[Channel.EMAIL], recipients=["P"])
    )
    read = ConsentHistory.from_obj(codec.loads(codec.dumps(h.to_obj())))
    (entry,) = read.to_obj()["c"][LQ]["e"]
    gc.collect()
    for part in ("p", "c", "r"):
        assert not gc.is_tracked(entry[part]), part
    assert codec.dumps(read.to_obj()) == codec.dumps(h.to_obj())


@pytest.mark.parametrize(
    "grant",
    [
        dict(purposes=[NL, MKT], channels=[Channel.EMAIL, Channel.SMS], recipients=["P"]),
        dict(purposes=[], channels=[]),
        dict(purposes=[NL], channels=[], unmapped_purposes=["x.unknown"]),
        dict(purposes=[], channels=[Channel.EMAIL], unmapped_purposes=["x.unknown"]),
        dict(purposes=[MKT], scope="list:1", expires_at_ms=T0 + 9 * DAY),
    ],
)
def test_a_single_grant_is_read_as_the_general_computation_reads_it(make, grant) -> None:
    """One active grant (a subject that consented once): its parts are its own sets, shared,
    and equal to what the general computation makes of it (here with a scoped withdrawal
    before it, which blocks nothing after it)."""
    from consentinel.streams.policy import history as module

    entry = module.ConsentEntry.from_event(make.grant(at=T0 + DAY, **grant))
    before = module.ConsentEntry.from_event(make.withdraw(at=T0, purposes=[NL], scope="list:9"))
    one = module._compute_parts(module._EMPTY.step(entry), T0 + 2 * DAY)
    general = module._compute_parts(module._Cum(entries=(before, entry)), T0 + 2 * DAY)
    assert one.entries == (entry,) and one.version_event_ids == (entry.event_id,)
    assert dataclasses.replace(one, entries=general.entries, version_event_ids=()) == (
        dataclasses.replace(general, version_event_ids=())
    )
    assert one.purposes is entry.purposes and one.recipients is entry.recipients
    assert one.unmapped is entry.unmapped
