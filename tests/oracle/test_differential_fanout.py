"""List-level sends: the checker's expansion against the oracle's own reading of the list.

Seeded histories (as ``test_differential_pure``, no late reporting: a consent reported
days late cannot make someone a member of a campaign already expanded) plus a few
campaigns of the publisher to its list ``news``, each ONE list-level send naming nobody.
The oracle reads the list itself: a subject is on it at the campaign's time when its
latest event scoped to the list by then (of that platform and controller) is a grant or a
``join`` (membership without consent, as an imported file gives) and no erasure by the
controller came after; each member's use is judged by the oracle like any other. Alerts
minus corrections must equal the oracle's findings by (use, rule), every member's use has
its verdict, and nobody else gets one (the fan-out key above all).
"""

from __future__ import annotations

import dataclasses
import random

import compare
import drive
import generator as gen
import oracle
import pytest
from consentinel.streams.checker.fanout import member_event_id
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    UsageEvent,
    UsageKind,
)

SEEDS = (20261204, 7)
#: What puts a subject on the list: a grant scoped to it, or a bare membership (an import)
JOINING = (ConsentAction.GRANT, ConsentAction.JOIN)
EVENTS = 4_000
CAMPAIGNS = 6


def campaigns(rng: random.Random) -> list[UsageEvent]:
    out = []
    for k in range(CAMPAIGNS):
        at = gen.T0 + rng.randrange(gen.SPAN + 14 * gen.DAY)
        out.append(
            UsageEvent(
                event_id=f"campaign-{k}",
                occurred_at_ms=at,
                received_at_ms=at,
                source="gen-esp",
                processor="generator",
                channel=Channel.EMAIL,
                kind=UsageKind.SEND,
                subject_key=f"{0xFA00 + k:064x}",
                hint=f"* (list {gen.NEWS})",
                controller=gen.PUB,
                list_id=gen.NEWS,
                attributes={"fan_out": "list"},
            )
        )
    return out


def on_list(consents: list[ConsentEvent], send: UsageEvent) -> list[str]:
    """The oracle's reading: who is on the send's list when it is sent."""
    members = []
    by_subject: dict[str, list[ConsentEvent]] = {}
    for c in consents:
        if c.controller == send.controller and c.occurred_at_ms <= send.occurred_at_ms:
            by_subject.setdefault(c.subject_key, []).append(c)
    for subject, events in sorted(by_subject.items()):
        scoped = [
            c
            for c in events
            if (c.scope == send.list_id and c.processor == send.processor)
            or c.action is ConsentAction.ERASE
        ]
        if not scoped:
            continue
        latest = max(scoped, key=lambda c: (c.occurred_at_ms, c.action in JOINING))
        if latest.action in JOINING:
            members.append(subject)
    return members


def member_uses(consents: list[ConsentEvent], sends: list[UsageEvent]) -> list[UsageEvent]:
    return [
        dataclasses.replace(
            send,
            event_id=member_event_id(send.event_id, subject),
            subject_key=subject,
            hint=gen.HINT_EMAIL,
            attributes={},
        )
        for send in sends
        for subject in on_list(consents, send)
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_campaign_expansion_agrees_with_the_oracle(seed: int) -> None:
    history = gen.generate(seed, EVENTS, gen.Knobs(late_share=0.0))
    sends = campaigns(random.Random(seed))
    arrivals = history.arrivals + [gen.Arrival(s.occurred_at_ms + 1000, s) for s in sends]
    arrivals.sort(key=lambda a: a.at_ms)
    with_sends = dataclasses.replace(history, arrivals=arrivals)
    uses = history.usages + member_uses(history.consents, sends)
    assert len(uses) > len(history.usages) + CAMPAIGNS, "the campaigns reach members"
    joined = {c.subject_key for c in history.consents if c.action is ConsentAction.JOIN}
    reached = {u.subject_key for u in uses[len(history.usages) :]}
    assert joined & reached, "some members are on the list by an import only (no consent)"
    expected = oracle.final_verdicts(history.declarations, history.consents, uses)
    out = drive.run(with_sends)
    report = compare.compare(expected, uses, out.verdicts, out.alerts)
    assert report.ok, (
        f"the checker's expansion disagrees with the oracle on {with_sends.describe()}\n"
        f"{report.text()}"
    )
    assert out.deadletters == 0
    fan_keys = {s.subject_key for s in sends}
    assert not fan_keys & {v.subject_key for v in out.verdicts}
