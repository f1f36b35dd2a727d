"""The demo's telephone and night-SMS story: the requests of two phases.

- ``calls``: Mutuelle Horizon calls the prospects of a file it rented (declared
  ``legitimate_interest``, ``rented``, no Bloctel cleaning date, no consent), through
  Twilio Voice: one status callback per call attempt, its campaign and attempt number in
  the callback URL as a dialer puts them (signed with it). Every call is a sales call
  without consent (R12); the ``called_late`` / ``called_sunday`` / ``called_on_holiday``
  prospects are called at 21:30 on a working day, on the latest Sunday, on the latest public
  holiday (R10); the ``pestered`` ones five times on the last five working days (the 5th:
  R11). The others are called once, at a lawful hour (10:15-12:45 on a working day).
- ``night_sms``: Fleurs de Lys texts a promotion to its customers (``soft_opt_in``) at
  23:45 Paris time the evening before, from the owner's 06 number, through the Vonage
  Messages API (``submitted`` then ``delivered``): R8 and R9.

Times come from ``slots`` (Paris wall clock, before the day of ``now``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from consentinel.connectors.demo import platforms as pf
from consentinel.connectors.demo import slots
from consentinel.connectors.demo.cast import (
    CALLER_ID,
    CALLS,
    FLORIST_MOBILE,
    NIGHT_PROMO,
    TWILIO_VOICE,
    VOICE_ACCOUNT,
    VONAGE,
)
from consentinel.connectors.demo.platforms import Post
from consentinel.connectors.demo.world import World

_MIN_MS = 60_000
_PESTER = 5  # calls to each pestered prospect, one per working day: the 5th is R11's


@dataclass(frozen=True)
class PhoneStory:
    world: World
    new_id: Callable[..., str]  # a fresh id per request (``Story._id``)

    def _starts(self, i: int, phone: str, now: int) -> list[int]:
        """When the calls to the ``i``-th prospect start (epoch ms), oldest first."""
        w = self.world
        days = slots.weekdays(now, _PESTER)
        if phone in w.called_late:
            return [slots.at(days[0], 21, 30)]
        if phone in w.called_sunday:
            return [slots.at(slots.last_sunday(now), 11)]
        if phone in w.called_on_holiday:
            return [slots.at(slots.last_holiday(now), 11)]
        if phone in w.pestered:
            return [slots.at(day, 14, 30) + i * _MIN_MS for day in reversed(days)]
        return [slots.at(days[i % len(days)], 10, 15) + (i * 7 % 150) * _MIN_MS]

    def calls(self, now: int) -> list[Post]:
        posts = []
        for i, phone in enumerate(self.world.prospects):
            starts = self._starts(i, phone, now)
            for attempt, started in enumerate(starts, 1):
                answered = attempt == len(starts) and i % 3 != 1
                status = "completed" if answered else ("busy" if i % 2 else "no-answer")
                body = pf.twilio_call_status(
                    sid="CA" + self.new_id("call"),
                    status=status,
                    account=VOICE_ACCOUNT,
                    caller=CALLER_ID,
                    to=phone,
                    started_ms=started,
                    talked_s=45 + i * 13 % 240 if answered else 0,
                )
                query = urlencode({"campaign": CALLS, "attempt": attempt})
                posts.append(Post(TWILIO_VOICE, body, pf.FORM, f"call {status}", query=query))
        return posts

    def night_sms(self, now: int) -> list[Post]:
        evening = slots.last_evening(now, 23, 45)
        posts = []
        for i, phone in enumerate(self.world.night_texted):
            h = self.new_id("vonage")
            uuid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
            for status, later_s in (("submitted", i), ("delivered", i + 4)):
                body = pf.vonage_status(
                    message_uuid=uuid,
                    status=status,
                    to=phone,
                    sender=FLORIST_MOBILE,
                    at_ms=evening + later_s * 1000,
                    client_ref=NIGHT_PROMO,
                )
                posts.append(Post(VONAGE, body, pf.JSON, f"promo SMS {status}"))
        return posts
