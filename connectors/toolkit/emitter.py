"""One way to build canonical events, for every channel (e-mail, SMS, phone, leads, CMP).

An :class:`Emitter` holds what every event of one request shares (source, processor,
controller, received time); a connector names only what its platform says. Event ids are
``ids.event_id(source, *dedupe, role)``: ``dedupe`` is the platform's own identity of the
event (message id, event id, lead id...), never a delivery time or header, so a redelivery
maps to the same ids; ``role`` keeps two events of one platform event apart (``role=None``
adds nothing, for connectors whose ids never had one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from consentinel.connectors.contract import Address, Connector, Request, sending_domain
from consentinel.connectors.toolkit.occurrence import Occurrence
from consentinel.streams.events import clock, ids
from consentinel.streams.events.records import (
    CertificateStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Proof,
    Scalar,
    UsageEvent,
    UsageKind,
)

MAX_ATTR = 256  # longest attribute text kept; vendor strings can be huge


def received_ms(request: Request | None) -> int:
    """When the runtime received the request, else now (file rows, tests)."""
    return (request.received_at_ms if request is not None else 0) or clock.now_ms()


def clean_attributes(attributes: Mapping[str, Scalar | None] | None) -> dict[str, Scalar]:
    """Attributes without empty values, texts cut to :data:`MAX_ATTR` characters."""
    out: dict[str, Scalar] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        out[key] = value[:MAX_ATTR] if isinstance(value, str) else value
    return out


def map_purposes(connector: Connector, vendor_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(canonical purposes, unmapped vendor ids), each once in order: never a guess; an
    unmapped id fails closed."""
    mapped: list[str] = []
    unmapped: list[str] = []
    for vendor_id in vendor_ids:
        canonical = connector.purpose(vendor_id)
        if canonical:
            mapped.append(canonical)
        else:
            unmapped.append(vendor_id)
    return list(dict.fromkeys(mapped)), list(dict.fromkeys(unmapped))


class Emitter:
    """Builds the events of one request or row. Pure: never blocks, raises nothing itself
    (the records validate their own fields)."""

    def __init__(self, connector: Connector, received_at_ms: int) -> None:
        self.connector = connector
        self.source = connector.instance.name
        self.controller = connector.instance.controller
        self.received_at_ms = received_at_ms

    def at(self, dedupe: tuple[object, ...], address: Address, occurred_at_ms: int) -> Occurrence:
        """The events of one platform event about ``address`` (see :class:`Occurrence`)."""
        return Occurrence(self, dedupe, address, occurred_at_ms)

    def event_id(self, dedupe: Iterable[object], role: str | None) -> str:
        parts = [*dedupe] if role is None else [*dedupe, role]
        return ids.event_id(self.source, *parts)

    def usage(
        self,
        dedupe: tuple[object, ...],
        kind: UsageKind,
        address: Address,
        occurred_at_ms: int,
        *,
        channel: Channel = Channel.EMAIL,
        role: str | None = "usage",
        source_event_type: str | None = None,
        attributes: Mapping[str, Scalar | None] | None = None,
        tags: list[str] | None = None,
        campaign_id: str | None = None,
        list_id: str | None = None,
        sender: str | None = None,
        declared_purpose: str | None = None,
        controller: str | None = None,
        form_id: str | None = None,
        is_test: bool = False,
    ) -> UsageEvent:
        return UsageEvent(
            event_id=self.event_id(dedupe, role),
            occurred_at_ms=occurred_at_ms,
            received_at_ms=self.received_at_ms,
            source=self.source,
            processor=self.connector.name,
            channel=channel,
            kind=kind,
            subject_key=address.key,
            hint=address.hint,
            controller=controller or self.controller,
            campaign_id=campaign_id,
            list_id=list_id,
            sender=sending_domain(sender),
            tags=list(tags or []),
            declared_purpose=declared_purpose,
            source_event_type=source_event_type,
            form_id=form_id,
            is_test=is_test,
            attributes=clean_attributes(attributes),
        )

    def usages(
        self,
        dedupe: tuple[object, ...],
        kind: UsageKind,
        address: Address,
        occurred_at_ms: int,
        *,
        send_derived_from: str | None = None,
        attributes: Mapping[str, Scalar | None] | None = None,
        **usage: Any,
    ) -> list[UsageEvent]:
        """The usage of a platform event, preceded by the ``send`` it implies when
        ``send_derived_from`` names the vendor event (a delivery report of a send that was
        never reported: role ``send``, attribute ``derived_from``). ``usage`` takes the
        keyword arguments of :meth:`usage`."""
        out: list[UsageEvent] = []
        if send_derived_from is not None:
            derived = {**(attributes or {}), "derived_from": send_derived_from}
            out.append(
                self.usage(
                    dedupe,
                    UsageKind.SEND,
                    address,
                    occurred_at_ms,
                    role="send",
                    attributes=derived,
                    **usage,
                )
            )
        out.append(
            self.usage(dedupe, kind, address, occurred_at_ms, attributes=attributes, **usage)
        )
        return out

    def consent(
        self,
        dedupe: tuple[object, ...],
        action: ConsentAction,
        address: Address,
        occurred_at_ms: int,
        *,
        channels: Iterable[Channel] = (Channel.EMAIL,),
        role: str | None = "consent",
        purposes: list[str] | None = None,
        unmapped: list[str] | None = None,
        scope: str | None = None,
        proof: Proof | None = None,
        expires_at_ms: int | None = None,
        attributes: Mapping[str, Scalar | None] | None = None,
        controller: str | None = None,
        recipients: list[str] | None = None,
        collected_by: str | None = None,
        vendor_purposes: Iterable[str] | None = None,
        certificate_status: CertificateStatus | None = None,
    ) -> ConsentEvent:
        """``vendor_purposes``: the platform's purpose ids (a list id, a group...), mapped
        through the instance's ``purpose_map`` (:func:`map_purposes`) and added to
        ``purposes``, the ids it does not map to ``unmapped``. ``certificate_status``: a
        lead generator's grant whose ``proof.certificate_id`` is a lead certificate
        (TrustedForm, LeadiD) says ``claimed`` (R23)."""
        if vendor_purposes is not None:
            mapped, missing = map_purposes(self.connector, vendor_purposes)
            purposes = list(dict.fromkeys([*(purposes or []), *mapped]))
            unmapped = list(dict.fromkeys([*(unmapped or []), *missing]))
        return ConsentEvent(
            event_id=self.event_id(dedupe, role),
            occurred_at_ms=occurred_at_ms,
            received_at_ms=self.received_at_ms,
            source=self.source,
            processor=self.connector.name,
            subject_key=address.key,
            hint=address.hint,
            controller=controller or self.controller,
            action=action,
            purposes=list(purposes or []),
            channels=list(channels),
            scope=scope,
            recipients=list(recipients or []),
            collected_by=collected_by,
            proof=proof,
            expires_at_ms=expires_at_ms,
            unmapped_purposes=list(unmapped or []),
            attributes=clean_attributes(attributes),
            certificate_status=certificate_status,
        )

    def proven(
        self,
        dedupe: tuple[object, ...],
        action: ConsentAction,
        address: Address,
        occurred_at_ms: int,
        *,
        method: str,
        collection_point: str,
        vendor_receipt: str | None = None,
        ip_hash: str | None = None,
        notice_version: str | None = None,
        **consent: Any,
    ) -> ConsentEvent:
        """A consent whose proof was collected when it occurred (the usual case for a
        platform's report): ``Proof.collected_at_ms`` is the event time. ``consent`` takes
        the keyword arguments of :meth:`consent` (purposes, scope, attributes, role...)."""
        proof = Proof(
            method=method,
            collected_at_ms=occurred_at_ms,
            collection_point=collection_point,
            notice_version=notice_version,
            ip_hash=ip_hash,
            vendor_receipt=vendor_receipt,
        )
        return self.consent(dedupe, action, address, occurred_at_ms, proof=proof, **consent)

    def scoped(
        self,
        dedupe: tuple[object, ...],
        action: ConsentAction,
        address: Address,
        occurred_at_ms: int,
        *,
        scope: str | None,
        platform: str,
        kind: str = "list",
        **proven: Any,
    ) -> ConsentEvent:
        """A proven consent (see :meth:`proven`) scoped to one of the platform's lists or
        groups: purpose ``purpose_map[scope]`` (unmapped: ``unmapped_purposes``), collection
        point ``<platform>:<kind>:<scope>``. Without a scope it covers every purpose, at
        collection point ``<platform>``. ``proven`` takes ``method`` and the keyword
        arguments of :meth:`proven`."""
        return self.proven(
            dedupe,
            action,
            address,
            occurred_at_ms,
            vendor_purposes=[scope] if scope else [],
            scope=scope,
            collection_point=f"{platform}:{kind}:{scope}" if scope else platform,
            **proven,
        )
