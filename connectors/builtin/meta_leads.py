"""Meta (Facebook/Instagram) Lead Ads (connectors.md §3.1).

What is ingested is the **retrieved lead** (the Graph lead object), not the notification:

- ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`` is the subscription handshake,
  answered with the challenge as plain text when the verify token matches (a wrong token raises
  ``AuthenticationFailed``, answered 401).
- A leadgen **notification** (``object: page``, ``entry[].changes[]``) only announces a lead id:
  it carries no address, so nothing can be keyed, and it maps to **zero events**. The runtime
  (or the advertiser's own retriever) fetches ``GET /<leadgen_id>`` and posts the lead object,
  signed the same way; that is what becomes events.
- A **lead object** (``id``, ``created_time``, ``field_data``, ``custom_disclaimer_responses``),
  or a Graph page of them (``{"data": [lead, …]}``), per address found in ``field_data``
  (``email`` and ``phone_number``; see ``EMAIL_FIELDS`` / ``PHONE_FIELDS``):
    * one ``lead_delivered`` UsageEvent (controller = the instance's, the advertiser);
    * per checkbox: ticked -> ``grant``, unticked -> ``refuse``; purpose = ``purpose_map``
      [checkbox_key], unmapped keys go to ``unmapped_purposes``; ``scope`` = checkbox key;
      channels per ``consent_channels`` (``_leads.ChannelPolicy``).
  Proof: method ``checkbox``, collected at ``created_time``, collection point
  ``meta-lead-form:<form_id>``, notice version from the option ``form_notices`` [form_id]
  (the disclaimer text is not in the lead), vendor receipt = lead id; ``ad_id``, ``platform``,
  ``is_organic`` as attributes. Names and free-text answers are dropped.

Accepted in more than one form ([U]/[P] in connectors.md): ``is_checked`` as ``"1"``/``""``,
booleans, ``1``/``0`` or ``"true"``/``"false"``; ``created_time`` as ISO 8601 with ``+0000`` or
``Z``, or Unix seconds; a legacy ``X-Hub-Signature`` (SHA-1) only with option
``accept_legacy_sha1``. Field names are matched case-insensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import meta_signature, meta_subscription_challenge, verify_meta
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Proof,
    Scalar,
)

from ._leads import (
    LeadConnector,
    consent_answers,
    lead_events,
    lead_options,
    mapping_option,
    text_id,
)

EMAIL_FIELDS = frozenset({"email", "email_address", "work_email"})
PHONE_FIELDS = frozenset({"phone_number", "phone", "mobile_number", "work_phone_number"})


class MetaLeadAdsConnector(LeadConnector):
    name = "meta_lead_ads"
    title = "Meta (Facebook/Instagram) Lead Ads: retrieved leads with their consent checkboxes"
    produces = "usage+consent"
    auth = "X-Hub-Signature-256: sha256=HMAC-SHA256(app secret, raw body); hub.verify_token GET"
    events: ClassVar[tuple[str, ...]] = ("leadgen",)
    event_time: ClassVar[str] = 'the lead\'s "created_time"'
    config_schema = (
        *tk.rotating_secret("app_secret", "Meta app secret (signs every POST)"),
        tk.ConfigField("verify_token", "token typed into the subscription", True, secret=True),
        tk.option("accept_legacy_sha1", "yes/no", "accept X-Hub-Signature (SHA-1) alone", False),
        tk.option("form_notices", "mapping", "form id -> notice (disclaimer) version", {}),
        *lead_options("checkbox key"),
    )

    def configure(self, problems: list[str]) -> None:
        notices = mapping_option(self.instance, "form_notices", problems)
        self.notices = {k: str(v) for k, v in notices.items()}

    def handshake(self, request: tk.Request) -> tk.Response | None:
        if request.method != "GET" or request.param("hub.mode") is None:
            return None
        query = {k: v[0] for k, v in request.query.items() if v}
        challenge = meta_subscription_challenge(query, tk.secrets(self.instance, "verify_token"))
        return tk.Response(200, challenge.encode("utf-8"), "text/plain")

    def verify(self, request: tk.Request) -> None:
        verify_meta(
            tk.secrets(self.instance, "app_secret"),
            request.body,
            request.headers,
            accept_legacy_sha1=bool(self.instance.options.get("accept_legacy_sha1", False)),
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        data = tk.json_object(request.body, "Meta payload")
        received = tk.received_ms(request)
        if "object" in data or "entry" in data:
            _check_notification(data)
            return tk.Output()  # ids only: the retrieved lead object is what is ingested
        if isinstance(data.get("data"), list):
            lead = partial(self._lead, received=received)
            return tk.map_all(data["data"], lead, "data[] holds a non-object")
        if "field_data" in data:
            return self._lead(data, received)
        raise InvalidInput("unknown_event", "neither a leadgen notification nor a lead object")

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """A lead object per JSONL line (the Graph shape, as retrieved)."""
        return self._lead(dict(row), tk.Edge.now_ms())

    # -- the lead object -------------------------------------------------------------------

    def _lead(self, lead: dict[str, Any], received: int) -> tk.Output:
        lead_id = text_id(lead.get("id"), "id", required=True)
        if "created_time" not in lead:
            raise InvalidInput("missing_field", "created_time is missing")
        at = tt.epoch_or_iso_ms(lead["created_time"], "created_time", zone=None)
        form_id = text_id(lead.get("form_id"), "form_id")
        missing = "field_data has no email or phone_number value"
        addresses = self.addresses(lead.get("field_data"), "field_data", _answers, missing)
        boxes = consent_answers(
            lead.get("custom_disclaimer_responses"),
            "custom_disclaimer_responses",
            "checkbox_key",
            "checkbox_key",
            "is_checked",
        )
        attributes: dict[str, Scalar] = {"lead_id": lead_id or ""}
        for key in ("ad_id", "adset_id", "platform"):
            value = text_id(lead.get(key), key)
            if value:
                attributes[key] = value
        if isinstance(lead.get("is_organic"), bool):
            attributes["is_organic"] = lead["is_organic"]
        proof = Proof(
            method="checkbox",
            collected_at_ms=at,
            collection_point=f"meta-lead-form:{form_id}" if form_id else None,
            notice_version=self.notices.get(form_id) if form_id else None,
            vendor_receipt=lead_id,
        )
        return lead_events(
            tk.Emitter(self, received),
            lead_id,
            addresses,
            at,
            policy=self.channels,
            consents=boxes,
            proof=proof,
            attributes=attributes,
            campaign_id=text_id(lead.get("campaign_id"), "campaign_id"),
            form_id=form_id,
            source_event_type="lead",
        )


def _answers(item: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(kind, value)`` of an e-mail or phone answer of ``field_data``."""
    name = str(item.get("name", "")).strip().lower()
    kind = "email" if name in EMAIL_FIELDS else "phone" if name in PHONE_FIELDS else None
    if kind is None:
        return []
    values = item.get("values")
    if not isinstance(values, list):
        raise InvalidInput("malformed_json", "field_data[].values is not a list")
    return [(kind, value) for value in values]


def _check_notification(data: dict[str, Any]) -> None:
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise InvalidInput("missing_field", "entry is missing or not a list")
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise InvalidInput("missing_field", "entry[].changes is missing or not a list")
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise InvalidInput("missing_field", "entry[].changes[].value is missing")


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-Hub-Signature-256`` Meta would send for ``instance``."""
    signature = meta_signature(instance.secret("app_secret"), request.body)
    return request.with_headers({"x-hub-signature-256": signature})
