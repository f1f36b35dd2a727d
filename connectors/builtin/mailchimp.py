"""Mailchimp Marketing audience (list) webhooks, and the audience CSV export
(connectors.md §1.1, §7).

Transport: POST ``application/x-www-form-urlencoded`` with PHP-style bracketed keys
(``data[merges][FNAME]``), split here into nested objects. Mailchimp signs nothing: the
webhook URL carries the instance secret ``token``, as the query parameter ``token`` or as
the last path segment (both accepted; ``token_previous`` is accepted too while rotating).
The plain GET Mailchimp sends when the webhook is saved is answered 200 without the secret
(it carries nothing).

Mapping (``fired_at`` is the event time):

- ``subscribe`` → ConsentEvent grant for the list's purpose (``purpose_map[list_id]``,
  unmapped → ``unmapped_purposes``), scope = list id. Proof: ``double_opt_in`` when
  Mailchimp reports a confirmation IP (``ip_opt``), else ``opt_in``; the IP hash, the
  member id as receipt, ``mailchimp:list:<id>`` as collection point, and the version of
  the notice the list's sign-up form shows from the option ``list_notices`` [list id]
  (Mailchimp does not send it; without it the consent lacks that proof element, R3).
  Mailchimp posts ``subscribe`` also when an admin adds the member (an import of a file,
  the API): such a payload carries neither ``ip_opt`` nor ``ip_signup``. With the option
  ``subscribe_without_ip: join`` it is membership only (a ``join``: the checker puts the
  address on the list, the consent history ignores it), for audiences that take imported
  files; the default ``grant`` takes it as consent like any other.
- ``unsubscribe`` → UsageEvent ``unsubscribe_link`` (``complaint`` when ``reason=abuse``)
  + ConsentEvent withdraw for the list's purpose. ``action=delete`` (the member was
  deleted, no link was used) gives the withdraw only.
- ``cleaned`` → UsageEvent ``bounce``; with ``reason=abuse`` a ``complaint`` + withdraw.
- ``upemail`` → the address changed: ConsentEvent grant for the new address (method
  ``address_change``, attribute ``replaces_subject_key``) and ConsentEvent expire for the
  old one (attribute ``replaced_by_subject_key``): the old key no longer holds consent,
  but its owner did not withdraw.
- ``campaign`` with ``status=sent`` → one list-level UsageEvent ``send``: Mailchimp names
  no recipient, so the subject key is a fan-out key for the list (:func:`list_subject_key`,
  hint ``* (list <id>)``, attribute ``fan_out=list``) that the stream processor expands
  against the list's members. Other statuses give nothing.
- ``profile`` (merge fields changed) → nothing: no consent changes.

[U] ``fired_at`` carries no zone: read in the ``timezone`` option (default UTC); ISO 8601
with an offset and Unix seconds are accepted as well. Interest groups (``INTERESTS``) are
kept as an attribute, not mapped to purposes (the list is the purpose).

Import (``map_row``): the audience export, see ``mailchimp_rows``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.builtin.mailchimp_rows import export_row
from consentinel.connectors.toolkit import times as tt
from consentinel.connectors.toolkit.fields import nested_form
from consentinel.streams.events.errors import FatalConfigError, InvalidInput
from consentinel.streams.events.records import ConsentAction, ConsentEvent, UsageEvent, UsageKind

_EVENTS = ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")


def list_subject_key(source: str, list_id: str) -> str:
    """The fan-out key of a list-level event: 64 hex like a subject key, never an address's
    (no pepper; a fixed prefix): ``sha256("consentinel:list-fanout" | source | list id)``."""
    text = "\x1f".join(("consentinel:list-fanout", source, list_id))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Member:
    """An audience member's event: its occurrence (identity, address, time), data, list."""

    at: tk.Occurrence
    data: Mapping[str, Any]
    list_id: str

    def usage(self, kind: UsageKind, event: str, **usage: Any) -> UsageEvent:
        return self.at.usage(kind, source_event_type=event, list_id=self.list_id, **usage)

    def consent(self, action: ConsentAction, method: str, **proven: Any) -> ConsentEvent:
        """The member's consent to the list (its purpose through ``purpose_map``)."""
        list_id = self.list_id
        return self.at.scoped(action, scope=list_id, platform="mailchimp", method=method, **proven)


class MailchimpConnector(tk.Connector):
    name: ClassVar[str] = "mailchimp"
    title: ClassVar[str] = "Mailchimp Marketing audience webhooks and audience CSV exports"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = (
        "unsigned: shared secret in the webhook URL (?token= or last path segment)"
    )
    events: ClassVar[tuple[str, ...]] = _EVENTS
    event_time: ClassVar[str] = (
        '"fired_at" (YYYY-MM-DD HH:MM:SS in the `timezone` option); export '
        "rows: OPTIN_TIME, CONFIRM_TIME, LAST_CHANGED, UNSUB_TIME"
    )
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = (
        *tk.rotating_secret("token", "secret in the webhook URL (?token=... or last path segment)"),
        tk.option("timezone", "text", "IANA zone of fired_at and export times [U]", "UTC"),
        tk.option("list_id", "text", "audience id for export rows without a LIST_ID column"),
        tk.option("list_notices", "mapping", "list id -> version of its form's notice", {}),
        tk.option(
            "subscribe_without_ip",
            "text",
            "a subscribe with no sign-up or opt-in IP (an admin import): grant or join",
            "grant",
        ),
    )

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        self.zone = tt.zone_option(instance)
        notices = instance.options.get("list_notices") or {}
        if not isinstance(notices, Mapping):
            raise FatalConfigError(
                ["list_notices must map list ids to notice versions"],
                f"connector instance {instance.name!r}",
            )
        self.notices = {str(k): str(v) for k, v in notices.items()}
        self.join_without_ip = tk.option_text(instance, "subscribe_without_ip", "grant") == "join"
        if tk.option_text(instance, "subscribe_without_ip", "grant") not in ("grant", "join"):
            raise FatalConfigError(
                ["subscribe_without_ip must be grant or join"],
                f"connector instance {instance.name!r}",
            )

    # -- webhook ---------------------------------------------------------------------

    def handshake(self, request: tk.Request) -> tk.Response | None:
        if request.method.upper() in ("GET", "HEAD"):
            return tk.Response(200, b"", "text/plain")
        return None

    def verify(self, request: tk.Request) -> None:
        em.verify_unsigned(request, self.instance)

    def map_request(self, request: tk.Request) -> tk.Output:
        form = nested_form(request.form())
        kind = em.text(form, "type", "type", required=True)
        if kind not in _EVENTS:
            raise InvalidInput("unknown_event", "type is not a Mailchimp audience event")
        assert kind is not None
        fired_raw = em.text(form, "fired_at", "fired_at", required=True)
        occurred = tt.local_ms(fired_raw, "fired_at", self.zone)
        data = em.sub(form, "data", "data", required=True)
        emit = tk.Emitter(self, tk.received_ms(request))
        base = (kind, fired_raw)
        if kind == "campaign":
            return self._campaign(emit, base, data, occurred)
        list_id = em.text(data, "list_id", "data[list_id]", required=True)
        assert list_id is not None
        if kind == "upemail":
            return self._upemail(emit, base, data, list_id, occurred)
        merges = em.sub(data, "merges", "data[merges]")
        raw_email = data.get("email") or data.get("new_email") or merges.get("EMAIL")
        address = em.email(self.edge, raw_email, "data[email]")
        member = _Member(emit.at((*base, list_id, address.key), address, occurred), data, list_id)
        if kind == "subscribe":
            return tk.Output(consent=[self._grant(member, merges)])
        if kind == "profile":
            return tk.Output()
        return self._unsubscribe(member) if kind == "unsubscribe" else self._cleaned(member)

    def list_purposes(self, list_id: str) -> tuple[list[str], list[str]]:
        return em.purposes(self, [list_id])

    def _grant(self, m: _Member, merges: Mapping[str, Any]) -> ConsentEvent:
        ip_opt = em.ip_hash(em.text(m.data, "ip_opt", "data[ip_opt]"))
        ip_signup = em.ip_hash(em.text(m.data, "ip_signup", "data[ip_signup]"))
        if self.join_without_ip and not (ip_opt or ip_signup):  # added by an admin: no consent
            return m.at.consent(
                ConsentAction.JOIN, scope=m.list_id, attributes={"evidence": "admin_subscribe"}
            )
        interests = merges.get("INTERESTS")
        return m.consent(
            ConsentAction.GRANT,
            "double_opt_in" if ip_opt else "opt_in",
            notice_version=self.notices.get(m.list_id),
            ip_hash=ip_opt or ip_signup,
            vendor_receipt=em.ident(m.data, "id", "data[id]"),
            attributes={
                "ip_signup_hash": ip_signup,
                "email_type": em.attr_text(em.text(m.data, "email_type", "data[email_type]")),
                "interests": interests if isinstance(interests, str) and interests else None,
            },
        )

    def _unsubscribe(self, m: _Member) -> tk.Output:
        action = (em.text(m.data, "action", "data[action]") or "unsub").lower()
        reason = (em.text(m.data, "reason", "data[reason]") or "").lower()
        campaign = em.ident(m.data, "campaign_id", "data[campaign_id]")
        abuse = reason == "abuse"
        attrs = {"mailchimp_action": action[:32], "reason": reason[:32] or None}
        out = tk.Output()
        if action != "delete":
            kind = UsageKind.COMPLAINT if abuse else UsageKind.UNSUBSCRIBE_LINK
            out.usage.append(m.usage(kind, "unsubscribe", campaign_id=campaign, attributes=attrs))
        method = "list_delete" if action == "delete" else "unsubscribe_link"
        ip_hash = em.ip_hash(m.data.get("ip_opt"))
        out.consent.append(
            m.consent(
                ConsentAction.WITHDRAW,
                "spam_complaint" if abuse else method,
                ip_hash=ip_hash,
                vendor_receipt=campaign,
                attributes=attrs,
            )
        )
        return out

    def _cleaned(self, m: _Member) -> tk.Output:
        reason = (em.text(m.data, "reason", "data[reason]") or "").lower()
        campaign = em.ident(m.data, "campaign_id", "data[campaign_id]")
        abuse = reason == "abuse"
        kind = UsageKind.COMPLAINT if abuse else UsageKind.BOUNCE
        attrs = {"reason": reason[:32] or None}
        out = tk.Output(usage=[m.usage(kind, "cleaned", campaign_id=campaign, attributes=attrs)])
        if abuse:
            out.consent.append(
                m.consent(
                    ConsentAction.WITHDRAW,
                    "spam_complaint",
                    vendor_receipt=campaign,
                    attributes=attrs,
                )
            )
        return out

    def _upemail(
        self,
        emit: tk.Emitter,
        base: tuple[object, ...],
        data: Mapping[str, Any],
        list_id: str,
        occurred: int,
    ) -> tk.Output:
        new = em.email(self.edge, data.get("new_email"), "data[new_email]")
        old = em.email(self.edge, data.get("old_email"), "data[old_email]")
        dedupe = (*base, list_id, old.key, new.key)
        change = {"scope": list_id, "platform": "mailchimp", "method": "address_change"}
        return tk.Output(
            consent=[
                emit.scoped(
                    dedupe,
                    ConsentAction.GRANT,
                    new,
                    occurred,
                    role="new",
                    vendor_receipt=em.ident(data, "new_id", "data[new_id]"),
                    attributes={"replaces_subject_key": old.key},
                    **change,
                ),
                emit.scoped(
                    dedupe,
                    ConsentAction.EXPIRE,
                    old,
                    occurred,
                    role="old",
                    attributes={"replaced_by_subject_key": new.key, "reason": "address_changed"},
                    **change,
                ),
            ]
        )

    def _campaign(
        self, emit: tk.Emitter, base: tuple[object, ...], data: Mapping[str, Any], occurred: int
    ) -> tk.Output:
        campaign = em.ident(data, "id", "data[id]", required=True)
        list_id = em.text(data, "list_id", "data[list_id]", required=True)
        status = (em.text(data, "status", "data[status]") or "").lower()
        assert campaign is not None and list_id is not None
        if status != "sent":
            return tk.Output()
        fan_out = tk.Address(
            list_subject_key(self.instance.name, list_id), f"* (list {list_id[:64]})"
        )
        return tk.Output(
            usage=[
                emit.usage(
                    (*base, list_id, campaign),
                    UsageKind.SEND,
                    fan_out,
                    occurred,
                    source_event_type="campaign",
                    campaign_id=campaign,
                    list_id=list_id,
                    attributes={"fan_out": "list", "status": status},
                )
            ]
        )

    # -- file import -----------------------------------------------------------------

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """An audience export row (see ``mailchimp_rows``)."""
        return export_row(self, row)


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """The request with the instance token in the URL query, as the registered webhook URL
    carries it (``https://host/hooks/mailchimp?token=...``)."""
    return em.sign_unsigned(request, instance, default_mode="url")
