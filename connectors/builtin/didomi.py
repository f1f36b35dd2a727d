"""Didomi webhooks: consent events and users (connectors.md §4.1).

Authentication: Didomi signs nothing. ``options['auth']`` chooses how the webhook proves itself
(see ``_cmp_auth.verify``): ``token`` (default, ``?token=`` in the URL), ``basic`` (credentials in
the URL, sent as ``Authorization: Basic``), ``bearer`` (a static token), ``header``, or
``oauth``: what Didomi documents, OAuth client credentials. Give Didomi ``client_id`` and
the secret ``client_secret`` and, as its token URL, ``/hooks/<instance>/token``
(``token_path``); Didomi POSTs ``grant_type=client_credentials`` there and gets a signed
access token living ``token_ttl`` seconds (no state kept, see
``connectors.auth.client_credentials``), then sends it as ``Authorization: Bearer`` on each
webhook, which is verified. Allowlist Didomi's egress IP too.

Types: ``event.created``/``event.updated`` (a consent event: ``parameters.entity`` or
``parameters.new_entity``), ``user.created``/``user.updated`` (the user with its current
``consents``), ``user.deleted`` -> one ConsentEvent ``erase``, ``event.deleted`` -> nothing;
others are ``unknown_event``. The "flatten" delivery mode (``a__b__c`` keys) is accepted too [P].

Mapping: address = ``user.organization_user_id``, an e-mail or a phone number by shape (a phone
in national form uses ``user.country`` as its region); a CRM id is ``no_address``. Each purpose
with ``enabled`` true is granted, false withdrawn; the preference values it selects (its
``values``, newsletter topics and the like, see ``preference_values``) are granted each as
``<purpose>/<preference>/<value>``, also when the purpose carries only ``values`` (then
counted in ``purposes_with_values_only``); ids go through ``purpose_map``, unmapped ones
into ``unmapped_purposes`` (a grant of unmapped values only grants nothing and raises
CFG-UNMAPPED where it is consulted: never "all purposes");
one ConsentEvent per (action, channels). A ``status`` other than ``confirmed`` (pending
approval [U]) drops the grants, keeps the withdrawals. ``consents.tcfcs`` (the TC string Didomi
can generate) adds grant/refuse events per TCF purpose (``tcf:<n>``, channel web).
``regulation`` is an attribute; ``options['regulations']`` (a list) ignores the others.
``organization_id`` -> controller through ``options['controllers']``. Vendor lists are kept as
bounded attributes. Time: ``updated_at`` for updates, else ``created_at``.

``map_row`` imports a consent export row [U: columns organization_user_id / email / phone,
purpose / purpose_id, enabled, updated_at / created_at, id, regulation, country].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _cmp, _cmp_auth
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, ConsentEvent, Proof

#: Preferences (and values of one preference) read per purpose, at most.
_MAX_PREFERENCES = 32
_TYPES = frozenset(
    {
        "event.created",
        "event.updated",
        "event.deleted",
        "user.created",
        "user.updated",
        "user.deleted",
    }
)


class DidomiConnector(tk.Connector):
    name = "didomi"
    title = "Didomi consent webhooks (events and users), TCF strings, consent exports"
    produces = "consent"
    auth = (
        "OAuth client credentials (auth oauth: our token endpoint issues short-lived signed "
        "bearer tokens), or a URL token (default), Basic credentials, a bearer/header token"
    )
    events: ClassVar[tuple[str, ...]] = tuple(sorted(_TYPES))
    event_time: ClassVar[str] = (
        'the event\'s "updated_at" / "created_at" (ISO 8601), else receive '
        "time; export rows: their date column"
    )
    config_schema = (
        *_cmp_auth.auth_schema(
            "token",
            "token (default), basic, bearer, header or oauth",
            "URL/bearer/header token (auth token|bearer|header)",
        ),
        *_cmp_auth.oauth_schema(),
        tk.option("token_param", "text", "query parameter of the URL token", "token"),
        tk.option(
            "purpose_channels", "mapping", "vendor purpose id -> channel or list of channels"
        ),
        tk.option("regulations", "list", "only these regulations (default: all)"),
        tk.option("controllers", "mapping", "organization_id -> controller"),
    )

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        tk.check_options(instance, _cmp_auth.oauth_problems(instance))

    def handshake(self, request: tk.Request) -> tk.Response | None:
        """With ``auth: oauth``, the token endpoint (``/hooks/<instance>/token``)."""
        return _cmp_auth.token_endpoint(self.instance, request)

    def verify(self, request: tk.Request) -> None:
        _cmp_auth.verify(self.instance, request)

    def map_request(self, request: tk.Request) -> tk.Output:
        data = tk.json_object(request.body)
        if any("__" in str(k) for k in data):
            data = _cmp.unflatten(data)
        kind = u.text(data, "type", required=True)
        if kind not in _TYPES:
            raise InvalidInput("unknown_event", "type is not a Didomi event or user webhook")
        if kind == "event.deleted":
            return tk.Output()
        params = _cmp.obj(data.get("parameters"))
        entity = _cmp.obj(params.get("new_entity") or params.get("entity"))
        if not entity:
            raise InvalidInput("missing_field", "parameters.entity / new_entity is missing")
        regulation = (u.text(data, "regulation") or u.text(entity, "regulation") or "gdpr").lower()
        wanted = self.instance.options.get("regulations")
        if isinstance(wanted, list) and wanted and regulation not in wanted:
            return tk.Output()
        user = _cmp.obj(entity.get("user")) if kind.startswith("event.") else entity
        region = _cmp.region_of(user.get("country"), self.instance.default_region)
        addr, _ = _cmp.address(
            self.edge,
            user.get("organization_user_id"),
            region=region,
            what="user.organization_user_id",
            kind=u.text(user, "organization_user_id_type"),
        )
        received = tk.received_ms(request)
        order: tuple[str, ...] = ("created_at", "updated_at")
        if not kind.endswith("created"):  # updated / deleted: the latest time of the entity
            order = ("deleted_at", "updated_at", "created_at")
        stamp_key = next((k for k in order if u.text(entity, k)), order[0])
        stamp = u.text(entity, stamp_key)
        occurred = tt.iso_ms(stamp, stamp_key) if stamp else received
        entity_id = u.text(entity, "id") or u.text(user, "id")
        dedupe = (entity_id, kind, stamp or u.text(entity, "version"))
        controller = u.controller_for(self, u.text(entity, "organization_id"))
        attrs: dict[str, Any] = {"regulation": u.bounded(regulation), "type": kind}
        if kind == "user.deleted":
            erase = tk.Emitter(self, received).consent(
                (*dedupe, "erase"),
                ConsentAction.ERASE,
                addr,
                occurred,
                role=None,
                channels=(),
                attributes=attrs,
                controller=controller,
            )
            return tk.Output(consent=[erase])
        consents = _cmp.obj(entity.get("consents"))
        status = (u.text(entity, "status") or "confirmed").lower()
        if status != "confirmed":
            attrs["status"] = u.bounded(status)
        choices, values_only = self._choices(
            consents.get("purposes"), pending=status != "confirmed"
        )
        if values_only:
            attrs["purposes_with_values_only"] = values_only
        vendors = _cmp.obj(consents.get("vendors"))
        for side in ("enabled", "disabled"):
            listed = vendors.get(side)
            if isinstance(listed, list):
                attrs[f"vendors_{side}"] = u.id_list(listed)
                attrs[f"vendors_{side}_count"] = len(listed)
        proof = Proof(
            method="cmp_event",
            collected_at_ms=occurred,
            collection_point=self._collection_point(entity, user),
            certificate_id=self._proof_id(entity),
            vendor_receipt=u.bounded(entity_id) if entity_id else None,
            record_ref=u.bounded(entity_id) if entity_id else None,
        )
        record = _cmp.Record(self, addr, occurred, received, controller)
        tc_string = u.text(consents, "tcfcs") or u.text(entity, "tcfcs")
        tcf: list[ConsentEvent] = []
        if tc_string:
            tcf, tcf_attrs = record.tcf(tc_string, dedupe, record_ref=proof.record_ref)
            attrs.update(tcf_attrs)
        groups = _cmp.resolve(self, choices)
        out = tk.Output(consent=record.events(groups, dedupe, proof=proof, attributes=attrs))
        out.consent.extend(tcf)
        return out

    def _choices(self, purposes: Any, *, pending: bool) -> tuple[list[_cmp.Choice], int]:
        choices: list[_cmp.Choice] = []
        values_only = 0
        for item in purposes if isinstance(purposes, list) else []:
            if not isinstance(item, dict):
                raise InvalidInput("missing_field", "consents.purposes holds a non-object")
            vendor_id = u.text(item, "id")
            if vendor_id is None:
                raise InvalidInput("missing_field", "a purpose in consents.purposes has no id")
            enabled = _cmp.enabled(item.get("enabled"))
            channels = _cmp.channels_for(self.instance, vendor_id)
            if enabled is None:
                values_only += 1
            elif not (enabled and pending):
                action = ConsentAction.GRANT if enabled else ConsentAction.WITHDRAW
                choices.append(_cmp.Choice(vendor_id, action, channels))
            if enabled is not False and not pending:  # a withdrawn purpose covers its values
                choices.extend(
                    _cmp.Choice(value_id, ConsentAction.GRANT, channels)
                    for value_id in preference_values(vendor_id, item.get("values"))
                )
        return choices, values_only

    @staticmethod
    def _collection_point(entity: Mapping[str, Any], user: Mapping[str, Any]) -> str | None:
        for meta in (_cmp.obj(entity.get("metadata")), _cmp.obj(user.get("metadata"))):
            for key in ("form", "collection_point", "source", "domain", "url"):
                label = _cmp.safe_label(meta.get(key))
                if label:
                    return label
        return _cmp.safe_label(_cmp.obj(entity.get("source")).get("domain"))

    @staticmethod
    def _proof_id(entity: Mapping[str, Any]) -> str | None:
        proofs = entity.get("proofs")
        if isinstance(proofs, list) and proofs:
            first = proofs[0]
            value = first.get("id") if isinstance(first, dict) else first
            return u.bounded(value) if isinstance(value, str) and value else None
        proof_id = entity.get("proof_id")
        return u.bounded(proof_id) if isinstance(proof_id, str) and proof_id else None

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        raw = u.ci_get(row, "organization_user_id", "email", "phone", "user")
        region = _cmp.region_of(u.ci_get(row, "country"), self.instance.default_region)
        addr, _ = _cmp.address(self.edge, raw, region=region, what="the user column")
        vendor_id = u.ci_get(row, "purpose_id", "purpose")
        if not isinstance(vendor_id, str | int) or not str(vendor_id).strip():
            raise InvalidInput("missing_field", "the row has no purpose column")
        enabled = _cmp.enabled(u.ci_get(row, "enabled", "status", "consent", "value"))
        if enabled is None:
            raise InvalidInput("missing_field", "the row has no enabled/status column")
        stamp = u.ci_get(row, "updated_at", "created_at", "date", "timestamp")
        if stamp is None:
            raise InvalidInput("missing_field", "the row has no date column")
        occurred = tt.any_time_ms(stamp, "the row date")
        vendor = str(vendor_id).strip()
        action = ConsentAction.GRANT if enabled else ConsentAction.WITHDRAW
        groups = _cmp.resolve(
            self, [_cmp.Choice(vendor, action, _cmp.channels_for(self.instance, vendor))]
        )
        regulation = u.ci_get(row, "regulation")
        attrs: dict[str, Any] = {"import": "consent_export"}
        if isinstance(regulation, str):
            attrs["regulation"] = u.bounded(regulation.lower())
        row_id = u.ci_get(row, "event_id", "id")
        receipt = u.bounded(row_id) if isinstance(row_id, str) else None
        controller = u.controller_for(self, u.ci_get(row, "organization_id"))
        record = _cmp.Record(self, addr, occurred, tk.received_ms(None), controller)
        proof = Proof(
            method="cmp_export",
            collected_at_ms=occurred,
            vendor_receipt=receipt,
            record_ref=receipt,
        )
        dedupe = ("export", row_id, addr.key, vendor, occurred)
        return tk.Output(consent=record.events(groups, dedupe, proof=proof, attributes=attrs))


def preference_values(purpose_id: str, values: Any) -> list[str]:
    """The preference values a purpose's ``values`` selects, each as the vendor id
    ``<purpose>/<preference>/<value>`` (what ``purpose_map`` maps; unmapped ones fail
    closed). Shapes [P]: ``{"<preference>": {"value": "a,b"}}`` (Didomi's API v2: a
    preference holds one or several value ids), ``{"<preference>": {"enabled": true}}``,
    ``{"<preference>": "a"}`` or a list of ``{"id": "<preference>", "value": ...}``."""
    if isinstance(values, list):
        pairs = [(v.get("id"), v) for v in values if isinstance(v, dict)]
    elif isinstance(values, dict):
        pairs = list(values.items())
    else:
        return []
    out: list[str] = []
    for preference, choice in pairs[:_MAX_PREFERENCES]:
        if not isinstance(preference, str | int) or not str(preference).strip():
            continue
        base = f"{purpose_id}/{str(preference).strip()}"
        if isinstance(choice, dict) and "value" not in choice:
            if _cmp.enabled(choice.get("enabled")):
                out.append(u.bounded(base))
            continue
        chosen = choice.get("value") if isinstance(choice, dict) else choice
        if isinstance(chosen, list):
            items: list[Any] = chosen
        elif isinstance(chosen, str | int) and not isinstance(chosen, bool):
            items = str(chosen).split(",")
        else:
            continue
        for value in items[:_MAX_PREFERENCES]:
            if isinstance(value, str | int) and str(value).strip():
                out.append(u.bounded(f"{base}/{str(value).strip()}"))
    return list(dict.fromkeys(out))


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` authenticated as Didomi would call this instance (per ``options['auth']``)."""
    return _cmp_auth.sign(request, instance)
