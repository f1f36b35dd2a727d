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
from typing import Any

from consentinel.connectors import toolkit as tk
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
