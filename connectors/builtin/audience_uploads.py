"""Ad-platform audience upload reports: a customer list uploaded to a Meta Custom Audience or
a Google Customer Match list is a list transfer of every address on it to the platform.

What is imported is the **customer file as it was uploaded**, one address per record, with
the upload's identity: the platform receives SHA-256 hashes of normalized addresses
[Meta: Custom Audience API, "Hashing and Normalizing Data"; Google: Customer Match,
"prepare data"], which cannot be turned back into a person here, so a record holding only
a hash is dead-lettered (``hashed_address``) with what to do. Columns:

- Meta (``meta_custom_audience_upload``): Meta's customer-list identifiers ``email``,
  ``phone`` (also the API schema names ``EMAIL``, ``PHONE``); the other identifiers (names,
  zip, dob...) are left unread;
- Google (``google_customer_match_upload``): the Customer Match file template's ``Email``,
  ``Phone``; ``First Name``, ``Last Name``, ``Country``, ``Zip`` are left unread;
- both: ``audience_id`` (Meta's custom audience id; Google's ``user_list_id``), else the
  ``audience_id`` option; ``uploaded_at`` (ISO 8601 or Unix time), else the ``uploaded_at``
  option (one file, one upload); ``audience_name`` kept as an attribute.

Files go through ``consentinel import FILE --connector NAME`` (CSV or JSONL, resumable, bad
lines dead-lettered); an uploading tool may instead post the report as JSON
(``{"audience_id", "uploaded_at", "rows": [...]}``) signed with consentinel's own inbound
contract ``X-Consentinel-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>``.

Each address is one ``list_transfer`` usage (``_transfers``): sender the instance's
controller (the advertiser), recipient the ``recipient`` option (default the platform),
file the audience id, purpose word the ``purpose`` option (default ``custom_audience``)
through ``purpose_map``, kind ``audience_upload``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import lead_post_signature
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel

from ._transfers import SignedReports, Transfer, first, name, transfer_usage

_HASH = re.compile(r"[0-9a-fA-F]{64}")


class _UploadReport(SignedReports):
    """What both platforms' reports share; subclasses name the platform and its columns."""

    events: ClassVar[tuple[str, ...]] = ("audience_upload",)
    event_time: ClassVar[str] = '"uploaded_at" of the record, else the uploaded_at option'
    #: the platform as the default recipient
    platform: ClassVar[str]
    email_keys: ClassVar[tuple[str, ...]]
    phone_keys: ClassVar[tuple[str, ...]]
    id_keys: ClassVar[tuple[str, ...]] = ("audience_id",)

    def map_request(self, request: tk.Request) -> tk.Output:
        report = tk.json_object(request.body, "the upload report")
        common = {k: v for k, v in report.items() if k != "rows"}
        emit = tk.Emitter(self, tk.received_ms(request))
        return tk.map_batch(
            report.get("rows"),
            "rows",
            lambda i, row: self._record({**common, **row}, emit, f"rows[{i}]"),
        )

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """One record of the uploaded customer file (CSV columns or a JSONL object)."""
        rec = {str(k).strip(): v for k, v in row.items() if k is not None}
        return self._record(rec, tk.Emitter(self, tk.Edge.now_ms()), "the record")

    def _record(self, rec: Mapping[str, Any], emit: tk.Emitter, where: str) -> tk.Output:
        options = self.instance.options
        audience = name(
            first(rec, *self.id_keys) or options.get("audience_id"),
            f"{where}.audience_id",
            required=True,
        )
        assert audience is not None
        uploaded = first(rec, "uploaded_at") or options.get("uploaded_at")
        occurred = tt.epoch_or_iso_ms(uploaded, f"{where}.uploaded_at")
        recipient = name(options.get("recipient") or self.platform, "the recipient option")
        assert recipient is not None
        transfer = Transfer(
            sender=self.instance.controller,
            recipient=recipient,
            vendor_purpose=str(options.get("purpose") or "custom_audience"),
            file_id=audience,
            kind="audience_upload",
        )
        out = tk.Output()
        for address, channel in self._addresses(rec, where):
            out.usage.append(
                transfer_usage(
                    self,
                    emit,
                    transfer,
                    (audience, occurred, address.key, channel),
                    address,
                    occurred,
                    channel=channel,
                    source_event_type="audience_upload",
                    attributes={"audience_name": tk.short_text(first(rec, "audience_name"))},
                )
            )
        return out

    def _addresses(self, rec: Mapping[str, Any], where: str) -> list[tuple[tk.Address, Channel]]:
        email, phone = first(rec, *self.email_keys), first(rec, *self.phone_keys)
        if email is None and phone is None:
            raise InvalidInput("missing_field", f"{where} has no e-mail and no phone column value")
        out: list[tuple[tk.Address, Channel]] = []
        for value, channel in ((email, Channel.EMAIL), (phone, Channel.SMS)):
            if value is None:
                continue
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise InvalidInput("bad_value", f"{where}: an address cell is not text")
            text = str(value).strip()
            if _HASH.fullmatch(text):
                raise InvalidInput(
                    "hashed_address",
                    f"{where} holds a SHA-256 hash, not an address: import the customer "
                    f"file as it was before hashing",
                )
            kind = "email" if channel is Channel.EMAIL else "phone"
            out.append((self.edge.address(text, kind), channel))
        return out


_SCHEMA = (
    *tk.rotating_secret("signing_secret", "the secret an uploading tool signs reports with"),
    tk.option("audience_id", "text", "the audience when the file has no audience_id column"),
    tk.option("uploaded_at", "text", "when the file was uploaded, if it has no such column"),
    tk.option("recipient", "text", "who receives the addresses (default: the platform)"),
    tk.option("purpose", "text", "the purpose word, through purpose_map", "custom_audience"),
)


class MetaCustomAudienceUpload(_UploadReport):
    name = "meta_custom_audience_upload"
    title = "Meta Custom Audience uploads (customer file as uploaded): list transfers to Meta"
    platform = "meta-platforms-ireland"
    email_keys = ("email", "EMAIL", "Email")
    phone_keys = ("phone", "PHONE", "Phone")
    config_schema = _SCHEMA


class GoogleCustomerMatchUpload(_UploadReport):
    name = "google_customer_match_upload"
    title = "Google Customer Match uploads (customer file as uploaded): list transfers to Google"
    platform = "google-ireland"
    email_keys = ("Email", "email")
    phone_keys = ("Phone", "phone")
    id_keys = ("user_list_id", "audience_id")
    config_schema = _SCHEMA


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-Consentinel-Signature`` an uploading tool would add."""
    at = request.received_at_ms // 1000 if request.received_at_ms else int(time.time())
    header = lead_post_signature(instance.secret("signing_secret"), request.body, at)
    return request.with_headers({"x-consentinel-signature": header})
