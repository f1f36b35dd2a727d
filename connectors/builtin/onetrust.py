"""OneTrust Universal Consent & Preference Management: consent receipts and data-subject
profiles (connectors.md §4.2).

OneTrust has no fixed outbound webhook [U]: its workflows (or our poller) post either the
consent receipt of a collection-point transaction, or a data-subject profile. Both accepted:

* receipt: ``identifier``, ``identifierType``, ``additionalIdentifiers``, ``interactionDate``,
  ``test``, ``source{type, content}``, ``privacyNotices[]{Id, Version, MinorVersion}``,
  ``purposes[]{Id, Version, TransactionType, ExpiryDate, Preferences[]{TopicId,
  TransactionType}}``, a receipt id (``receiptId``/``id``) or the ``receipt`` JWT;
* profile [U]: ``Identifier`` and ``Purposes[]{Id, Status, LastTransactionDate |
  LastInteractionDate | ConsentDate, ...}``, alone or as ``{"content": [profile, ...]}``.

Authentication (``options['auth']``, ``_cmp_auth.verify``): ``bearer`` / ``header`` token set on the
OneTrust workflow, ``basic`` credentials, or ``token`` in the URL.

TransactionType / Status: CONFIRMED, IMPLICIT, EXTEND, ACTIVE, OPT_IN -> ``grant``;
WITHDRAWN, OPT_OUT, HARD_OPT_OUT, CANCEL -> ``withdraw``; EXPIRED -> ``expire`` (the record's
own action, not permitting); NOTGIVEN/NOT_GIVEN, NO_CHOICE, NO_CONSENT -> ``refuse``;
PENDING -> nothing (not confirmed yet); CHANGE_PREFERENCES -> only its topic ``Preferences``
(OPT_IN grant / OPT_OUT withdraw of ``TopicId``); anything else is ``unknown_event``. Topic
preferences of other purposes are mapped the same way. Purpose ``Id`` and ``TopicId`` go through
``purpose_map``; unmapped into ``unmapped_purposes``. ``ExpiryDate`` -> ``expires_at_ms`` of the
grant. ``test: true`` receipts produce nothing unless ``options['include_test']``.

Address: ``identifier`` by ``identifierType`` (Email / Phone...) or by shape; when it is a
customer id, the first e-mail/phone in ``additionalIdentifiers``. Proof: method
``cmp_receipt``, the receipt id (the receipt JWT is kept only as its SHA-256: it may carry the
identifier), ``source.content`` URL without its query, privacy-notice versions. A TC string
(``tcString``/``tc_string``/``euconsent-v2`` at the top or in ``customPayload`` [U]) adds
grant/refuse per TCF purpose. ``map_row`` imports a consent export row [U: identifier, purpose
id, status / transaction type, date, receipt id].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _cmp, _cmp_auth
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, Proof

_ACTIONS: dict[str, ConsentAction | None] = {
    "CONFIRMED": ConsentAction.GRANT,
    "IMPLICIT": ConsentAction.GRANT,
    "EXTEND": ConsentAction.GRANT,
    "ACTIVE": ConsentAction.GRANT,
    "OPT_IN": ConsentAction.GRANT,
    "WITHDRAWN": ConsentAction.WITHDRAW,
    "OPT_OUT": ConsentAction.WITHDRAW,
    "HARD_OPT_OUT": ConsentAction.WITHDRAW,
    "CANCEL": ConsentAction.WITHDRAW,
    "EXPIRED": ConsentAction.EXPIRE,
    "NOTGIVEN": ConsentAction.REFUSE,
    "NOT_GIVEN": ConsentAction.REFUSE,
    "NO_CHOICE": ConsentAction.REFUSE,
    "NO_CONSENT": ConsentAction.REFUSE,
    "PENDING": None,
    "CHANGE_PREFERENCES": None,
}
_TC_KEYS = ("tcString", "tc_string", "tcfString", "euconsent-v2", "euconsent")


def _action(value: Any, what: str) -> ConsentAction | None:
    key = str(value).strip().upper().replace("-", "_").replace(" ", "_") if value else ""
    if key not in _ACTIONS:
        raise InvalidInput("unknown_event", f"{what} is not a known OneTrust transaction type")
    return _ACTIONS[key]


class OneTrustConnector(tk.Connector):
    name = "onetrust"
    title = "OneTrust consent receipts and data-subject profiles, consent exports"
    produces = "consent"
    auth = "bearer/header token set on the OneTrust workflow, Basic credentials, or URL token"
    events: ClassVar[tuple[str, ...]] = ("receipt", "profile")
    event_time: ClassVar[str] = (
        '"interactionDate" of a receipt, "LastTransactionDate" of a profile purpose (ISO 8601)'
    )
    config_schema = (
        *_cmp_auth.auth_schema(
            "bearer", "bearer (default), header, basic or token", "bearer/header/URL token"
        ),
        tk.option("token_header", "text", "header of the bare token (auth header)"),
        tk.option("purpose_channels", "mapping", "purpose/topic id -> channel or list of channels"),
        tk.option("include_test", "yes/no", "map receipts marked test: true", False),
    )

    def verify(self, request: tk.Request) -> None:
        _cmp_auth.verify(self.instance, request, default="bearer")

    def map_request(self, request: tk.Request) -> tk.Output:
        data = tk.json_object(request.body)
        received = tk.received_ms(request)
        content = data.get("content")
        if isinstance(content, list):
            profile = partial(self._profile, received=received)
            return tk.map_all(content, profile, "content holds a non-object", code="missing_field")
        if "Purposes" in data:
            return self._profile(data, received)
        if "purposes" in data:
            return self._receipt(data, received)
        raise InvalidInput("unknown_event", "neither a consent receipt nor a profile")

    # -- subject ---------------------------------------------------------------------------

    def _subject(self, d: Mapping[str, Any]) -> tk.Address:
        raw = d.get("identifier", d.get("Identifier"))
        kind = u.text(d, "identifierType") or u.text(d, "IdentifierType")
        try:
            addr, _ = _cmp.address(
                self.edge, raw, region=self.instance.default_region, what="identifier", kind=kind
            )
            return addr
        except InvalidInput as exc:
            if exc.code != "no_address":
                raise
        extra = d.get("additionalIdentifiers")
        for other_kind, value in extra.items() if isinstance(extra, dict) else []:
            try:
                addr, _ = _cmp.address(
                    self.edge,
                    value,
                    region=self.instance.default_region,
                    what="additionalIdentifiers",
                    kind=str(other_kind),
                )
                return addr
            except InvalidInput:
                continue
        raise InvalidInput("no_address", "identifier is neither an e-mail address nor a phone")

    # -- receipts --------------------------------------------------------------------------

    def _receipt(self, d: dict[str, Any], received: int) -> tk.Output:
        if d.get("test") is True and not self.instance.options.get("include_test"):
            return tk.Output()
        addr = self._subject(d)
        stamp = u.text(d, "interactionDate")
        occurred = tt.iso_ms(stamp, "interactionDate") if stamp else received
        choices: list[_cmp.Choice] = []
        expiry: int | None = None
        notices = _notices(d.get("privacyNotices"))
        for item, purpose_id in _purposes(d.get("purposes"), "purposes"):
            action = _action(item.get("TransactionType"), "purposes[].TransactionType")
            if action is not None:
                choices.append(self._choice(purpose_id, action))
            if action is ConsentAction.GRANT and u.text(item, "ExpiryDate"):
                when = tt.iso_ms(item["ExpiryDate"], "purposes[].ExpiryDate")
                expiry = when if expiry is None else min(expiry, when)
            choices.extend(self._topics(item.get("Preferences")))
            notices.extend(_notices(item.get("PrivacyNotices")))
        source = d.get("source") if isinstance(d.get("source"), dict) else {}
        receipt = u.text(d, "receiptId") or u.text(d, "id") or u.text(d, "ReceiptId")
        jwt = u.text(d, "receipt")
        receipt_ref = u.bounded(receipt) if receipt else _cmp.digest(jwt) if jwt else None
        attrs: dict[str, Any] = {"kind": "receipt"}
        if isinstance(source, dict) and u.text(source, "type"):
            attrs["source_type"] = u.bounded(source["type"])
        if u.text(d, "language"):
            attrs["language"] = u.bounded(d["language"])
        proof = Proof(
            method="cmp_receipt",
            collected_at_ms=occurred,
            collection_point=_cmp.safe_label(source.get("content")) if source else None,
            notice_version=u.bounded(";".join(sorted(set(notices)))) if notices else None,
            vendor_receipt=receipt_ref,
            record_ref=receipt_ref,
        )
        dedupe: tuple[Any, ...] = (receipt_ref,)
        if receipt_ref is None:
            picked = sorted((c.vendor_id, c.action.value) for c in choices)
            dedupe = (addr.key, stamp, ",".join(f"{v}={a}" for v, a in picked))
        record = _cmp.Record(self, addr, occurred, received, self.instance.controller)
        out = tk.Output()
        for group in _cmp.resolve(self, choices):
            expires = expiry if group.action is ConsentAction.GRANT else None
            out.consent.extend(
                record.events([group], dedupe, proof=proof, attributes=attrs, expires_at_ms=expires)
            )
        tc_string = _tc_string(d)
        if tc_string:
            tcf, tcf_attrs = record.tcf(tc_string, dedupe, record_ref=receipt_ref)
            out.consent.extend(tcf)
            for event in out.consent:
                event.attributes.update(tcf_attrs)
        return out

    def _choice(self, vendor_id: str, action: ConsentAction) -> _cmp.Choice:
        return _cmp.Choice(vendor_id, action, _cmp.channels_for(self.instance, vendor_id))

    def _topics(self, preferences: Any) -> list[_cmp.Choice]:
        out: list[_cmp.Choice] = []
        for pref in preferences if isinstance(preferences, list) else []:
            if not isinstance(pref, dict):
                continue
            topic = u.text(pref, "TopicId")
            kind = (u.text(pref, "TransactionType") or "").upper()
            if topic and kind in ("OPT_IN", "OPT_OUT"):
                action = ConsentAction.GRANT if kind == "OPT_IN" else ConsentAction.WITHDRAW
                out.append(self._choice(topic, action))
        return out

    # -- profiles --------------------------------------------------------------------------

    def _profile(self, d: Mapping[str, Any], received: int) -> tk.Output:
        addr = self._subject(d)
        out = tk.Output()
        for item, purpose_id in _purposes(d.get("Purposes"), "Purposes"):
            action = _action(item.get("Status"), "Purposes[].Status")
            choices = [self._choice(purpose_id, action)] if action is not None else []
            choices.extend(self._topics(item.get("Topics") or item.get("Preferences")))
            stamp = next(
                (
                    u.text(item, k)
                    for k in ("LastTransactionDate", "LastInteractionDate", "ConsentDate")
                    if u.text(item, k)
                ),
                None,
            )
            occurred = tt.iso_ms(stamp, "Purposes[].LastTransactionDate") if stamp else received
            collection_point = u.text(item, "LastTransactionCollectionPointId")
            version = item.get("Version")
            proof = Proof(
                method="cmp_profile",
                collected_at_ms=occurred,
                collection_point=_cmp.safe_label(collection_point),
                notice_version=u.bounded(version) if "Version" in item else None,
            )
            record = _cmp.Record(self, addr, occurred, received, self.instance.controller)
            dedupe = ("profile", addr.key, purpose_id, item.get("Status"), stamp)
            groups = _cmp.resolve(self, choices)
            out.consent.extend(
                record.events(groups, dedupe, proof=proof, attributes={"kind": "profile"})
            )
        return out

    # -- file import -----------------------------------------------------------------------

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        raw = u.ci_get(row, "identifier", "email", "phone", "data_subject")
        kind = u.ci_get(row, "identifier_type")
        addr, _ = _cmp.address(
            self.edge,
            raw,
            region=self.instance.default_region,
            what="the identifier column",
            kind=str(kind) if isinstance(kind, str) else None,
        )
        purpose_id = u.ci_get(row, "purpose_id", "purpose_guid", "purpose")
        if not isinstance(purpose_id, str) or not purpose_id.strip():
            raise InvalidInput("missing_field", "the row has no purpose id column")
        state = u.ci_get(row, "transaction_type", "status", "consent_status")
        action = _action(state, "the row status")
        stamp = u.ci_get(row, "interaction_date", "last_transaction_date", "consent_date", "date")
        if stamp is None:
            raise InvalidInput("missing_field", "the row has no date column")
        occurred = tt.any_time_ms(stamp, "the row date")
        if action is None:
            return tk.Output()
        receipt = u.ci_get(row, "receipt_id", "receipt")
        proof = Proof(
            method="cmp_export",
            collected_at_ms=occurred,
            vendor_receipt=u.bounded(receipt) if isinstance(receipt, str) else None,
        )
        purpose = purpose_id.strip()
        record = _cmp.Record(self, addr, occurred, tk.received_ms(None), self.instance.controller)
        groups = _cmp.resolve(self, [self._choice(purpose, action)])
        dedupe = ("export", addr.key, purpose, action.value, occurred)
        attrs = {"import": "consent_export"}
        return tk.Output(consent=record.events(groups, dedupe, proof=proof, attributes=attrs))


def _purposes(value: Any, where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Each purpose object of ``where`` with its ``Id``; ``missing_field`` when it is not a
    list of objects with ids."""
    if not isinstance(value, list):
        raise InvalidInput("missing_field", f"{where} is not a list")
    for item in value:
        if not isinstance(item, dict):
            raise InvalidInput("missing_field", f"{where} holds a non-object")
        purpose_id = u.text(item, "Id", required=True, what=f"{where}[].Id")
        assert purpose_id is not None
        yield item, purpose_id


def _notices(value: Any) -> list[str]:
    out: list[str] = []
    for notice in value if isinstance(value, list) else []:
        if isinstance(notice, dict) and u.text(notice, "Id"):
            version = u.text(notice, "Version") or "?"
            minor = u.text(notice, "MinorVersion")
            out.append(f"{notice['Id']}:{version}" + (f".{minor}" if minor else ""))
    return out


def _tc_string(d: Mapping[str, Any]) -> str | None:
    custom = d.get("customPayload")
    for where in (d, custom if isinstance(custom, dict) else {}):
        for key in _TC_KEYS:
            value = where.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` authenticated as the OneTrust workflow would call this instance."""
    return _cmp_auth.sign(request, instance, default="bearer")
