"""What the transfer connectors share (list rentals, CDP audience syncs, ad-platform audience
uploads): one ``list_transfer`` usage per address, named the same way by all of them.

A transfer names the **sender** (who passes the addresses on), the **recipient** (the
controller that will use them: the usage's ``controller``), the **purpose declared by the
recipient** (``declared_purpose``, through the instance's ``purpose_map``; unmapped: none,
the vendor word kept as the ``vendor_purpose`` attribute, so the registry decides and an
undeclared transfer is flagged) and the **file or audience** (``list_id``). Attributes:
``transfer_from``, ``transfer_to``, ``transfer`` (rental, sale, audience_sync,
audience_upload), ``source_category`` (the file's category: hr, payroll... for R19) and
whatever the platform adds. Names only, never an address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import verify_lead_post
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, Scalar, UsageEvent, UsageKind

MAX_NAME = 128
TRANSFER_KINDS = ("rental", "sale", "share", "audience_sync", "audience_upload")


@dataclass(frozen=True, slots=True)
class Transfer:
    """What one transfer says about every address it carries."""

    sender: str
    recipient: str
    vendor_purpose: str | None
    file_id: str
    kind: str = "rental"
    source_category: str | None = None
    campaign_id: str | None = None


def first(record: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` that ``record`` holds and is not blank."""
    for key in keys:
        value = record.get(key)
        if value is not None and value != "":
            return value
    return None


class SignedReports(tk.Connector):
    """A transfer report posted as JSON and signed like a lead post, or a file imported."""

    produces = "usage"
    auth = (
        'X-Consentinel-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>; '
        "files through consentinel import"
    )
    events: ClassVar[tuple[str, ...]]

    def verify(self, request: tk.Request) -> None:
        verify_lead_post(
            tk.secrets(self.instance, "signing_secret"),
            request.body,
            request.headers,
            now=request.received_at_ms / 1000 if request.received_at_ms else None,
        )


def name(value: Any, field: str, *, required: bool = False) -> str | None:
    """An organisation, file or audience name: text or a number, trimmed, at most
    ``MAX_NAME`` characters (``bad_value`` beyond); None when blank unless ``required``."""
    text = tk.ident(value, field, required=required)
    if text is not None and len(text) > MAX_NAME:
        raise InvalidInput("bad_value", f"{field} is longer than {MAX_NAME} characters")
    return text


def transfer_usage(
    connector: tk.Connector,
    emit: tk.Emitter,
    transfer: Transfer,
    dedupe: tuple[object, ...],
    address: tk.Address,
    occurred_at_ms: int,
    *,
    channel: Channel,
    source_event_type: str,
    attributes: Mapping[str, Scalar | None] | None = None,
) -> UsageEvent:
    """The ``list_transfer`` usage of one address in ``transfer``."""
    purpose = connector.purpose(transfer.vendor_purpose) if transfer.vendor_purpose else None
    return emit.at(dedupe, address, occurred_at_ms).usage(
        UsageKind.LIST_TRANSFER,
        channel=channel,
        controller=transfer.recipient,
        list_id=transfer.file_id,
        campaign_id=transfer.campaign_id,
        declared_purpose=purpose,
        source_event_type=source_event_type,
        attributes={
            "transfer_from": transfer.sender,
            "transfer_to": transfer.recipient,
            "transfer": transfer.kind,
            "source_category": transfer.source_category,
            "vendor_purpose": transfer.vendor_purpose if purpose is None else None,
            **(attributes or {}),
        },
    )
