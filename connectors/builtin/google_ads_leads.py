"""Google Ads lead form webhook (connectors.md §3.3).

Authentication: no signature; the body's ``google_key`` (the secret the advertiser typed into
the form's webhook settings) is compared in constant time with the ``google_key`` secret
(``google_key_previous`` too, while rotating). A body that is not a JSON object has no key and
fails authentication (401), it is not dead-lettered: nothing unauthenticated is taken in.

Mapping of one ``WebhookLead``, per address in ``user_column_data`` (``column_id`` ``EMAIL`` /
``WORK_EMAIL``, ``PHONE_NUMBER`` / ``WORK_PHONE``; names and other answers are dropped unread):

- one ``lead_delivered`` UsageEvent (controller = the instance's, the advertiser), form and
  campaign ids attached;
- one ``grant`` ConsentEvent: the form carries no consent field, so submitting it is the only
  consent there is — a **form-level, implicit** grant, flagged as weak proof
  (``Proof.method = "implicit_form"``, ``attributes.weak_proof``). Purpose =
  ``purpose_map[str(form_id)]``, else ``unmapped_purposes = [form_id]``; channels per
  ``consent_channels[form_id]`` (``_leads.ChannelPolicy``). Proof: collection point
  ``google-lead-form:<form_id>``, vendor receipt = ``lead_id``; campaign, ad group, creative,
  asset group and ``gcl_id`` as attributes.

[U] items: no submission timestamp exists in the schema, so ``occurred_at_ms`` is the receipt
time (ids do not depend on it); other ``column_id`` values than ``FULL_NAME`` are [P]; whether
custom consent questions arrive as extra rows is unknown, they are not interpreted. Ids
(``form_id``, ``campaign_id``…) are accepted as integers or strings. ``is_test: true`` leads give
no events unless the option ``ingest_test_leads`` is set (then usage is flagged ``is_test``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import verify_shared_token
from consentinel.streams.events.codec import dumps, loads
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Proof,
    Scalar,
)

from ._leads import LeadConnector, flag, lead_events, lead_options, text_id

EMAIL_COLUMNS = frozenset({"EMAIL", "WORK_EMAIL"})
PHONE_COLUMNS = frozenset({"PHONE_NUMBER", "WORK_PHONE"})
_ATTRIBUTES = (
    "campaign_id",
    "adgroup_id",
    "creative_id",
    "asset_group_id",
    "gcl_id",
    "api_version",
)


class GoogleAdsLeadsConnector(LeadConnector):
    name = "google_ads_leads"
    title = "Google Ads lead form webhook: leads with a form-level (implicit) consent"
    produces = "usage+consent"
    auth = "google_key body field compared in constant time (no signature)"
    events: ClassVar[tuple[str, ...]] = ("lead",)
    event_time: ClassVar[str] = "receive time (Google sends no submission time)"
    config_schema = (
        *tk.rotating_secret("google_key", "the key typed into the lead form webhook"),
        *lead_options("form id", "map is_test leads (flagged)"),
    )

    def verify(self, request: tk.Request) -> None:
        presented = None
        try:
            data = loads(request.body)
        except InvalidInput:
            data = None
        if isinstance(data, dict) and isinstance(data.get("google_key"), str):
            presented = data["google_key"]
        verify_shared_token(tk.secrets(self.instance, "google_key"), presented, name="google_key")

    def map_request(self, request: tk.Request) -> tk.Output:
        return self._lead(tk.json_object(request.body, "Google Ads lead"), tk.received_ms(request))

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """A ``WebhookLead`` object per JSONL line (``google_key`` not needed)."""
        return self._lead(dict(row), tk.Edge.now_ms())

    def _lead(self, lead: dict[str, Any], received: int) -> tk.Output:
        lead_id = text_id(lead.get("lead_id"), "lead_id", required=True)
        form_id = text_id(lead.get("form_id"), "form_id", required=True) or ""
        test = flag(lead.get("is_test"), "is_test")
        if self.skip_test(test):
            return tk.Output()
        rows, missing = (
            lead.get("user_column_data"),
            "user_column_data has no EMAIL or PHONE_NUMBER",
        )
        addresses = self.addresses(rows, "user_column_data", _column, missing)
        attributes: dict[str, Scalar] = {"lead_id": lead_id or ""}
        for key in _ATTRIBUTES:
            value = text_id(lead.get(key), key)
            if value:
                attributes[key] = value
        if test:
            attributes["is_test"] = True
        proof = Proof(
            method="implicit_form",
            collected_at_ms=received,
            collection_point=f"google-lead-form:{form_id}",
            vendor_receipt=lead_id,
        )
        return lead_events(
            tk.Emitter(self, received),
            lead_id,
            addresses,
            received,
            policy=self.channels,
            consents=[(form_id, True)],
            proof=proof,
            attributes=attributes,
            campaign_id=text_id(lead.get("campaign_id"), "campaign_id"),
            form_id=form_id,
            source_event_type="lead",
            is_test=test,
            consent_attributes={**attributes, "weak_proof": True},
            keyed_consents=False,
        )


def _column(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(kind, value)`` of an e-mail or phone column of ``user_column_data``."""
    column = row.get("column_id")
    column = column.strip().upper() if isinstance(column, str) else ""
    if column in EMAIL_COLUMNS or column in PHONE_COLUMNS:
        return [("email" if column in EMAIL_COLUMNS else "phone", row.get("string_value"))]
    return []


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the instance's ``google_key`` written into its JSON body (the body is
    re-serialized; a body that is not a JSON object is returned unchanged: it cannot carry a
    key)."""
    try:
        data = loads(request.body)
    except InvalidInput:
        return request
    if not isinstance(data, dict):
        return request
    data["google_key"] = instance.secret("google_key").decode("utf-8")
    return request.with_body(dumps(data))
