"""What consentinel holds about one data subject, and the audit trail of every look at it.

Shared by ``consentinel subject`` (``casework.subject_lookup``) and the console's
``POST /api/subjects/lookup`` (``console_subjects``): it lives in this layer because the
console may not import casework (the layer rule), as ``evidence_pack`` does for packs.

The address is normalized and pseudonymized here, with the deployment's pepper, exactly as
the connectors do (``events.identity``); only the subject key is used from then on. The raw
address is never logged or written anywhere. Each look is first written to the audit topic
(who, when, which subject key, which act); a look that cannot be audited is not shown.

Read, on the subject's partition only (usage, consent and the worker's changelogs are
co-partitioned by subject key): the consent topic (the whole consent history), the usage
topic (recent uses, as far as its retention reaches), the worker's ``holds`` changelog
(uses held: pending their consent, or alerted and open to correction), and the incident
store (alerts about the subject and their incidents). Each partition is read to its
current end: fine for an operator's lookup, not for a loop.

What blocks: everything here (Kafka reads and writes, up to 30 s each; SQLite reads). Call
it through ``asyncio.to_thread`` in async code. Raises ``InvalidInput`` for an address that
is neither an e-mail address nor a phone number, ``RetriableError`` when Kafka does not
answer or the audit record is not confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from consentinel.streams.events import codec, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.identity import Pseudonymizer, mask, normalize
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import Alert, AuditEvent, ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Settings

from .erasure import ERASE_ACTION
from .store import IncidentStore

T = TypeVar("T")

LOOKUP = "subject_lookup"
ERASE = ERASE_ACTION


@dataclass(frozen=True)
class HeldUse:
    """A use the worker holds for the subject: ``pending`` (waiting for consent until
    ``until_ms``) or ``alerted`` (decided with alerts, open to correction)."""

    state: str  # pending | alerted
    usage: UsageEvent
    until_ms: int | None = None  # pending: the deadline; alerted: when it was decided
    rules: dict[str, str] = field(default_factory=dict)  # alerted: rule -> alert status


@dataclass
class SubjectFile:
    subject_key: str
    consent: list[ConsentEvent] = field(default_factory=list)
    uses: list[UsageEvent] = field(default_factory=list)
    holds: list[HeldUse] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    incidents: dict[str, str] = field(default_factory=dict)  # id -> status

    @property
    def controllers(self) -> list[str]:
        """Every controller the subject is known to (consent, uses, holds, alerts)."""
        found = {c.controller for c in self.consent} | {u.controller for u in self.uses}
        found |= {h.usage.controller for h in self.holds} | {a.controller for a in self.alerts}
        return sorted(found)


def normalized_address(settings: Settings, address: str) -> tuple[str, str]:
    """(normalized address, channel): e-mail when it has an ``@``, else a phone number."""
    channel = "email" if "@" in address else "phone"
    return normalize(address, channel, settings.default_region), channel


def subject_key(settings: Settings, address: str) -> str:
    """The subject key of ``address`` (e-mail when it has an ``@``, else a phone number)."""
    normalized, _ = normalized_address(settings, address)
    return Pseudonymizer(settings.pepper.reveal()).subject_key(normalized)


def hint(settings: Settings, address: str) -> str:
    """The masked form of ``address`` for people (what connectors put in ``hint``)."""
    normalized, channel = normalized_address(settings, address)
    return mask(normalized, channel)


def holds_changelog(settings: Settings) -> str:
    """The worker's ``holds`` table changelog (Faust: ``<app id>-<table>-changelog``)."""
    return f"{settings.topic_prefix}{settings.app_id}-holds-changelog"


def _scan(
    bootstrap: str, topic: str, key: str, decode: Callable[[bytes | None], T]
) -> Iterator[tuple[bytes, T]]:
    """(message key, decoded value) of the records of ``key``'s partition whose message key
    is the subject's (or, for the holds changelog, starts ``k:`` + it), in offset order."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    wanted = subject_message_key(key)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
            client_id="consentinel-subject", request_timeout_ms=15_000,
        )  # fmt: skip
    except KafkaError:
        raise RetriableError(f"no Kafka broker answers at {bootstrap}") from None
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            return
        tp = TopicPartition(topic, partition_for(wanted, len(parts)))
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        while consumer.position(tp) < end:
            for msgs in consumer.poll(timeout_ms=1000).values():
                for msg in msgs:
                    if msg.key in (wanted, b"k:" + wanted):
                        try:
                            yield msg.key, decode(msg.value)
                        except InvalidInput:
                            continue
    except KafkaError as exc:
        raise RetriableError(f"could not read {topic} ({type(exc).__name__})") from None
    finally:
        consumer.close()


def _record(cls: type[T]) -> Callable[[bytes | None], T | None]:
    def decode(value: bytes | None) -> T | None:
        return None if value is None else codec.decode(cls, value)

    return decode


def held_uses(value: bytes | None) -> list[HeldUse]:
    """The held uses in one value of the ``holds`` changelog (the checker's ``Holds``:
    ``{"p": [{"u": use, "d": deadline}], "a": [{"u": use, "at": decided, "r": {rule:
    [revision, status]}}]}``); a tombstone (None) holds nothing."""
    if not value:
        return []
    try:
        obj = codec.loads(value)
        pending = [
            HeldUse("pending", codec.from_obj(UsageEvent, p["u"]), int(p["d"]))
            for p in obj.get("p", [])
        ]
        alerted = [
            HeldUse(
                "alerted",
                codec.from_obj(UsageEvent, a["u"]),
                int(a["at"]),
                {rule: str(state[1]) for rule, state in a.get("r", {}).items()},
            )
            for a in obj.get("a", [])
        ]
    except (InvalidInput, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise InvalidInput(
            "holds_format", f"a holds record this version cannot read ({exc})"
        ) from None
    return pending + alerted


def look_up(settings: Settings, key: str, store: IncidentStore) -> SubjectFile:
    found = SubjectFile(key)
    bootstrap = settings.bootstrap_servers
    consent_topic, usage_topic = settings.topic(topics.CONSENT), settings.topic(topics.USAGE)
    found.consent = [r for _, r in _scan(bootstrap, consent_topic, key, _record(ConsentEvent)) if r]
    found.uses = [r for _, r in _scan(bootstrap, usage_topic, key, _record(UsageEvent)) if r]
    found.consent.sort(key=lambda e: e.occurred_at_ms)
    found.uses.sort(key=lambda e: e.occurred_at_ms)
    latest: dict[bytes, list[HeldUse]] = {}
    for msg_key, held in _scan(bootstrap, holds_changelog(settings), key, held_uses):
        if msg_key == subject_message_key(key):  # kept (allowed) uses are not held
            latest[msg_key] = held
    found.holds = [h for held in latest.values() for h in held]
    for incident_id, alert in store.alerts_of_subject(key):
        found.alerts.append(alert)
        inc = store.get_incident(incident_id) if incident_id else None
        if inc is not None:
            found.incidents[inc.incident_id] = inc.status.value
    return found


def produce(settings: Settings, topic: str, records: list[tuple[str, bytes]], what: str) -> None:
    """Write ``records`` (subject key, value) to ``topic``, acks=all, each one confirmed."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","), acks="all",
            max_block_ms=10_000, bootstrap_timeout_ms=10_000,  # an operator waits: 10 s at most
        )  # fmt: skip
        try:
            for key, value in records:
                producer.send(settings.topic(topic), key=subject_message_key(key), value=value).get(
                    timeout=30
                )
        finally:
            producer.close()
    except KafkaError as exc:
        raise RetriableError(f"{what} could not be written ({type(exc).__name__})") from None


def audit(settings: Settings, key: str, actor: str, via: str, action: str = LOOKUP) -> AuditEvent:
    """Write the act to the audit topic (acks=all, confirmed) before doing or showing it."""
    at = now_ms()
    verb = "lookup" if action == LOOKUP else "erase"
    event = AuditEvent(f"{verb}:{actor}:{at}:{key[:16]}", at, actor, action, via, key)
    produce(settings, topics.AUDIT, [(key, codec.encode(event))], f"the {verb} audit record")
    return event


def file_view(found: SubjectFile) -> dict[str, Any]:
    """The subject's file as JSON for the console: hints only, never an address."""
    from .console_evidence import iso, scrub, subject_ref

    return {
        "subject_ref": subject_ref(found.subject_key),
        "consent": [
            {"at": iso(c.occurred_at_ms), "controller": c.controller, "action": c.action.value,
             "purposes": c.purposes, "source": c.source, "hint": c.hint,
             "proof": c.proof.method if c.proof else None}
            for c in found.consent
        ],
        "uses": [
            {"at": iso(u.occurred_at_ms), "controller": u.controller, "kind": u.kind.value,
             "campaign_id": u.campaign_id, "source": u.source, "hint": u.hint}
            for u in found.uses
        ],
        "holds": [
            {"state": h.state, "at": iso(h.usage.occurred_at_ms), "until": iso(h.until_ms),
             "controller": h.usage.controller, "kind": h.usage.kind.value,
             "campaign_id": h.usage.campaign_id, "rules": h.rules}
            for h in found.holds
        ],
        "alerts": [
            {"at": iso(a.detected_at_ms), "rule_id": a.rule_id, "status": a.status.value,
             "controller": a.controller, "summary": scrub(a.summary)}
            for a in found.alerts
        ],
        "incidents": [{"incident_id": i, "status": s} for i, s in sorted(found.incidents.items())],
    }  # fmt: skip
