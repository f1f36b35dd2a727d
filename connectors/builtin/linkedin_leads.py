"""LinkedIn Lead Gen Forms through Lead Sync (connectors.md §3.2).

- ``GET ?challengeCode=<uuid>`` (endpoint validation, every 2 h) is answered 200
  ``application/json`` ``{"challengeCode", "challengeResponse": hex HMAC-SHA256(client secret,
  challengeCode)}``.
- POSTs are signed ``X-LI-Signature`` (hex HMAC-SHA256 of ``"hmacsha256=" + body``; the bare
  body is accepted too, [P], see ``auth.linkedin``).

Payloads:

- A bare **notification** (``type: LEAD_ACTION``, ``leadGenFormResponse`` = a URN) carries no
  address: **zero events**, for ``CREATED`` and ``DELETED`` alike. What is ingested is the lead
  form response (``GET /rest/leadFormResponses/<id>``), posted by the retriever either bare or
  embedded in the notification (``leadGenFormResponse`` = the response object), signed the
  same way.
- A **lead form response** (``CREATED``, or bare): per address found in
  ``formResponse.answers``: one ``lead_delivered`` UsageEvent, and per
  ``formResponse.consentResponses[]``: ``accepted`` -> ``grant``, otherwise ``refuse``;
  purpose = ``purpose_map[str(consentId)]``, unmapped ids go to ``unmapped_purposes``;
  ``scope`` = consent id. occurred at ``submittedAt``. Proof: method ``checkbox``, collection
  point and notice version = ``versionedLeadGenFormUrn`` (the form version carries the consent
  wording), vendor receipt = the response id.
- A response with ``leadAction: DELETED`` (on it, or on the notification that embeds it):
  one ``erase`` ConsentEvent per address (all purposes, all channels), at ``occurredAt`` (of
  the notification, or on the response; required: an erasure placed at submission time would
  race the grant it erases).
  DELETED is an erasure signal, not a withdrawal.

Answers carry only a ``questionId``: which question is the e-mail or phone comes from the form
definition [U]. Accepted both ways: a ``predefinedField`` on the answer (``EMAIL``,
``WORK_EMAIL``, ``PHONE_NUMBER``, ``WORK_PHONE``, ``MOBILE_PHONE_NUMBER``), copied there by the
retriever, or the option ``question_fields`` (questionId -> ``email`` | ``phone``). Other
answers (names, free text) are dropped unread. ``submitter`` (a member URN) is personal data and
is dropped. ``testLead: true`` leads give no events unless option ``ingest_test_leads`` is set
(then usage is flagged ``is_test`` and consent carries ``attributes.is_test``). ``consentId`` and
``questionId`` are accepted as integers or strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import (
    linkedin_challenge_reply,
    linkedin_signature,
    verify_linkedin,
)
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.codec import dumps
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    ConsentAction,
    Proof,
    Scalar,
)

from ._leads import (
    LeadConnector,
    consent_answers,
    flag,
    lead_events,
    lead_options,
    mapping_option,
    text_id,
)

EMAIL_FIELDS = frozenset({"EMAIL", "WORK_EMAIL"})
PHONE_FIELDS = frozenset({"PHONE_NUMBER", "WORK_PHONE", "WORK_PHONE_NUMBER", "MOBILE_PHONE_NUMBER"})
ACTIONS = frozenset({"CREATED", "DELETED"})


class LinkedInLeadGenConnector(LeadConnector):
    name = "linkedin_lead_gen"
    title = "LinkedIn Lead Gen Forms (Lead Sync): lead responses, consents and deletions"
    produces = "usage+consent"
    auth = "X-LI-Signature: hex HMAC-SHA256(client secret, 'hmacsha256=' + body); challengeCode"
    events: ClassVar[tuple[str, ...]] = ("CREATED", "DELETED")
    event_time: ClassVar[str] = '"submittedAt" of the form response; "occurredAt" of a deletion'
    config_schema = (
        *tk.rotating_secret("client_secret", "LinkedIn app client secret"),
        tk.option("question_fields", "mapping", "questionId -> email | phone", {}),
        *lead_options("consentId", "map testLead responses (flagged)"),
    )

    def configure(self, problems: list[str]) -> None:
        fields = mapping_option(self.instance, "question_fields", problems)
        self.question_fields = {k: str(v).strip().lower() for k, v in fields.items()}
        for question, kind in self.question_fields.items():
            if kind not in ("email", "phone"):
                problems.append(f"question_fields[{question!r}] must be 'email' or 'phone'")

    def handshake(self, request: tk.Request) -> tk.Response | None:
        code = request.param("challengeCode")
        if request.method != "GET" or not code:
            return None
        reply = linkedin_challenge_reply(self.instance.secret("client_secret"), code)
        return tk.Response(200, dumps(reply), "application/json")

    def verify(self, request: tk.Request) -> None:
        verify_linkedin(tk.secrets(self.instance, "client_secret"), request.body, request.headers)

    def map_request(self, request: tk.Request) -> tk.Output:
        return self._map(tk.json_object(request.body, "LinkedIn payload"), tk.received_ms(request))

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """A lead form response (or a notification embedding one) per JSONL line."""
        return self._map(dict(row), tk.Edge.now_ms())

    def _map(self, data: dict[str, Any], received: int) -> tk.Output:
        occurred: int | None = None
        action = data.get("leadAction")
        embedded = data.get("leadGenFormResponse")
        if "type" in data or isinstance(embedded, str):
            if data.get("type") != "LEAD_ACTION":
                raise InvalidInput("unknown_event", "type is not LEAD_ACTION")
            if action not in ACTIONS:
                raise InvalidInput("unknown_event", "leadAction is not CREATED or DELETED")
            if "occurredAt" in data:
                occurred = tt.epoch_or_iso_ms(data["occurredAt"], "occurredAt", zone=None)
            if isinstance(embedded, str):
                return tk.Output()  # ids only: nothing to key; the response is what is ingested
            if not isinstance(embedded, dict):
                raise InvalidInput("missing_field", "leadGenFormResponse is missing")
            response = embedded
        elif "formResponse" in data:
            response = data
        else:
            raise InvalidInput("unknown_event", "neither a lead notification nor a response")
        action = response.get("leadAction", action) or "CREATED"
        if action not in ACTIONS:
            raise InvalidInput("unknown_event", "leadAction is not CREATED or DELETED")
        return self._response(response, action, occurred, received)

    def _response(
        self, response: dict[str, Any], action: str, occurred: int | None, received: int
    ) -> tk.Output:
        lead_id = text_id(response.get("id"), "id", required=True)
        test = flag(response.get("testLead"), "testLead")
        if self.skip_test(test):
            return tk.Output()
        form = response.get("formResponse")
        if not isinstance(form, dict):
            raise InvalidInput("missing_field", "formResponse is missing or not an object")
        if occurred is None and "occurredAt" in response:
            occurred = tt.epoch_or_iso_ms(response["occurredAt"], "occurredAt", zone=None)
        missing = "no answer is an email or phone (set predefinedField or option question_fields)"
        answers = form.get("answers")
        addresses = self.addresses(answers, "formResponse.answers", self._answer, missing)
        form_urn = text_id(response.get("versionedLeadGenFormUrn"), "versionedLeadGenFormUrn")
        attributes: dict[str, Scalar] = {"lead_id": lead_id or ""}
        owner = response.get("owner")
        if isinstance(owner, dict):
            for key in ("sponsoredAccount", "organization"):
                value = text_id(owner.get(key), f"owner.{key}")
                if value:
                    attributes["owner"] = value
        lead_type = text_id(response.get("leadType"), "leadType")
        if lead_type:
            attributes["lead_type"] = lead_type
        if test:
            attributes["is_test"] = True
        emit = tk.Emitter(self, received)
        out = tk.Output()
        if action == "DELETED":
            if occurred is None:
                raise InvalidInput("missing_field", "occurredAt of the DELETED action is missing")
            for lead_address in addresses:
                out.consent.append(
                    emit.consent(
                        ("erase", lead_id, lead_address.address.key),
                        ConsentAction.ERASE,
                        lead_address.address,
                        occurred,
                        role=None,
                        channels=(),
                        proof=Proof(method="platform_deletion", vendor_receipt=lead_id),
                        attributes=attributes,
                    )
                )
            return out
        if "submittedAt" not in response:
            raise InvalidInput("missing_field", "submittedAt is missing")
        submitted = tt.epoch_or_iso_ms(response["submittedAt"], "submittedAt", zone=None)
        consents = consent_answers(
            form.get("consentResponses"),
            "formResponse.consentResponses",
            "consentId",
            "consentResponses[].consentId",
            "accepted",
        )
        campaign = _campaign(response.get("leadMetadata"))
        proof = Proof(
            method="checkbox",
            collected_at_ms=submitted,
            collection_point=form_urn,
            notice_version=form_urn,
            vendor_receipt=lead_id,
        )
        lead = lead_events(
            emit,
            lead_id,
            addresses,
            submitted,
            policy=self.channels,
            consents=consents,
            proof=proof,
            attributes=attributes,
            campaign_id=campaign,
            form_id=form_urn,
            source_event_type="lead_form_response",
            is_test=test,
        )
        out.extend(lead)
        return out

    def _answer(self, answer: dict[str, Any]) -> list[tuple[str, Any]]:
        """``(kind, text)`` of an e-mail or phone answer of ``formResponse.answers``."""
        kind = self._kind(answer)
        details = answer.get("answerDetails")
        text = details.get("textQuestionAnswer") if isinstance(details, dict) else None
        return [(kind, text.get("answer"))] if kind and isinstance(text, dict) else []

    def _kind(self, answer: dict[str, Any]) -> str | None:
        field = answer.get("predefinedField")
        if isinstance(field, str):
            upper = field.strip().upper()
            if upper in EMAIL_FIELDS:
                return "email"
            if upper in PHONE_FIELDS:
                return "phone"
        question = answer.get("questionId")
        if isinstance(question, str | int) and not isinstance(question, bool):
            kind = self.question_fields.get(str(question))
            if kind in ("email", "phone"):
                return kind
        return None


def _campaign(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return None
    sponsored = metadata.get("sponsoredLeadMetadata")
    if not isinstance(sponsored, dict):
        return None
    return text_id(sponsored.get("campaign"), "leadMetadata.sponsoredLeadMetadata.campaign")


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-LI-Signature`` LinkedIn would send for ``instance``."""
    signature = linkedin_signature(instance.secret("client_secret"), request.body)
    return request.with_headers({"x-li-signature": signature})
