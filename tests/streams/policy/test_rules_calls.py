"""R11 (call attempts and refusals) and the call log it reads: allowed, violating and edge
cases; the history's wire format with and without a call log."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind
from consentinel.streams.policy import calls
from consentinel.streams.policy.engine import evaluate
from consentinel.streams.policy.history import FORMAT_VERSION, ConsentHistory

PARIS = ZoneInfo("Europe/Paris")
DAY = 86_400_000
TEL = "marketing.telemarketing"


def paris(y: int, mo: int, d: int, h: int = 11, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=PARIS).timestamp() * 1000)


#: a Monday in the calling hours; every call below is at 11:00 Paris on a working day
MON = paris(2026, 3, 2)


def working_days(start: int, n: int) -> list[int]:
    """``n`` call times, one a working day from ``start`` (a Monday, 11:00)."""
    out, day = [], 0
    while len(out) < n:
        if day % 7 < 5:
            out.append(start + day * DAY)
        day += 1
    return out


def rules_of(ev) -> list[str]:
    return [f.rule_id for f in ev.findings]


class Phone:
    """A consumer with provable consent to Acme's sales calls, and Acme's calls to them."""

    def __init__(self, make, policy, controller: str = "Acme", **decl) -> None:
        self.make, self.policy = make, policy
        self.decl = make.decl(
            ref="calls",
            controller=controller,
            purpose=TEL,
            channel=Channel.PHONE,
            bloctel_cleaned_at_ms=MON - DAY,
            **decl,
        )
        grant = make.grant(
            at=MON - 90 * DAY, controller=controller, purposes=[TEL], channels=[Channel.PHONE]
        )
        self.history = make.history(grant)

    def call(self, at: int, event_id: str | None = None, campaign_id: str = "calls", **kw):
        return self.make.usage(
            at=at,
            controller="dialer-account",
            channel=Channel.PHONE,
            kind=UsageKind.CALL,
            campaign_id=campaign_id,
            event_id=event_id,
            **kw,
        )

    def place(self, at: int, event_id: str | None = None):
        """Judge a call as the checker does (judged, then noted); returns its evaluation."""
        usage = self.call(at, event_id)
        ev = evaluate(usage, self.history, self.decl, self.policy, final=True)
        self.history.note_use(usage, self.decl)
        return ev

    def refuse(self, at: int, action: str = "refuse", channels=(Channel.PHONE,), **kw) -> bool:
        """Apply an objection; True when it was recorded as a refusal during a call."""
        event = self.make.consent(
            ConsentAction(action),
            at=at,
            controller=self.decl.controller,
            purposes=[TEL],
            channels=list(channels),
            **kw,
        )
        self.history.apply(event)
        last = self.history.calls_at(self.decl.controller, at + 1, "x").last_refusal
        return last == (at, event.event_id)


# -- attempts -----------------------------------------------------------------------------


def test_r11_four_calls_in_30_days_are_allowed_the_fifth_is_a_violation(make, policy) -> None:
    phone = Phone(make, policy)
    verdicts = [phone.place(at) for at in working_days(MON, 5)]
    assert [rules_of(ev) for ev in verdicts[:4]] == [[], [], [], []]
    assert rules_of(verdicts[4]) == ["R11"]
    summary = verdicts[4].findings[0].summary
    assert "attempt 5" in summary and "at most 4 in 30 days" in summary


def test_r11_the_window_is_30_days_rolling(make, policy) -> None:
    phone = Phone(make, policy)
    for k in range(4):
        assert "R11" not in rules_of(phone.place(MON + k * DAY))
    # exactly 30 days after the first call, the first has left the window: attempt 4
    assert "R11" not in rules_of(phone.place(MON + 30 * DAY))
    # a millisecond before that it had not: attempt 5 (the four, and this one)
    ev = evaluate(phone.call(MON + 30 * DAY - 1), phone.history, phone.decl, policy, final=True)
    assert "R11" in rules_of(ev)
    # one more the same day: the 2nd to 4th and the one at 30 days are in its window
    assert "R11" in rules_of(phone.place(MON + 30 * DAY + 1))


def test_r11_a_redelivered_call_counts_once_and_a_call_never_counts_itself(make, policy) -> None:
    phone = Phone(make, policy)
    times = working_days(MON, 4)
    for at in times:
        phone.place(at, event_id=f"call-{at}")
    # the same four calls again (a platform's redelivery): nothing new is noted
    assert not any(phone.history.note_use(phone.call(at, f"call-{at}"), phone.decl) for at in times)
    # the fourth judged again once final (it is already noted): still attempt 4, no R11
    again = evaluate(
        phone.call(times[3], f"call-{times[3]}"), phone.history, phone.decl, policy, final=True
    )
    assert "R11" not in rules_of(again)
    assert rules_of(phone.place(times[3] + DAY)) == ["R11"]


def test_r11_counts_per_controller_and_only_sales_calls(make, policy) -> None:
    phone = Phone(make, policy)
    other = make.decl(ref="other", controller="Other", purpose=TEL, channel=Channel.PHONE)
    service = make.decl(
        ref="service",
        controller="Acme",
        purpose="service.transactional",
        channel=Channel.PHONE,
        promotional=False,
    )
    times = working_days(MON, 9)
    for at in times[:4]:
        assert phone.history.note_use(phone.call(at, campaign_id="other"), other)
        assert not phone.history.note_use(phone.call(at, campaign_id="service"), service)
    for at in times[4:8]:
        assert rules_of(phone.place(at)) == []
    service_call = phone.call(times[8], campaign_id="service")
    ev = evaluate(service_call, phone.history, service, policy, final=True)
    assert "R11" not in rules_of(ev)  # the 5th call of Acme, but not a sales call
    assert rules_of(phone.place(times[8])) == ["R11"]


def test_r11_test_calls_are_not_noted(make, policy) -> None:
    phone = Phone(make, policy)
    assert not phone.history.note_use(phone.call(MON, is_test=True), phone.decl)
    assert phone.history.note_use(phone.call(MON), phone.decl)


# -- refusals -----------------------------------------------------------------------------


def test_r11_a_call_59_days_after_a_refusal_is_a_violation_61_days_is_not(make, policy) -> None:
    phone = Phone(make, policy)
    refused = MON - 59 * DAY  # Monday 2 Jan... any time: only the gap matters
    assert phone.refuse(refused)
    ev = phone.place(refused + 59 * DAY)
    assert "R11" in rules_of(ev)
    assert "59 days after the person refused during a call" in next(
        f.summary for f in ev.findings if f.rule_id == "R11"
    )
    assert "R11" not in rules_of(phone.place(refused + 61 * DAY))
    assert "R11" not in rules_of(phone.place(refused + 60 * DAY))  # 60 days: over
    assert "R11" in rules_of(phone.place(refused + 60 * DAY - 60_000))


def test_r11_consent_given_again_does_not_lift_the_60_days(make, policy) -> None:
    phone = Phone(make, policy)
    phone.refuse(MON - 10 * DAY)
    phone.history.apply(
        make.grant(at=MON - 5 * DAY, controller="Acme", purposes=[TEL], channels=[Channel.PHONE])
    )
    ev = phone.place(MON)
    assert rules_of(ev) == ["R11"]  # the grant covers the call; only R11 remains


def test_r11_what_counts_as_a_refusal_during_a_call(make, policy) -> None:
    phone = Phone(make, policy)
    # the call during which the person refused is not after the refusal; the next one is
    assert phone.refuse(MON, event_id="refusal-in-call")
    assert "R11" not in rules_of(phone.place(MON))
    assert "R11" in rules_of(phone.place(MON + DAY))
    # a withdrawal naming the phone counts; one naming e-mail only, or every channel
    # (a CMP's "unsubscribe from everything"), and an expiry do not
    other = Phone(make, policy)
    assert not other.refuse(MON - DAY, "withdraw", channels=(Channel.EMAIL,))
    assert not other.refuse(MON - 2 * DAY, "withdraw", channels=())
    assert not other.refuse(MON - 3 * DAY, "expire")
    assert "R11" not in rules_of(other.place(MON))
    assert other.refuse(MON + 1, "withdraw")
    assert "R11" in rules_of(other.place(MON + DAY))


def test_r11_a_late_refusal_counts_for_later_calls_only(make, policy) -> None:
    phone = Phone(make, policy)
    first = phone.call(MON)
    phone.history.note_use(first, phone.decl)
    phone.refuse(MON + DAY)  # reported after the first call was judged
    assert "R11" not in rules_of(evaluate(first, phone.history, phone.decl, policy, final=True))
    assert "R11" in rules_of(phone.place(MON + 2 * DAY))


def test_r11_another_controllers_refusal_does_not_bind(make, policy) -> None:
    phone = Phone(make, policy)
    phone.history.apply(
        make.consent(
            "refuse", at=MON - DAY, controller="Other", purposes=[TEL], channels=[Channel.PHONE]
        )
    )
    assert "R11" not in rules_of(phone.place(MON))


def test_r11_an_erasure_forgets_calls_and_refusals_up_to_it(make, policy) -> None:
    phone = Phone(make, policy)
    for at in working_days(MON, 4):
        phone.place(at)
    phone.refuse(MON + 3 * DAY + 1)
    phone.history.erase(make.consent("erase", at=MON + 3 * DAY + 2, controller="Acme"))
    assert phone.history.calls_at("Acme", MON + 4 * DAY, "x") == calls.CallsAt()
    # a late call from before the erasure is not noted
    assert not phone.history.note_use(phone.call(MON + 3 * DAY), phone.decl)


# -- the call log: bounds ------------------------------------------------------------------


def test_call_log_is_bounded_in_time_and_count() -> None:
    log = calls.CallLog()
    for n in range(3 * calls.MAX_ATTEMPTS):
        assert log.note_attempt(MON + n * 60_000, f"c{n}")
    assert len(log.attempts) == calls.MAX_ATTEMPTS
    assert log.attempts[0] == (MON + 2 * calls.MAX_ATTEMPTS * 60_000, f"c{2 * calls.MAX_ATTEMPTS}")
    later = MON + calls.WINDOW_MS + calls.LATE_MS + DAY
    assert log.note_attempt(later, "late")
    assert log.attempts == [(later, "late")]  # everything older than the horizon is gone
    assert not log.note_attempt(MON, "too-late")  # arrives beyond what may still count
    for n in range(2 * calls.MAX_REFUSALS):
        assert log.note_refusal(later + n, f"r{n}")
    assert len(log.refusals) == calls.MAX_REFUSALS
    assert not log.note_refusal(log.refusals[-1][0], log.refusals[-1][1])  # a repeat


# -- wire format ----------------------------------------------------------------------------


def test_history_round_trip_keeps_the_call_log(make, policy) -> None:
    phone = Phone(make, policy)
    for at in working_days(MON, 4):
        phone.place(at)
    phone.refuse(MON - DAY)
    obj = phone.history.to_obj()
    assert obj["v"] == FORMAT_VERSION == 4
    assert set(obj["c"]["Acme"]["cl"]) == {"a", "r"}
    back = ConsentHistory.from_obj(orjson.loads(orjson.dumps(obj)))
    t = MON + 4 * DAY
    assert back.calls_at("Acme", t, "x") == phone.history.calls_at("Acme", t, "x")
    assert back.to_obj() == obj


#: A history as version 1 wrote it (before call logs): a grant with full proof, a click.
V1 = {
    "v": 1,
    "s": "a" * 64,
    "c": {
        "Le Quotidien": {
            "e": [
                {
                    "i": "cmp:0001",
                    "t": 1_767_225_600_000,
                    "a": "grant",
                    "p": ["editorial.newsletter"],
                    "c": ["email"],
                    "pf": {"m": "double_opt_in", "ca": 1_767_225_600_000, "nv": "notice-v3"},
                }
            ],
            "k": [1_767_398_400_000],
        }
    },
}


def test_history_reads_format_1_and_refuses_a_newer_one() -> None:
    h = ConsentHistory.from_obj(V1)
    state = h.state_at("Le Quotidien", 1_767_312_000_000)
    assert state.covers("editorial.newsletter", "email")
    assert (
        state.entries[0].proof is not None and state.entries[0].proof.notice_version == "notice-v3"
    )
    assert h.calls_at("Le Quotidien", 1_767_312_000_000, "x") == calls.CallsAt()
    assert h.to_obj()["v"] == FORMAT_VERSION and "cl" not in h.to_obj()["c"]["Le Quotidien"]
    with pytest.raises(InvalidInput, match="upgrade the worker"):
        ConsentHistory.from_obj({**V1, "v": FORMAT_VERSION + 1})
