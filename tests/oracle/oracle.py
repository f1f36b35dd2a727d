"""An offline reference evaluator: the final verdict of every use, from the rules reference.

Deliberately simple and slow: plain lists, linear scans, no Kafka, no Faust, and nothing
from ``consentinel.streams.policy`` (this is an independent reading of
/work/shared/reference/rules.md and DESIGN.md "Semantics"; only the records, the
declaration ids and the event contract are shared). It sees every consent event with its
event time at once: the *final* verdict is the one a checker must end with once every late
consent has arrived and every correction has been made.

The rules the checker implements today, with the same settings: R1, R2, R3, R5, R13, R14,
R17, R20, CFG-UNDECLARED, CFG-UNMAPPED; R8 to R12 are read in ``oracle_channels``, R4, R6,
R21 and R22 in ``oracle_notice``, R15, R16, R18 and R19 in ``oracle_duties``, R23 in
``oracle_leads``. A list transfer is not a message: R1 and R17 do not judge it. A ``verify``
event (a lead certificate's result) is no consent: only R23 reads it.

How a question is answered (the reference's "consent at the moment of use")
-----------------------------------------------------------------------------
The consent events of one controller speak about (purpose, channel, scope). For a use at
time ``t`` the answer on (purpose, channel, what the use names) is the *latest* event at or
before ``t`` that speaks about it: a grant allows, a withdrawal / refusal / expiry forbids,
none means no consent. Ties at one millisecond: the non-grant wins, then the event id. A
withdrawal takes effect after the channel's processing allowance (R5: e-mail 2 days, SMS and
phone at once); the other actions at once. A consent scoped to a list speaks for a use that
names the list, or whose declaration names it among its ``data_sources`` (narrow matching).
An erasure forgets everything the controller knew up to it: afterwards, until a new consent,
any use is a use after withdrawal (R5).

Where the use's controller has no answer, an "opt-in partenaires" grant
(``marketing.partner_transfer``) covers the controller's direct marketing and telemarketing
(and partner transfers): first the controller's own such record (a CMP records it under the
recipient's name), then one held by a controller the declaration says the addresses came
from (any other controller when it says none), preferring grants that name the controller.
Whether the partner was named is R13's question.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from consentinel.streams.events.ids import declaration_id
from consentinel.streams.events.records import (
    USE_KINDS,
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
from oracle_channels import channel_findings, too_many_calls
from oracle_duties import duty_findings
from oracle_leads import r23, results
from oracle_notice import notice_findings

ELECTRONIC = {Channel.EMAIL, Channel.SMS, Channel.RCS, Channel.WHATSAPP}
NEVER_PROMOTIONAL = {"service.transactional", "security.fraud"}
PARTNER = "marketing.partner_transfer"
PARTNER_ALLOWS = {"marketing.direct", "marketing.telemarketing"}
POLITICAL = "political.communication"
THIRD_PARTY_FILES = {Sourcing.RENTED, Sourcing.PURCHASED, Sourcing.PARTNER}
CONTACTS = {UsageKind.CLICK, UsageKind.REPLY}


@dataclass(frozen=True)
class Settings:
    """The checker's settings the rules read (their defaults)."""

    allowance_ms: tuple[tuple[str, int], ...] = (("email", 172_800_000), ("sms", 0), ("phone", 0))
    retention_days: int = 1095
    r3_on: bool = True
    r13_on: bool = True

    def allowance(self, channel: str) -> int:
        return dict(self.allowance_ms).get(channel, 0)


def provable(proof: Proof | None) -> bool:
    """R3: proof exists somewhere. Either the event carries the four elements the reference
    lists (timestamp, notice version or text, collection point, method), or it names a
    proof record kept by whoever collected the consent: a CMP's record (``record_ref``), a
    receipt or TCF string (``vendor_receipt``), a lead certificate (``certificate_id``)."""
    if proof is None:
        return False
    if proof.record_ref or proof.vendor_receipt or proof.certificate_id:
        return True
    return all(
        (
            proof.collected_at_ms is not None,
            proof.notice_version is not None or proof.text_hash is not None,
            proof.collection_point is not None,
            proof.method is not None,
        )
    )


def _order(e: ConsentEvent) -> tuple[int, int, str]:
    return (e.occurred_at_ms, 0 if e.action is ConsentAction.GRANT else 1, e.event_id)


class World:
    """Everything known at the end: consent events per controller, contacts, declarations."""

    def __init__(
        self,
        declarations: Iterable[Declaration],
        consents: Iterable[ConsentEvent],
        usages: Iterable[UsageEvent],
        settings: Settings = Settings(),
    ) -> None:
        self.settings = settings
        self.decls = {d.decl_id: d for d in declarations}
        self.by_subject: dict[str, dict[str, list[ConsentEvent]]] = {}
        self.erased: dict[tuple[str, str], int] = {}
        distinct = {e.event_id: e for e in consents}.values()
        self.certificates = results(distinct)
        for e in distinct:
            if e.action in (ConsentAction.JOIN, ConsentAction.VERIFY):
                continue  # list membership, a certificate's result: no consent
            if e.action is ConsentAction.ERASE:
                key = (e.subject_key, e.controller)
                self.erased[key] = max(self.erased.get(key, e.occurred_at_ms), e.occurred_at_ms)
            else:
                self.by_subject.setdefault(e.subject_key, {}).setdefault(e.controller, []).append(e)
        for lines in self.by_subject.values():
            for events in lines.values():
                events.sort(key=_order)
        self.contacts: dict[tuple[str, str], list[int]] = {}
        self.calls: dict[tuple[str, str], list[UsageEvent]] = {}  # sales calls (R11)
        # each controller's first message to each person after its erasure (R15, R18)
        self.firsts: dict[tuple[str, str], tuple[int, str]] = {}
        self.usages = list({u.event_id: u for u in usages}.values())
        for u in self.usages:
            decl = self.declaration(u)
            who = decl.controller if decl else u.controller
            if u.kind in CONTACTS:
                self.contacts.setdefault((u.subject_key, who), []).append(u.occurred_at_ms)
            if u.kind is UsageKind.CALL and not u.is_test and _promotional(decl, u):
                self.calls.setdefault((u.subject_key, who), []).append(u)
            if u.kind is UsageKind.SEND and not u.is_test:
                key, record = (u.subject_key, who), (u.occurred_at_ms, u.event_id)
                erased = self.erased.get(key)
                if (erased is None or record[0] > erased) and record < self.firsts.get(
                    key, (2**63, "")
                ):
                    self.firsts[key] = record
        # who dealt with whom, indexed once (a scan of every pair per use is quadratic)
        self.known: dict[str, set[str]] = {s: set(lines) for s, lines in self.by_subject.items()}
        for subject, controller in [*self.erased, *self.contacts]:
            self.known.setdefault(subject, set()).add(controller)

    # -- lookups -------------------------------------------------------------------------

    def declaration(self, u: UsageEvent) -> Declaration | None:
        named = [("campaign", u.campaign_id), ("list", u.list_id), ("form", u.form_id)]
        named += [("sender", u.sender), *(("tag", t) for t in u.tags)]
        for kind, ref in named:
            if ref and declaration_id(kind, ref) in self.decls:
                return self.decls[declaration_id(kind, ref)]
        return None

    def events(
        self, subject: str, controller: str, t: int, allowance: int = 0
    ) -> list[ConsentEvent]:
        """The controller's consent events in effect at ``t`` (after its erasure, if any)."""
        erased = self.erased.get((subject, controller))
        return [
            e
            for e in self.by_subject.get(subject, {}).get(controller, [])
            if (erased is None or e.occurred_at_ms > erased)
            and e.occurred_at_ms <= (t - allowance if e.action is ConsentAction.WITHDRAW else t)
        ]

    def controllers(self, subject: str) -> set[str]:
        """Every controller the subject has dealt with: consents, erasures, contacts."""
        return self.known.get(subject, set())


def _promotional(decl: Declaration | None, u: UsageEvent) -> bool:
    if decl is not None:
        return decl.promotional
    return u.declared_purpose is not None and u.declared_purpose not in NEVER_PROMOTIONAL


def _speaks(e: ConsentEvent, purpose: str | None, channel: str, refs: set[str]) -> bool:
    if e.purposes and (purpose is None or purpose not in e.purposes):
        return False
    if e.channels and channel not in e.channels:
        return False
    return e.scope is None or e.scope in refs


def _answer(
    events: list[ConsentEvent], purpose: str | None, channel: str, refs: set[str]
) -> ConsentEvent | None:
    """The latest event that speaks about the question (events are in time order)."""
    for e in reversed(events):
        if _speaks(e, purpose, channel, refs):
            return e
    return None


def _in_force(events: list[ConsentEvent]) -> list[ConsentEvent]:
    """Events not overridden by a later one about the same purposes, channels and scope."""
    out = []
    for i, e in enumerate(events):
        later = events[i + 1 :]
        if not any(
            set(e.purposes) <= set(f.purposes)
            and set(e.channels) <= set(f.channels)
            and (f.scope is None or f.scope == e.scope)
            for f in later
        ):
            out.append(e)
    return out


def _opted_in_on(events: list[ConsentEvent], channel: str) -> bool:
    """R1: some purpose is granted on the channel (whatever its scope)."""
    return any(
        e.action is ConsentAction.GRANT and (not e.channels or channel in e.channels)
        for e in _in_force(events)
    )


def judge(world: World, u: UsageEvent) -> set[str]:
    """The rule ids that hold against use ``u`` with everything known (empty: allowed)."""
    s = world.settings
    decl = world.declaration(u)
    c = decl.controller if decl else u.controller
    purpose = decl.purpose if decl else u.declared_purpose
    channel = str(u.channel)
    t = u.occurred_at_ms
    subject = u.subject_key
    basis = decl.legal_basis if decl else LegalBasis.CONSENT
    promotional = _promotional(decl, u)
    needs_consent = basis is LegalBasis.CONSENT or (
        channel in ELECTRONIC and promotional and basis is not LegalBasis.B2B
    )
    refs = {r for r in (u.campaign_id, u.list_id, u.form_id, u.sender, *u.tags) if r}
    if decl:
        refs |= {decl.decl_id, decl.ref, *decl.data_sources}

    own = world.events(subject, c, t)
    effective = world.events(subject, c, t, s.allowance(channel))
    erased_at = world.erased.get((subject, c))
    erased_now = erased_at is not None and not own  # nothing consented since the erasure
    found: set[str] = set()
    if decl is None:
        found.add("CFG-UNDECLARED")
    if erased_now and erased_at is not None and t < erased_at:
        raise AssertionError(f"use {u.event_id} before an erasure: not a question for the oracle")

    answer = _answer(effective, purpose, channel, refs)
    grant = answer if answer is not None and answer.action is ConsentAction.GRANT else None
    block = answer if answer is not None and grant is None else None
    via = None
    if grant is None and block is None and purpose in PARTNER_ALLOWS:
        mine = _answer(effective, PARTNER, channel, refs)
        if mine is not None and mine.action is ConsentAction.GRANT:
            grant = mine
    if grant is None and block is None and purpose is not None and not erased_now:
        acquired = [a for a in (decl.acquired_from if decl else []) if a != c]
        candidates = acquired or sorted(world.controllers(subject) - {c})
        unnamed = None
        for name in candidates:
            g = _answer(world.events(subject, name, t), PARTNER, channel, refs)
            if g is None or g.action is not ConsentAction.GRANT:
                continue
            if not (purpose in PARTNER_ALLOWS or purpose in g.purposes):
                continue
            if c in g.recipients:
                grant, via, unnamed = g, name, None
                break
            if unnamed is None:
                unnamed = (g, name)
        if unnamed is not None:
            grant, via = unnamed

    withdrawn = erased_now or (block is not None and block.action is ConsentAction.WITHDRAW)
    # R1: promotional electronic message with no opt-in for the channel at all
    if (
        channel in ELECTRONIC
        and u.kind is not UsageKind.LIST_TRANSFER
        and promotional
        and needs_consent
        and grant is None
        and not withdrawn
        and not _opted_in_on(effective, channel)
    ):
        found.add("R1")
    # R2: purpose not covered by the consent
    if needs_consent and purpose is not None and grant is None and not withdrawn:
        found.add("R2")
    # R3: the consent used cannot be proven anywhere
    if s.r3_on and needs_consent and grant is not None and not provable(grant.proof):
        found.add("R3")
    # R5: a use after withdrawal, objection or erasure
    if (needs_consent or promotional) and (
        erased_now
        or (
            block is not None
            and (
                block.action is ConsentAction.WITHDRAW
                or (block.action is ConsentAction.REFUSE and not needs_consent)
            )
        )
    ):
        found.add("R5")
    # R13: consent collected by someone who did not name this controller
    if (
        s.r13_on
        and grant is not None
        and c not in grant.recipients
        and (via is not None or grant.collected_by not in (None, c))
    ):
        found.add("R13")
    # R14: addresses passed on by a supplier that was itself only a named partner
    if (
        decl
        and decl.acquired_from
        and not (grant is not None and via is None and grant.collected_by in (None, c))
    ):
        for supplier in decl.acquired_from:
            if supplier != c and _only_a_partner(world, subject, supplier, c, t):
                found.add("R14")
                break
    # R17: political message to a third-party file without explicit political consent
    if (
        purpose == POLITICAL
        and decl is not None
        and decl.sourcing in THIRD_PARTY_FILES
        and channel in ELECTRONIC
        and u.kind is not UsageKind.LIST_TRANSFER
        and (grant is None or POLITICAL not in grant.purposes)
    ):
        found.add("R17")
    # R20: promotional use more than the retention period after the last contact
    if promotional:
        known = [e.occurred_at_ms for e in own if e.action is ConsentAction.GRANT]
        known += [
            x
            for x in world.contacts.get((subject, c), [])
            if x <= t and (erased_at is None or x > erased_at)
        ]
        if grant is not None:
            known.append(grant.occurred_at_ms)
        if known and t - max(known) > s.retention_days * 86_400_000:
            found.add("R20")
    # R23: a purchased lead whose certificate is missing or not verified for the buyer
    if r23(u, decl, c, grant, world.certificates, erased_at):
        found.add("R23")
    # CFG-UNMAPPED: the consent consulted carries vendor purposes with no mapping
    consulted = _in_force(effective)
    if via is not None:
        consulted += _in_force(world.events(subject, via, t))
    if any(e.unmapped_purposes for e in consulted):
        found.add("CFG-UNMAPPED")
    # R11: too many sales calls, or one too soon after a refusal during a call
    if u.kind is UsageKind.CALL and promotional:
        calls = [
            x
            for x in world.calls.get((subject, c), [])
            if erased_at is None or x.occurred_at_ms > erased_at
        ]
        if too_many_calls(u, calls, own):
            found.add("R11")
    found |= notice_findings(
        u,
        channel,
        decl,
        promotional,
        needs_consent,
        grant,
        via,
        _in_force(own),
        lambda: [
            e
            for x in world.controllers(subject) - {c}
            for e in _in_force(world.events(subject, x, t))
        ],
    )
    found |= duty_findings(
        u,
        channel,
        decl,
        c,
        purpose,
        world.firsts.get((subject, c)) == (t, u.event_id),
        world.controllers(subject),
        lambda holder, p, ch: _answer(world.events(subject, holder, t), p, ch, refs),
        provable,
    )
    return found | channel_findings(
        u, channel, promotional, decl, provable(grant.proof) if grant else False
    )


def _only_a_partner(world: World, subject: str, supplier: str, user: str, t: int) -> bool:
    """R14: ``supplier`` holds the person's consent only as someone else's partner."""
    events = [
        e for e in _in_force(world.events(subject, supplier, t)) if e.action is ConsentAction.GRANT
    ]
    if any(e.collected_by in (None, supplier) for e in events):
        return False
    if events:
        return True
    for other in sorted(world.controllers(subject) - {supplier, user}):
        grants = [
            e for e in _in_force(world.events(subject, other, t)) if e.action is ConsentAction.GRANT
        ]
        if any(supplier in e.recipients for e in grants):
            return True
    return False


def final_verdicts(
    declarations: Iterable[Declaration],
    consents: Iterable[ConsentEvent],
    usages: Iterable[UsageEvent],
    settings: Settings = Settings(),
) -> dict[str, frozenset[str]]:
    """usage event id -> the rule ids that hold against it, for every use (and only uses)."""
    world = World(declarations, consents, usages, settings)
    return {
        u.event_id: frozenset(judge(world, u))
        for u in world.usages
        if u.kind in USE_KINDS and not u.is_test
    }
