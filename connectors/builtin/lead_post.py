"""Generic lead delivery / co-registration posts and lead batch files (connectors.md §3.4).

Transport: our own inbound contract — one lead per POST, JSON (an HTTP form body is accepted
too), signed ``X-Consentinel-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>``
with the ``signing_secret`` (``signing_secret_previous`` too, while rotating); ``t`` must lie
within ``tolerance_s`` (default 300) of the receipt time. ``Idempotency-Key`` is the dedupe key
when the lead has no ``lead_id``. Lead batch files (CSV columns or JSONL objects) go through
``map_row`` with the same fields.

Fields (first key present wins, case-insensitive; option ``field_map`` {canonical: key or
[keys]} puts a vendor's own keys first):

=================  ===========================================================================
email / phone      ``email`` ``email_address`` / ``phone`` ``phone_1`` ``mobile`` ``cell``
optin_time         ``optin_time`` ``opt_in_date`` ``timestamp`` ``signup_date``
                   ``date_subscribed``; required, ISO 8601 with a zone or Unix s/ms
partners           ``partners`` ``partner_list`` ``sponsors`` ``brands``: names (or objects with
                   ``id``/``name``); option ``controller_aliases`` {name: controller id}
purposes           ``purposes``: vendor purposes, each through ``purpose_map``; without them the
                   first of ``list_id``, ``campaign_id``, ``vendor_id`` that ``purpose_map`` knows
channels           ``channels`` (email, sms, phone…); without them ``consent_channels`` / the
                   address's own channel (``_leads.ChannelPolicy``)
vendor             ``vendor`` ``vendor_name``: who collected the lead (through
                   ``controller_aliases``; else the instance's controller)
buyers             ``buyers`` ``buyer`` ``sold_to``; ``delivered_at`` ``sold_at`` (when)
proof              ``ip`` ``ip_address`` ``optin_ip`` (hashed); ``user_agent`` ``ua``;
                   ``source_url`` ``url`` ``landing_page`` ``signup_url`` ``optin_url`` (query
                   values that may hold an address removed); ``consent_text`` ``tcpa_text``
                   ``disclosure`` ``optin_language`` (hashed); ``notice_version``
                   ``consent_text_version``; ``doi`` ``confirmed``, ``confirmation_time``,
                   ``confirmation_ip``; ``trustedform_cert_url`` ``xxTrustedFormCertUrl``,
                   ``leadid_token`` ``universal_leadid``
ids                ``lead_id``; ``vendor_id`` ``affiliate_id`` ``pub_id`` ``sub_id``
                   ``campaign_id`` ``list_id`` (attributes); ``is_test`` ``test``
=================  ===========================================================================

List fields may be JSON arrays, repeated form keys, or (CSV) a JSON array text or values
separated by ``|`` or ``;`` (purposes, channels also by ``,``). Names, free text: dropped.

Events, per address (e-mail and phone each keyed on their own):

- one ``grant`` ConsentEvent per named partner (controller = that partner; ``recipients`` = the
  whole partner list; ``collected_by`` = the vendor when it is not the partner), or, with no
  partner list, one for the vendor itself. Proof: method ``double_opt_in`` when confirmed, else
  ``web_form``; ``certificate_id`` = the TrustedForm certificate URL, else the LeadiD token
  (both kept in attributes when both are given), and ``certificate_status`` ``claimed``
  when there is one: ``consentinel certificates verify`` turns it into a verification
  result (R23).
- one ``lead_delivered`` UsageEvent per buyer (controller = the buyer), at ``delivered_at``,
  else the receipt time of the post (for file rows: ``optin_time``).

``is_test`` leads give no events unless the option ``ingest_test_leads`` is set.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import lead_post_signature, verify_lead_post
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    CertificateStatus,
    ConsentAction,
    Proof,
    Scalar,
    UsageKind,
)

from ._leads import (
    MAX_CELL,
    LeadAddress,
    LeadConnector,
    cell_keys,
    cell_names,
    cell_text,
    flag,
    lead_options,
    mapping_option,
    parse_channels,
    safe_url,
    sha256_hex,
)

FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_address"),
    "phone": ("phone", "phone_1", "mobile", "cell"),
    "optin_time": ("optin_time", "opt_in_date", "timestamp", "signup_date", "date_subscribed"),
    "ip": ("ip", "ip_address", "optin_ip"),
    "user_agent": ("user_agent", "ua"),
    "source_url": ("source_url", "url", "landing_page", "signup_url", "optin_url"),
    "consent_text": ("consent_text", "tcpa_text", "disclosure", "optin_language"),
    "notice_version": ("notice_version", "consent_text_version"),
    "partners": ("partners", "partner_list", "sponsors", "brands"),
    "purposes": ("purposes",),
    "channels": ("channels",),
    "doi": ("doi", "confirmed"),
    "confirmation_time": ("confirmation_time",),
    "confirmation_ip": ("confirmation_ip",),
    "trustedform": ("trustedform_cert_url", "xxtrustedformcerturl"),
    "leadid": ("leadid_token", "universal_leadid"),
    "vendor": ("vendor", "vendor_name"),
    "buyers": ("buyers", "buyer", "sold_to"),
    "delivered_at": ("delivered_at", "sold_at"),
    "lead_id": ("lead_id",),
    "is_test": ("is_test", "test"),
}
ID_FIELDS = ("vendor_id", "affiliate_id", "pub_id", "sub_id", "campaign_id", "list_id")
PURPOSE_FALLBACK = ("list_id", "campaign_id", "vendor_id")


class LeadPostConnector(LeadConnector):
    name = "lead_post"
    title = "Signed lead / co-registration posts and lead batch files (one consent per partner)"
    produces = "usage+consent"
    auth = "X-Consentinel-Signature: t=<unix>,v1=hex HMAC-SHA256(secret, t + '.' + body)"
    events: ClassVar[tuple[str, ...]] = ("lead",)
    event_time: ClassVar[str] = 'consent: "optin_time"; use: "delivered_at", else receive time'
    config_schema = (
        *tk.rotating_secret("signing_secret", "secret shared with the lead vendor"),
        tk.option("tolerance_s", "number", "accepted age of the signed timestamp (s)", 300),
        tk.option("field_map", "mapping", "canonical field -> the vendor's key(s)", {}),
        tk.option("controller_aliases", "mapping", "partner / buyer name -> controller id", {}),
        *lead_options("vendor purpose", "map is_test leads"),
    )

    def configure(self, problems: list[str]) -> None:
        aliases = mapping_option(self.instance, "controller_aliases", problems)
        self.aliases = {k.strip().lower(): str(v) for k, v in aliases.items()}
        custom = mapping_option(self.instance, "field_map", problems)
        self.fields = dict(FIELDS)
        for name, keys in custom.items():
            listed = [keys] if isinstance(keys, str) else keys
            if name not in FIELDS or not isinstance(listed, list | tuple):
                problems.append(f"field_map[{name!r}]: a known field mapped to a key or keys")
                continue
            self.fields[name] = tuple(str(k).lower() for k in listed) + FIELDS[name]
        tolerance = self.instance.options.get("tolerance_s", 300)
        self.tolerance: float | None = None
        if isinstance(tolerance, int | float) and not isinstance(tolerance, bool) and tolerance > 0:
            self.tolerance = float(tolerance)
        elif tolerance is not None:
            problems.append("tolerance_s must be a positive number of seconds (or null)")

    def verify(self, request: tk.Request) -> None:
        verify_lead_post(
            tk.secrets(self.instance, "signing_secret"),
            request.body,
            request.headers,
            tolerance=self.tolerance,
            now=request.received_at_ms / 1000 if request.received_at_ms else None,
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        ctype = (request.header("content-type") or "").lower()
        if "x-www-form-urlencoded" in ctype:
            lead: dict[str, Any] = {
                k.removesuffix("[]"): v[0] if len(v) == 1 else v for k, v in request.form().items()
            }
        else:
            lead = tk.json_object(request.body, "lead post")
        received = tk.received_ms(request)
        return self._lead(lead, received, request.header("idempotency-key"))

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """One lead of a batch file (CSV columns or a JSONL object), the fields above."""
        lead = {str(k): v for k, v in row.items() if v is not None and v != ""}
        return self._lead(lead, None, None)

    # -- one lead --------------------------------------------------------------------------

    def _get(self, lead: Mapping[str, Any], name: str) -> Any:
        for key in self.fields[name]:
            value = lead.get(key)
            if value is not None and value != "":
                return value
        return None

    def _lead(self, raw: Mapping[str, Any], received: int | None, idem: str | None) -> tk.Output:
        lead = {str(k).strip().lower(): v for k, v in raw.items()}
        if self.skip_test(flag(self._get(lead, "is_test"), "is_test")):
            return tk.Output()
        optin_raw = self._get(lead, "optin_time")
        if optin_raw is None:
            raise InvalidInput("missing_field", "optin_time (or opt_in_date, timestamp) is missing")
        optin = tt.epoch_or_iso_ms(optin_raw, "optin_time", zone=None)
        addresses = self._addresses(lead)
        named = cell_text(self._get(lead, "vendor"), "vendor")
        vendor = self._controller(named[:MAX_CELL]) if named else self.instance.controller
        partners = [
            self._controller(p) for p in cell_names(self._get(lead, "partners"), "partners")
        ]
        partners = list(dict.fromkeys(partners))
        buyers = list(
            dict.fromkeys(
                self._controller(b) for b in cell_names(self._get(lead, "buyers"), "buyers")
            )
        )
        purposes, unmapped, consent_key = self._purposes(lead)
        given = self._get(lead, "channels")
        channels = (
            None if given is None else parse_channels(cell_keys(given, "channels"), "channels")
        )
        lead_id = cell_text(self._get(lead, "lead_id"), "lead_id") or cell_text(
            idem, "Idempotency-Key"
        )
        dedupe = lead_id or f"{optin}|{vendor}"
        attributes = self._attributes(lead, lead_id)
        proof = self._proof(lead, optin, lead_id, attributes)
        delivered = self._get(lead, "delivered_at")
        if delivered is not None:
            used_at = tt.epoch_or_iso_ms(delivered, "delivered_at", zone=None)
        else:
            used_at = received if received is not None else optin
        now = received if received is not None else tk.Edge.now_ms()
        emit = tk.Emitter(self, now)
        use = {
            "campaign_id": cell_text(lead.get("campaign_id"), "campaign_id"),
            "list_id": cell_text(lead.get("list_id"), "list_id"),
            "source_event_type": "lead_post",
            "attributes": {**attributes, "collected_by": vendor},
        }
        consent = {
            "certificate_status": CertificateStatus.CLAIMED if proof.certificate_id else None,
            "purposes": purposes,
            "unmapped": unmapped,
            "recipients": partners,
            "proof": proof,
            "attributes": attributes,
        }
        out = tk.Output()
        for lead_address in addresses:
            addr, kind = lead_address.address, lead_address.kind
            channel = self.channels.usage_channel(kind)
            for buyer in buyers:
                at = emit.at(("lead", dedupe, addr.key, buyer), addr, used_at)
                usage = at.usage(
                    UsageKind.LEAD_DELIVERED, role=None, channel=channel, controller=buyer, **use
                )
                out.usage.append(usage)
            scoped = self.channels.consent_channels(kind, consent_key, channels)
            for controller in (partners or [vendor]) if scoped else []:
                at = emit.at(("consent", dedupe, addr.key, controller), addr, optin)
                grant = at.consent(
                    ConsentAction.GRANT,
                    role=None,
                    channels=scoped,
                    collected_by=vendor if vendor != controller else None,
                    controller=controller,
                    **consent,
                )
                out.consent.append(grant)
        return out

    def _addresses(self, lead: Mapping[str, Any]) -> list[LeadAddress]:
        found: dict[str, LeadAddress] = {}
        for kind in ("email", "phone"):
            value = self._get(lead, kind)
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidInput(f"bad_{kind}", f"{kind} is not a string")
            address = self.edge.address(value, kind)
            found.setdefault(address.key, LeadAddress(address, kind))
        if not found:
            raise InvalidInput("missing_field", "the lead has neither an email nor a phone")
        return list(found.values())

    def _controller(self, name: str) -> str:
        return self.aliases.get(name.strip().lower(), name.strip())

    def _purposes(self, lead: Mapping[str, Any]) -> tuple[list[str], list[str], str | None]:
        """(canonical purposes, unmapped vendor purposes, the key consent channels use)."""
        given = self._get(lead, "purposes")
        if given is not None:
            keys = cell_keys(given, "purposes")
            mapped = [self.purpose(k) for k in keys]
            purposes = [p for p in dict.fromkeys(mapped) if p]
            unmapped = [k for k, p in zip(keys, mapped, strict=True) if not p]
            return purposes, unmapped, keys[0] if keys else None
        ids = [i for i in (cell_text(lead.get(k), k) for k in PURPOSE_FALLBACK) if i]
        for key in ids:
            purpose = self.purpose(key)
            if purpose:
                return [purpose], [], key
        return [], ids or ["lead_post:unspecified"], ids[0] if ids else None

    def _attributes(self, lead: Mapping[str, Any], lead_id: str | None) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {}
        if lead_id:
            out["lead_id"] = lead_id
        for key in ID_FIELDS:
            value = cell_text(lead.get(key), key)
            if value:
                out[key] = value
        ua = cell_text(self._get(lead, "user_agent"), "user_agent")
        if ua:
            out["user_agent"] = ua[:MAX_CELL]
        return out

    def _proof(
        self, lead: Mapping[str, Any], optin: int, lead_id: str | None, attrs: dict[str, Scalar]
    ) -> Proof:
        confirmed = flag(self._get(lead, "doi"), "doi")
        confirmed_at = self._get(lead, "confirmation_time")
        if confirmed_at is not None:
            attrs["doi_confirmed_at_ms"] = tt.epoch_or_iso_ms(
                confirmed_at, "confirmation_time", zone=None
            )
            confirmed = True
        confirmation_ip = cell_text(self._get(lead, "confirmation_ip"), "confirmation_ip")
        if confirmation_ip:
            attrs["doi_ip_hash"] = sha256_hex(confirmation_ip)
        trustedform = cell_text(self._get(lead, "trustedform"), "trustedform_cert_url")
        leadid = cell_text(self._get(lead, "leadid"), "leadid_token")
        if trustedform and leadid:
            attrs["trustedform_cert_url"] = trustedform[:MAX_CELL]
            attrs["leadid_token"] = leadid[:MAX_CELL]
        ip = cell_text(self._get(lead, "ip"), "ip")
        text = cell_text(self._get(lead, "consent_text"), "consent_text")
        url = cell_text(self._get(lead, "source_url"), "source_url")
        certificate = trustedform or leadid
        return Proof(
            method="double_opt_in" if confirmed else "web_form",
            collected_at_ms=optin,
            collection_point=safe_url(url)[:MAX_CELL] if url else None,
            notice_version=cell_text(self._get(lead, "notice_version"), "notice_version"),
            text_hash=sha256_hex(text) if text else None,
            ip_hash=sha256_hex(ip) if ip else None,
            certificate_id=certificate[:MAX_CELL] if certificate else None,
            vendor_receipt=lead_id,
        )


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-Consentinel-Signature`` a vendor would send for ``instance``,
    timed at the request's receipt time when it has one (else now)."""
    at = request.received_at_ms // 1000 if request.received_at_ms else int(time.time())
    header = lead_post_signature(instance.secret("signing_secret"), request.body, at)
    return request.with_headers({"x-consentinel-signature": header})
