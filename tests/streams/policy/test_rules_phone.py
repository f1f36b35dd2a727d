"""R8, R9 (SMS) and R10, R12 (telephone): allowed, violating and edge cases."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import Channel, LegalBasis, UsageKind
from consentinel.streams.policy.engine import PolicySettings, evaluate

PARIS = ZoneInfo("Europe/Paris")
DAY = 86_400_000
MKT = "marketing.direct"
TEL = "marketing.telemarketing"


def paris(y: int, mo: int, d: int, h: int, mi: int) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=PARIS).timestamp() * 1000)


def rules_of(ev) -> list[str]:
    return [f.rule_id for f in ev.findings]


def sms(make, policy, at: int, sender_type: str = "short_code", purpose: str = MKT, **kw):
    h = make.history(make.grant(purposes=[purpose], channels=[Channel.SMS]))
    u = make.usage(at=at, channel=Channel.SMS, attributes={"sender_type": sender_type})
    d = make.decl(purpose=purpose, channel=Channel.SMS, **kw)
    return evaluate(u, h, d, policy, final=True)


# -- R8 ---------------------------------------------------------------------------------


def test_r8_promotional_sms_from_a_long_code_is_a_violation(make, policy) -> None:
    noon = paris(2026, 3, 3, 12, 0)
    assert "R8" in rules_of(sms(make, policy, noon, sender_type="long_code"))
    assert sms(make, policy, noon, sender_type="short_code").findings == []


def test_r8_not_when_the_sender_type_is_unknown_or_not_promotional(make, policy) -> None:
    noon = paris(2026, 3, 3, 12, 0)
    assert "R8" not in rules_of(sms(make, policy, noon, sender_type="unknown"))
    ev = sms(make, policy, noon, "long_code", purpose="service.transactional", promotional=False)
    assert "R8" not in rules_of(ev)


# -- R9 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "mi", "fires"),
    [(7, 59, True), (8, 0, False), (21, 29, False), (21, 30, True), (23, 0, True)],
)
def test_r9_sms_quiet_hours_paris_time(make, policy, h, mi, fires) -> None:
    ev = sms(make, policy, paris(2026, 7, 5, h, mi))  # a Sunday: the 2026 charter allows it
    assert ("R9" in rules_of(ev)) is fires
    if not fires:
        assert ev.findings == []


def test_r9_window_is_configurable_and_checked(make) -> None:
    old_charter = PolicySettings(sms_hours=(480, 1320))  # 08:00-22:00
    assert "R9" not in rules_of(sms(make, old_charter, paris(2026, 3, 3, 21, 45)))
    assert "R9" in rules_of(sms(make, PolicySettings(), paris(2026, 3, 3, 21, 45)))
    with pytest.raises(FatalConfigError):
        PolicySettings(sms_hours=(1300, 480))


def test_r9_not_for_transactional_sms(make, policy) -> None:
    ev = sms(
        make, policy, paris(2026, 3, 3, 23, 0), purpose="service.transactional", promotional=False
    )
    assert "R9" not in rules_of(ev)


# -- R10 --------------------------------------------------------------------------------


def call(make, policy, at: int, proof: bool = False, tz: str | None = None, **decl):
    grant = make.grant(purposes=[TEL], channels=[Channel.PHONE])
    if not proof:
        grant = make.grant(purposes=[TEL], channels=[Channel.PHONE], proof=None)
    attrs = {"tz": tz} if tz else {}
    u = make.usage(at=at, channel=Channel.PHONE, kind=UsageKind.CALL, attributes=attrs)
    kw = {"bloctel_cleaned_at_ms": at - DAY, **decl}
    d = make.decl(purpose=TEL, channel=Channel.PHONE, **kw)
    return evaluate(u, make.history(grant), d, policy, final=True)


def test_r10_call_at_1959_is_allowed_at_2001_is_not(make, policy) -> None:
    assert "R10" not in rules_of(call(make, policy, paris(2026, 3, 3, 19, 59)))
    ev = call(make, policy, paris(2026, 3, 3, 20, 1))
    assert "R10" in rules_of(ev)
    assert "20:01" in next(f.summary for f in ev.findings if f.rule_id == "R10")


def test_r10_lunch_break_weekend_and_public_holiday(make, policy) -> None:
    assert "R10" in rules_of(call(make, policy, paris(2026, 3, 3, 13, 30)))
    assert "R10" in rules_of(call(make, policy, paris(2026, 3, 7, 11, 0)))  # Saturday
    holiday = call(make, policy, paris(2026, 7, 14, 11, 0))  # Tuesday, Fête nationale
    assert "R10" in rules_of(holiday)
    assert "public holiday" in next(f.summary for f in holiday.findings if f.rule_id == "R10")
    assert "R10" not in rules_of(call(make, policy, paris(2026, 7, 15, 11, 0)))


def test_r10_provable_consent_lifts_the_hours(make, policy) -> None:
    assert "R10" not in rules_of(call(make, policy, paris(2026, 7, 14, 21, 0), proof=True))


def test_r10_uses_the_consumers_time_zone(make, policy) -> None:
    at = paris(2026, 3, 3, 8, 0)  # 11:00 in Réunion (UTC+4)
    assert "R10" in rules_of(call(make, policy, at))
    assert "R10" not in rules_of(call(make, policy, at, tz="Indian/Reunion"))


# -- R12 --------------------------------------------------------------------------------


def test_r12_before_11_aug_2026_needs_a_recent_bloctel_cleaning(make, policy) -> None:
    at = paris(2026, 8, 10, 11, 0)
    assert "R12" not in rules_of(call(make, policy, at))  # cleaned the day before
    assert "R12" in rules_of(call(make, policy, at, bloctel_cleaned_at_ms=at - 31 * DAY))
    assert "R12" not in rules_of(call(make, policy, at, bloctel_cleaned_at_ms=at - 29 * DAY))
    assert "R12" in rules_of(call(make, policy, at, bloctel_cleaned_at_ms=None))
    press = call(make, policy, at, bloctel_cleaned_at_ms=None, sector="press")
    assert "R12" not in rules_of(press)


def test_r12_from_11_aug_2026_sales_calls_need_provable_consent(make, policy) -> None:
    at = paris(2026, 8, 11, 11, 0)
    assert "R12" in rules_of(call(make, policy, at))  # Bloctel-clean, but no proof
    assert "R12" not in rules_of(call(make, policy, at, proof=True))
    contract = call(make, policy, at, legal_basis=LegalBasis.CONTRACT)
    assert "R12" not in rules_of(contract)


def test_r12_home_energy_renovation_is_banned_even_with_consent(make, policy) -> None:
    at = paris(2026, 3, 3, 11, 0)
    ev = call(make, policy, at, proof=True, sector="home_energy_renovation")
    assert "R12" in rules_of(ev)
    assert "R12" not in rules_of(call(make, policy, at, proof=True))
