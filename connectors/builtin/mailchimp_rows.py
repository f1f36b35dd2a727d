"""Mailchimp audience exports (CSV): each row is a consent with its opt-in proof.

Import (``map_row``): rows of the audience export (``Email Address``, ``OPTIN_TIME``,
``OPTIN_IP``, ``CONFIRM_TIME``, ``CONFIRM_IP``, ``MEMBER_RATING``, ``LEID``, ``EUID``,
``LAST_CHANGED``; unsubscribed exports add ``UNSUB_TIME``…). The list id comes from a
``LIST_ID`` column or the ``list_id`` option. Each row → a grant (``double_opt_in`` with the
confirmation time and IP when ``CONFIRM_TIME`` is set, ``single_opt_in`` with only
``OPTIN_TIME``, ``import`` when neither: unprovable); an ``UNSUB_TIME`` adds the withdraw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, Proof

if TYPE_CHECKING:
    from consentinel.connectors.builtin.mailchimp import MailchimpConnector


def export_row(connector: MailchimpConnector, row: Mapping[str, Any]) -> tk.Output:
    """The consent of one audience export row: a grant with its opt-in proof (double
    opt-in when CONFIRM_TIME is set) and, with UNSUB_TIME, the withdrawal after it."""
    raw_email = _column(row, "Email Address", "EMAIL", "email", "Email")
    if raw_email is None:
        raise InvalidInput("missing_field", "the Email Address column is missing or empty")
    list_id = _column(row, "LIST_ID", "list_id") or connector.instance.options.get("list_id")
    if not isinstance(list_id, str) or not list_id.strip():
        raise InvalidInput(
            "missing_field",
            "no list id: add a LIST_ID column or set the list_id option of the instance",
        )
    list_id = list_id.strip()
    address = em.email(connector.edge, raw_email, "Email Address")
    times = {
        name: tt.local_ms(value, name, connector.zone)
        for name in ("OPTIN_TIME", "CONFIRM_TIME", "LAST_CHANGED", "UNSUB_TIME")
        if (value := _column(row, name)) is not None
    }
    confirmed, opted = times.get("CONFIRM_TIME"), times.get("OPTIN_TIME")
    granted_at = confirmed or opted or times.get("LAST_CHANGED")
    if granted_at is None:
        raise InvalidInput(
            "missing_field",
            "the row has no OPTIN_TIME, CONFIRM_TIME or LAST_CHANGED column value",
        )
    if confirmed:
        method, ip = "double_opt_in", _column(row, "CONFIRM_IP")
    elif opted:
        method, ip = "single_opt_in", _column(row, "OPTIN_IP")
    else:
        method, ip = "import", None
    emit = tk.Emitter(connector, tk.Edge.now_ms())
    receipt = _column(row, "LEID", "EUID")
    rating = _column(row, "MEMBER_RATING")
    proof = Proof(
        method=method,
        collected_at_ms=confirmed or opted,  # unknown for a bare import
        collection_point=f"mailchimp:list:{list_id}",
        notice_version=connector.notices.get(list_id),
        ip_hash=em.ip_hash(ip),
        vendor_receipt=em.attr_text(receipt),
    )
    attributes = {
        "optin_at_ms": opted if confirmed else None,
        "optin_ip_hash": em.ip_hash(_column(row, "OPTIN_IP")) if confirmed else None,
        "member_rating": em.attr_text(rating),
        "imported": True,
    }
    granted = emit.at(("row", list_id, address.key, granted_at), address, granted_at)
    grant = granted.consent(
        ConsentAction.GRANT,
        role="grant",
        vendor_purposes=[list_id],
        scope=list_id,
        proof=proof,
        attributes=attributes,
    )
    out = tk.Output(consent=[grant])
    unsub = times.get("UNSUB_TIME")
    if unsub is not None:
        reason = em.attr_text(_column(row, "UNSUB_REASON"))
        withdraw = emit.at(("row", list_id, address.key, unsub), address, unsub).scoped(
            ConsentAction.WITHDRAW,
            role="withdraw",
            scope=list_id,
            platform="mailchimp",
            method="unsubscribe",
            vendor_receipt=em.attr_text(receipt),
            attributes={"reason": reason, "imported": True},
        )
        out.consent.append(withdraw)
    return out


def _column(row: Mapping[str, Any], *names: str) -> str | None:
    """The first non-blank text among columns ``names`` (numbers become text)."""
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, str):  # what a CSV row holds: tested first
            if text := value.strip():
                return text
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    return None
