"""List-rental manifests: who sent which addresses to whom, when, for what.

A broker (or any holder of a file) reports each rental, sale or share of addresses as a
manifest. Two ways in, one mapping:

- **files** (``consentinel import manifest.csv --connector NAME``): CSV with a header row,
  or JSONL, one address per record; resumable, bad records dead-lettered with their line;
- **webhook**: a JSON manifest posted by the sender, ``{"transfer_id", "sender",
  "recipient", "purpose", "file", "sent_at", ..., "rows": [{"email": ...}, ...]}`` (a row's
  own fields win over the manifest's), signed with consentinel's own inbound contract
  ``X-Consentinel-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>``
  (``signing_secret``, ``signing_secret_previous`` while rotating; ``t`` within 300 s).

Fields (lowercase names; the instance options ``sender``, ``recipient``, ``purpose`` fill
the ones a manifest leaves out):

============  ===============================================================================
sender        who passes the addresses on (the broker); required
recipient     who receives and will use them (the controller of the use); required
purpose       what the recipient declared it will use them for, through ``purpose_map``
              (unmapped: no declared purpose, the word kept as ``vendor_purpose``)
file          the file or list rented (``file_id``, ``list``): the use's ``list_id``; required
sent_at       when the addresses were handed over: ISO 8601 (UTC when no zone) or Unix time
email, phone  the address (one at least; both give one transfer each)
channel       the channel the phone number is rented for: sms (default) or phone
kind          rental (default), sale or share
category      the file's category as the sender states it (hr, payroll, administrative,
              subscribers...), for R19
campaign      the recipient's campaign the rental is for
transfer_id   the manifest's own reference (order number)
============  ===============================================================================

Each address gives one ``list_transfer`` usage (``_transfers``): controller = recipient,
``declared_purpose`` = the mapped purpose, attributes ``transfer_from`` = sender,
``transfer_to``, ``transfer`` = kind, ``source_category``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import lead_post_signature
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel

from ._transfers import SignedReports, Transfer, first, name, transfer_usage

_FILE_KEYS = ("file", "file_id", "list", "list_id")
_TIME_KEYS = ("sent_at", "transferred_at", "date")
_CATEGORY_KEYS = ("category", "source_category")
_PHONE_CHANNELS = {"sms": Channel.SMS, "phone": Channel.PHONE}
_KINDS = ("rental", "sale", "share")


class RentalManifestConnector(SignedReports):
    name = "rental_manifest"
    title = "List-rental manifests (CSV/JSONL files, signed JSON posts): list transfers"
    events: ClassVar[tuple[str, ...]] = _KINDS
    event_time: ClassVar[str] = '"sent_at" of the record (else of the manifest)'
    config_schema = (
        *tk.rotating_secret("signing_secret", "the secret the sender signs manifests with"),
        tk.option("sender", "text", "the sender when a manifest names none (the broker)"),
        tk.option("recipient", "text", "the recipient when a manifest names none"),
        tk.option("purpose", "text", "the purpose word when a manifest states none"),
    )

    def map_request(self, request: tk.Request) -> tk.Output:
        """A manifest: its own fields, then each of its ``rows`` mapped alone."""
        manifest = tk.json_object(request.body, "the manifest")
        rows = manifest.get("rows")
        common = {k.lower(): v for k, v in manifest.items() if k != "rows"}
        emit = tk.Emitter(self, tk.received_ms(request))
        return tk.map_batch(
            rows,
            "rows",
            lambda i, row: self._record({**common, **_lower(row)}, emit, f"rows[{i}]"),
        )

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """One record of a manifest file (CSV columns or a JSONL object)."""
        return self._record(_lower(row), tk.Emitter(self, tk.Edge.now_ms()), "the record")

    def _record(self, rec: Mapping[str, Any], emit: tk.Emitter, where: str) -> tk.Output:
        options = self.instance.options
        sender = name(
            first(rec, "sender") or options.get("sender"), f"{where}.sender", required=True
        )
        recipient = name(
            first(rec, "recipient") or options.get("recipient"), f"{where}.recipient", required=True
        )
        file_id = name(first(rec, *_FILE_KEYS), f"{where}.file", required=True)
        assert sender is not None and recipient is not None and file_id is not None
        kind = (tk.short_text(first(rec, "kind")) or "rental").lower()
        if kind not in _KINDS:
            raise InvalidInput("bad_value", f"{where}.kind is not one of {', '.join(_KINDS)}")
        category = tk.short_text(first(rec, *_CATEGORY_KEYS))
        transfer = Transfer(
            sender=sender,
            recipient=recipient,
            vendor_purpose=name(
                first(rec, "purpose") or options.get("purpose"), f"{where}.purpose"
            ),
            file_id=file_id,
            kind=kind,
            source_category=category.lower() if category else None,
            campaign_id=name(first(rec, "campaign"), f"{where}.campaign"),
        )
        sent_at = tt.epoch_or_iso_ms(first(rec, *_TIME_KEYS), f"{where}.sent_at")
        reference = name(first(rec, "transfer_id"), f"{where}.transfer_id")
        addresses = self._addresses(rec, where)
        out = tk.Output()
        for address, channel in addresses:
            dedupe = (reference or "", sender, recipient, file_id, sent_at, address.key, channel)
            out.usage.append(
                transfer_usage(
                    self,
                    emit,
                    transfer,
                    dedupe,
                    address,
                    sent_at,
                    channel=channel,
                    source_event_type=kind,
                    attributes={"transfer_id": reference},
                )
            )
        return out

    def _addresses(self, rec: Mapping[str, Any], where: str) -> list[tuple[tk.Address, Channel]]:
        email, phone = first(rec, "email"), first(rec, "phone")
        if email is None and phone is None:
            raise InvalidInput("missing_field", f"{where} has no email and no phone")
        out: list[tuple[tk.Address, Channel]] = []
        if email is not None:
            if not isinstance(email, str):
                raise InvalidInput("bad_email", f"{where}.email is not text")
            out.append((self.edge.address(email, "email"), Channel.EMAIL))
        if phone is not None:
            if not isinstance(phone, str | int) or isinstance(phone, bool):
                raise InvalidInput("bad_phone", f"{where}.phone is not text")
            wanted = (tk.short_text(first(rec, "channel")) or "sms").lower()
            channel = _PHONE_CHANNELS.get(wanted)
            if channel is None:
                raise InvalidInput("bad_value", f"{where}.channel is not sms or phone")
            out.append((self.edge.address(str(phone), "phone"), channel))
        return out


def _lower(row: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).strip().lower(): v for k, v in row.items() if k is not None}


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-Consentinel-Signature`` a sender would add for ``instance``,
    timed at the request's receipt time when it has one (else now)."""
    at = request.received_at_ms // 1000 if request.received_at_ms else int(time.time())
    header = lead_post_signature(instance.secret("signing_secret"), request.body, at)
    return request.with_headers({"x-consentinel-signature": header})
