"""Seeded random consent-and-usage histories for the differential test, in ARRIVAL order.

One small world (a publisher, an advertiser, a list broker, a political campaign), its
purpose registry, and per subject a random story: consents granted, withdrawn, refused,
expired or erased (with full proof, proof by reference, or too little proof; scoped to a
list or not; naming partners or not), or put on a list with no consent at all (``join``,
as an imported file is), uses (sends, calls, lead deliveries, list transfers)
and non-uses (deliveries, opens, clicks). Then the platforms' habits on top:

- about ``late_share`` of consent events are reported late: they arrive after the uses
  they affect have been decided, within the correction window (hours to three days);
- ``late_withdrawals`` switches late reporting of withdrawals, refusals and expiries on or
  off (grants are always eligible): today's checker corrects only in one direction;
- about ``dup_share`` of events are redelivered (same event id, identical content);
- arrival jitter of a few seconds puts events out of order;
- ``signals`` (off by default) adds the inputs of R4, R6, R21 and R22 (``generator_signals``);
- ``duties`` (off by default) adds those of R15, R16, R18 and R19 (``generator_duties``);
- ``leads`` (off by default) adds purchased leads and their certificates' results, each
  status (R23, ``generator_leads``).

Stories keep away from corners the rules reference leaves open (grants with an
``expires_at_ms``, uses before an erasure judged after it, more than 8 clicks per subject,
more than 60 alerted uses per subject): the oracle is only asked questions the reference
answers.

Replay a failure with ``CONSENTINEL_SEED=<seed>``; nothing here reads the wall clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from consentinel.streams.events.ids import declaration_id
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    LegalBasis,
    Proof,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from generator_duties import with_duties
from generator_leads import with_leads
from generator_signals import with_signals

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SECOND = 1000
HOUR = 3_600_000
DAY = 86_400_000
SPAN = 30 * DAY  # the stories happen within 30 days after T0

PUB = "le-quotidien"  # publisher: newsletter list "news", collects partner consent
ACME = "acme"  # advertiser: own direct marketing, calls, and partner offers
BROKER = "listbroker"  # rents lists; named partner of the publisher, or not
POL = "campagne-2027"  # political campaign renting from the broker

NEWS = "news"  # the publisher's list id
HINT_EMAIL = "r***@e***.org"
HINT_PHONE = "+33 6** ** ** 12"

WITHDRAWING = (ConsentAction.WITHDRAW, ConsentAction.REFUSE, ConsentAction.EXPIRE)


def _decl(
    kind: str,
    ref: str,
    controller: str,
    purpose: str,
    channel: Channel,
    **kw: Any,
) -> Declaration:
    return Declaration(declaration_id(kind, ref), kind, ref, controller, purpose, channel, **kw)


#: The purpose registry of the world.
DECLARATIONS: tuple[Declaration, ...] = (
    _decl("list", NEWS, PUB, "editorial.newsletter", Channel.EMAIL),
    # the publisher's own newsletter sent through a platform without the list id in its
    # tags: its declaration names the list among its data sources (narrow matching, #8)
    _decl(
        "campaign", "pub-weekly", PUB, "editorial.newsletter", Channel.EMAIL, data_sources=[NEWS]
    ),
    _decl(
        "campaign",
        "pub-receipts",
        PUB,
        "service.transactional",
        Channel.EMAIL,
        legal_basis=LegalBasis.CONTRACT,
        promotional=False,
    ),
    _decl(
        "campaign",
        "acme-promo",
        ACME,
        "marketing.direct",
        Channel.EMAIL,
        sourcing=Sourcing.PARTNER,
        acquired_from=[PUB],
    ),
    _decl("campaign", "acme-sms", ACME, "marketing.direct", Channel.SMS),
    _decl("campaign", "acme-calls", ACME, "marketing.telemarketing", Channel.PHONE),
    _decl(
        "campaign",
        "broker-rental",
        BROKER,
        "marketing.partner_transfer",
        Channel.EMAIL,
        sourcing=Sourcing.PARTNER,
        acquired_from=[PUB],
    ),
    _decl(
        "campaign",
        "pol-rented",
        POL,
        "political.communication",
        Channel.EMAIL,
        sourcing=Sourcing.RENTED,
        acquired_from=[BROKER],
    ),
    # purchased leads (R23): only the ``leads`` knob's stories use it
    _decl(
        "campaign",
        "lead-buyer",
        "isolation-plus",
        "marketing.direct",
        Channel.EMAIL,
        sourcing=Sourcing.PURCHASED,
    ),
)

#: (campaign or list, kind of use, channel, platform account controller)
USE_SHAPES: tuple[tuple[str, UsageKind, Channel, str], ...] = (
    ("list:" + NEWS, UsageKind.SEND, Channel.EMAIL, PUB),
    ("campaign:pub-weekly", UsageKind.SEND, Channel.EMAIL, PUB),
    ("campaign:pub-receipts", UsageKind.SEND, Channel.EMAIL, PUB),
    ("campaign:acme-promo", UsageKind.SEND, Channel.EMAIL, "mailer-account"),
    ("campaign:acme-sms", UsageKind.SEND, Channel.SMS, ACME),
    ("campaign:acme-calls", UsageKind.CALL, Channel.PHONE, ACME),
    ("campaign:acme-calls", UsageKind.LEAD_DELIVERED, Channel.PHONE, ACME),
    ("campaign:broker-rental", UsageKind.LIST_TRANSFER, Channel.EMAIL, BROKER),
    ("campaign:pol-rented", UsageKind.SEND, Channel.EMAIL, BROKER),
    ("campaign:mystery", UsageKind.SEND, Channel.EMAIL, ACME),  # undeclared
)
NON_USES = (UsageKind.DELIVER, UsageKind.OPEN, UsageKind.CLICK)

#: (controller, purposes, channel, may be list-scoped, may name recipients)
CONSENT_SHAPES: tuple[tuple[str, str, Channel, bool, bool], ...] = (
    (PUB, "editorial.newsletter", Channel.EMAIL, True, False),
    (PUB, "marketing.partner_transfer", Channel.EMAIL, False, True),
    (ACME, "marketing.direct", Channel.EMAIL, False, False),
    (ACME, "marketing.direct", Channel.SMS, False, False),
    (ACME, "marketing.telemarketing", Channel.PHONE, False, False),
    # "opt-in partenaires" recorded under the recipient's own name (a CMP's vendor list)
    (ACME, "marketing.partner_transfer", Channel.EMAIL, False, True),
    (BROKER, "marketing.partner_transfer", Channel.EMAIL, False, True),
    (POL, "political.communication", Channel.EMAIL, False, False),
)


#: (controller, purpose, channel) of a consent -> the uses it is about (a thread)
THREADS: dict[tuple[str, str, Channel], tuple[str, ...]] = {
    (PUB, "editorial.newsletter", Channel.EMAIL): ("list:" + NEWS, "campaign:pub-weekly"),
    (PUB, "marketing.partner_transfer", Channel.EMAIL): (
        "campaign:acme-promo",
        "campaign:broker-rental",
        "campaign:pol-rented",
    ),
    (ACME, "marketing.direct", Channel.EMAIL): ("campaign:acme-promo",),
    (ACME, "marketing.direct", Channel.SMS): ("campaign:acme-sms",),
    (ACME, "marketing.telemarketing", Channel.PHONE): ("campaign:acme-calls",),
    (ACME, "marketing.partner_transfer", Channel.EMAIL): ("campaign:acme-promo",),
    (BROKER, "marketing.partner_transfer", Channel.EMAIL): (
        "campaign:broker-rental",
        "campaign:pol-rented",
    ),
    (POL, "political.communication", Channel.EMAIL): ("campaign:pol-rented",),
}


@dataclass(frozen=True, slots=True)
class Arrival:
    """One event as the checker receives it: when, and what."""

    at_ms: int
    event: ConsentEvent | UsageEvent


@dataclass
class History:
    """A generated history: the world's declarations and every event in arrival order."""

    seed: int
    declarations: tuple[Declaration, ...]
    arrivals: list[Arrival]
    late_ids: set[str] = field(default_factory=set)

    @property
    def consents(self) -> list[ConsentEvent]:
        """Every distinct consent event (duplicates are identical, so any copy will do)."""
        return list(
            {
                a.event.event_id: a.event
                for a in self.arrivals
                if isinstance(a.event, ConsentEvent)
            }.values()
        )

    @property
    def usages(self) -> list[UsageEvent]:
        return list(
            {
                a.event.event_id: a.event for a in self.arrivals if isinstance(a.event, UsageEvent)
            }.values()
        )

    def describe(self) -> str:
        consents, usages = self.consents, self.usages
        return (
            f"seed {self.seed}: {len(self.arrivals)} arrivals, {len(consents)} consent events "
            f"({len(self.late_ids)} late), {len(usages)} usage events"
        )


@dataclass(frozen=True, slots=True)
class Knobs:
    late_share: float = 0.05
    late_withdrawals: bool = True
    dup_share: float = 0.02
    jitter_ms: int = 5 * SECOND
    signals: bool = False  # notice versions, opt-out means, GPC, TC strings (R4, R6, R21, R22)
    duties: bool = False  # source named, file categories, transfer senders (R15, R16, R18, R19)
    leads: bool = False  # purchased leads with each certificate status (R23)
    certificate_wait_ms: int = 900_000  # the checker's R23 wait the late results outlast


class _Story:
    """One subject's events, built in event time."""

    def __init__(self, rng: random.Random, seed: int, index: int) -> None:
        self.rng = rng
        self.subject = f"{rng.getrandbits(256):064x}"
        self.prefix = f"gen{seed}-{index}"
        self.n = 0
        self.consents: list[ConsentEvent] = []
        self.usages: list[UsageEvent] = []
        self.erased: dict[str, int] = {}

    def _id(self, kind: str) -> str:
        self.n += 1
        return f"{kind}:{self.prefix}-{self.n}"

    def _proof(self, at_ms: int) -> Proof | None:
        r = self.rng.random()
        if r < 0.55:
            return Proof(
                method="double_opt_in",
                collected_at_ms=at_ms,
                collection_point="https://le-quotidien.example/abonnement",
                notice_version="v7",
            )
        if r < 0.70:  # a CMP keeps the proof record: referenced, not copied
            return Proof(method="cmp", collected_at_ms=at_ms, record_ref=f"cmp-rec-{self.n}")
        if r < 0.78:  # a TCF consent string as the receipt
            return Proof(
                method="tcf", collected_at_ms=at_ms, vendor_receipt="CPzHq4APzHq4AAHABBENAx"
            )
        if r < 0.90:  # not enough: no notice version, nothing referenced
            return Proof(method="checkbox", collected_at_ms=at_ms, collection_point="form-3")
        return None

    def consent(
        self,
        at_ms: int,
        shape: tuple[str, str, Channel, bool, bool] | None = None,
        action: ConsentAction | None = None,
    ) -> None:
        rng = self.rng
        controller, purpose, channel, scopable, names = shape or rng.choice(CONSENT_SHAPES)
        if controller in self.erased:
            return
        action = (
            action
            or rng.choices(
                [
                    ConsentAction.GRANT,
                    ConsentAction.WITHDRAW,
                    ConsentAction.REFUSE,
                    ConsentAction.EXPIRE,
                ],
                weights=[60, 22, 9, 9],
            )[0]
        )
        scope = NEWS if scopable and rng.random() < 0.5 else None
        if scope is not None and action is ConsentAction.GRANT and rng.random() < 0.15:
            action = ConsentAction.JOIN  # put on the list by an import: membership, no consent
        grant = action is ConsentAction.GRANT
        recipients: list[str] = []
        if names and grant:
            recipients = sorted(rng.sample([ACME, BROKER, POL], rng.randint(0, 2)))
        collected_by = None
        if (controller == ACME and purpose == "marketing.partner_transfer") or (
            controller == BROKER and rng.random() < 0.5
        ):
            collected_by = PUB
        self.consents.append(
            ConsentEvent(
                event_id=self._id("consent"),
                occurred_at_ms=at_ms,
                received_at_ms=at_ms,
                source="gen-cmp",
                processor="generator",
                subject_key=self.subject,
                hint=HINT_EMAIL,
                controller=controller,
                action=action,
                purposes=[purpose],
                channels=[channel],
                recipients=recipients,
                collected_by=collected_by,
                scope=scope,
                proof=self._proof(at_ms) if grant else None,
                unmapped_purposes=["vendor-p9"] if grant and rng.random() < 0.04 else [],
            )
        )

    def use(self, at_ms: int, shape: tuple[str, UsageKind, Channel, str] | None = None) -> None:
        rng = self.rng
        ref, kind, channel, account = shape or rng.choice(USE_SHAPES)
        ref_kind, name = ref.split(":", 1)
        controller = ACME if ref.startswith("campaign:acme") else account
        if controller in self.erased and at_ms < self.erased[controller]:
            return  # a use before an erasure, judged after it: not a question for the oracle
        self._usage(at_ms, kind, channel, account, ref_kind, name)
        for follow in NON_USES:
            if channel is Channel.EMAIL and rng.random() < 0.25:
                self._usage(
                    at_ms + rng.randint(1, 600) * SECOND, follow, channel, account, ref_kind, name
                )

    def _usage(
        self, at_ms: int, kind: UsageKind, channel: Channel, account: str, ref_kind: str, name: str
    ) -> None:
        if kind is UsageKind.CLICK and sum(u.kind is UsageKind.CLICK for u in self.usages) >= 4:
            return
        self.usages.append(
            UsageEvent(
                event_id=self._id("usage"),
                occurred_at_ms=at_ms,
                received_at_ms=at_ms,
                source="gen-esp",
                processor="generator",
                channel=channel,
                kind=kind,
                subject_key=self.subject,
                hint=HINT_EMAIL if channel is Channel.EMAIL else HINT_PHONE,
                controller=account,
                campaign_id=name if ref_kind == "campaign" else None,
                list_id=name if ref_kind == "list" else None,
            )
        )

    def erase(self, at_ms: int) -> None:
        """ACME erases the address at ``at_ms``; this story then has no other ACME consent
        and no ACME use before the erasure."""
        self.erased[ACME] = at_ms
        self.consents.append(
            ConsentEvent(
                event_id=self._id("consent"),
                occurred_at_ms=at_ms,
                received_at_ms=at_ms,
                source="gen-cmp",
                processor="generator",
                subject_key=self.subject,
                hint=HINT_EMAIL,
                controller=ACME,
                action=ConsentAction.ERASE,
            )
        )


def _story(rng: random.Random, seed: int, index: int) -> _Story:
    story = _Story(rng, seed, index)
    if rng.random() < 0.05:  # a prospect whose only consent is four years old (R20)
        story.consent(T0 - 4 * 365 * DAY)
    steps = sorted(T0 + rng.randrange(SPAN) for _ in range(rng.randint(3, 14)))
    if rng.random() < 0.03:
        story.erase(steps[len(steps) // 2] + 1)
    for t in steps:  # noise: anything at any time
        if rng.random() < 0.4:
            story.consent(t)
        else:
            story.use(t)
    for _ in range(rng.randint(0, 2)):  # threads: a consent, the uses it is for, an ending
        shape = rng.choice(CONSENT_SHAPES)
        uses = [u for u in USE_SHAPES if u[0] in THREADS[shape[0], shape[1], shape[2]]]
        start = T0 + rng.randrange(SPAN)
        if rng.random() < 0.85:
            story.consent(start, shape, ConsentAction.GRANT)
        end = start + rng.randrange(HOUR, 10 * DAY)
        if rng.random() < 0.5:
            story.consent(end, shape, rng.choice(WITHDRAWING))
        for _ in range(rng.randint(1, 4)):
            story.use(start + rng.randrange(1, 14 * DAY), rng.choice(uses))
    return story


def _late_delay(rng: random.Random, consent: ConsentEvent, usages: list[UsageEvent]) -> int:
    """How late a late consent arrives: after the subject's uses on its channel in the
    next five days (so it changes verdicts already given), else 3 hours to 3 days late;
    always well within the 7-day correction window."""
    t = consent.occurred_at_ms
    affected = [
        u.occurred_at_ms
        for u in usages
        if t < u.occurred_at_ms <= t + 5 * DAY and u.channel in consent.channels
    ]
    if affected:
        return max(affected) - t + rng.randrange(10 * 60 * SECOND, DAY)
    return rng.randrange(3 * HOUR, 3 * DAY)


def generate(seed: int, target_events: int, knobs: Knobs = Knobs()) -> History:
    """A history of about ``target_events`` arrivals, the same for the same arguments."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    late: set[str] = set()
    index = 0
    while len(arrivals) < target_events:
        story = _story(rng, seed, index)
        index += 1
        for event in story.usages:
            arrivals.append(Arrival(event.occurred_at_ms + rng.randrange(knobs.jitter_ms), event))
        for consent in story.consents:
            delay = rng.randrange(knobs.jitter_ms)
            eligible = consent.action is ConsentAction.GRANT or (
                knobs.late_withdrawals and consent.action in WITHDRAWING
            )
            if (
                eligible
                and consent.controller not in story.erased
                and rng.random() < knobs.late_share
            ):
                delay = _late_delay(rng, consent, story.usages)
                late.add(consent.event_id)
            arrivals.append(Arrival(consent.occurred_at_ms + delay, consent))
    for arrival in list(arrivals):
        if rng.random() < knobs.dup_share:
            arrivals.append(Arrival(arrival.at_ms + rng.randrange(1, HOUR), arrival.event))
    arrivals.sort(key=lambda a: a.at_ms)
    history = History(seed, DECLARATIONS, arrivals, late)
    history = with_signals(history) if knobs.signals else history
    history = with_duties(history) if knobs.duties else history
    return with_leads(history, wait_ms=knobs.certificate_wait_ms) if knobs.leads else history


def iter_arrivals(history: History) -> Iterator[Arrival]:
    yield from history.arrivals
