"""``consentinel subject show ADDRESS``: what consentinel holds about one data subject.

The address is normalized and pseudonymized here, with the deployment's pepper, exactly as
the connectors do (``events.identity``); only the subject key is used from then on. The
raw address is never logged or written anywhere: the output echoes the operator's own
input once, and otherwise shows masked hints. Each lookup is first written to the audit
topic (who, when, which subject key); a lookup that cannot be audited is not shown.

Read: the consent topic (the subject's whole consent history), the usage topic (recent
uses, as far as its retention reaches), and the incident store (alerts about the subject
and their incidents). Both topics are scanned to their current end and filtered on the
subject key: a read of the whole topic, fine for an operator's lookup, not for a loop.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from consentinel.streams.alerts.console_evidence import iso, subject_ref
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events import codec, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.identity import Pseudonymizer, normalize
from consentinel.streams.events.records import Alert, AuditEvent, ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Settings

T = TypeVar("T", ConsentEvent, UsageEvent)


@dataclass
class SubjectFile:
    subject_key: str
    consent: list[ConsentEvent] = field(default_factory=list)
    uses: list[UsageEvent] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    incidents: dict[str, str] = field(default_factory=dict)  # id -> status


def subject_key(settings: Settings, address: str) -> str:
    """The subject key of ``address`` (e-mail when it has an ``@``, else a phone number)."""
    channel = "email" if "@" in address else "phone"
    normalized = normalize(address, channel, settings.default_region)
    return Pseudonymizer(settings.pepper.reveal()).subject_key(normalized)


def _scan(bootstrap: str, topic: str, cls: type[T], key: str) -> Iterator[T]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
            client_id="consentinel-subject", request_timeout_ms=15_000,
        )  # fmt: skip
    except KafkaError:
        raise RetriableError(f"no Kafka broker answers at {bootstrap}") from None
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for tp, msgs in consumer.poll(timeout_ms=1000).items():
                for msg in msgs:
                    if msg.offset + 1 >= ends[tp]:
                        todo.discard(tp)
                    if msg.value is None:
                        continue
                    try:
                        record = codec.decode(cls, msg.value)
                    except InvalidInput:
                        continue
                    if record.subject_key == key:
                        yield record
    finally:
        consumer.close()


def look_up(settings: Settings, key: str, store: IncidentStore) -> SubjectFile:
    found = SubjectFile(key)
    bootstrap = settings.bootstrap_servers
    found.consent = list(_scan(bootstrap, settings.topic(topics.CONSENT), ConsentEvent, key))
    found.uses = list(_scan(bootstrap, settings.topic(topics.USAGE), UsageEvent, key))
    found.consent.sort(key=lambda e: e.occurred_at_ms)
    found.uses.sort(key=lambda e: e.occurred_at_ms)
    for incident_id, alert in store.alerts_of_subject(key):
        found.alerts.append(alert)
        inc = store.get_incident(incident_id) if incident_id else None
        if inc is not None:
            found.incidents[inc.incident_id] = inc.status.value
    return found


def audit(settings: Settings, key: str, actor: str, via: str) -> AuditEvent:
    """Write the lookup to the audit topic (acks=all, confirmed) before showing anything."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    at = now_ms()
    event = AuditEvent(f"lookup:{actor}:{at}:{key[:16]}", at, actor, "subject_lookup", via, key)
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers.split(","), acks="all"
        )
        producer.send(
            settings.topic(topics.AUDIT), key=key.encode(), value=codec.encode(event)
        ).get(timeout=30)
        producer.close()
    except KafkaError as exc:
        raise RetriableError(f"the lookup could not be audited ({type(exc).__name__})") from None
    return event


def render(found: SubjectFile, echo: str, out: Callable[[str], Any]) -> None:
    out(f"subject {echo!r} = {subject_ref(found.subject_key)}")
    out(f"consent history ({len(found.consent)}):")
    for c in found.consent:
        proof = c.proof.method if c.proof else "no proof"
        out(f"  {iso(c.occurred_at_ms)}  {c.controller}  {c.action}  purposes={c.purposes or 'all'}"
            f"  via {c.source} ({proof})  {c.hint}")  # fmt: skip
    out(f"recent uses ({len(found.uses)}):")
    for u in found.uses:
        out(f"  {iso(u.occurred_at_ms)}  {u.controller}  {u.kind}  campaign={u.campaign_id}"
            f"  via {u.source}  {u.hint}")  # fmt: skip
    out(f"alerts ({len(found.alerts)}):")
    for a in found.alerts:
        out(f"  {iso(a.detected_at_ms)}  {a.rule_id}  {a.status}  {a.controller}  {a.summary}")
    out(f"incidents ({len(found.incidents)}):")
    for iid, status in sorted(found.incidents.items()):
        out(f"  {iid}  {status}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="consentinel subject", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="consent history, uses, alerts, incidents of one address")
    show.add_argument("address", help="the e-mail address or phone number asked about")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        key = subject_key(settings, args.address)
    except InvalidInput as exc:
        print(f"consentinel subject: {exc}", file=sys.stderr)
        return 2
    try:
        audit(settings, key, getpass.getuser(), "cli")
        with IncidentStore.open(settings) as store:
            found = look_up(settings, key, store)
    except RetriableError as exc:
        print(f"consentinel subject: {exc}", file=sys.stderr)
        return 69
    render(found, args.address, print)
    return 0
