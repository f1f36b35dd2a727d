"""Small helpers shared by the SMS-gateway and CMP connectors (twilio, vonage, cmcom, didomi,
onetrust): request parameters, keyword classification, senders. Events, times, secrets and
JSON bodies come from the toolkit.

Nothing here sees an address except to hand it to ``Edge.address``; nothing logs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from consentinel.connectors import toolkit as tk
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Proof,
    UsageKind,
)

MAX_ATTR: Final = 200  # longest attribute string we keep
MAX_IDS: Final = 20  # longest id list we keep in an attribute


# -- request parameters -----------------------------------------------------------------


def is_json(request: tk.Request) -> bool:
    ctype = (request.header("content-type") or "").lower()
    if "json" in ctype:
        return True
    return "form" not in ctype and request.body.lstrip()[:1] in (b"{", b"[")


def flat_params(request: tk.Request) -> dict[str, str]:
    """Form body (POST) or query (GET, or a POST without a body) as name -> first value."""
    if request.body.strip():
        pairs = request.form()
        return {k: v[0] for k, v in pairs.items() if v}
    return {k: v[0] for k, v in request.query.items() if v}


def text(obj: Mapping[str, Any], key: str, *, required: bool = False, what: str = "") -> str | None:
    """``obj[key]`` as a stripped string (numbers accepted), or None; ``missing_field``."""
    value = obj.get(key)
    if isinstance(value, bool):
        value = None
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if required:
        raise InvalidInput("missing_field", f"the field {what or key!r} is missing or not text")
    return None


def ci_get(obj: Mapping[str, Any], *names: str) -> Any:
    """The first of ``names`` found, comparing keys without case, spaces or punctuation."""
    wanted = [_squash(n) for n in names]
    index = {_squash(str(k)): v for k, v in obj.items()}
    for name in wanted:
        if name in index and index[name] not in (None, ""):
            return index[name]
    return None


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def bounded(value: Any) -> str:
    """A value as text, cut to :data:`MAX_ATTR` characters (for attributes)."""
    return str(value)[:MAX_ATTR]


def id_list(values: Any) -> str:
    """Up to :data:`MAX_IDS` ids, comma-joined and bounded (vendor lists in attributes)."""
    if not isinstance(values, list):
        return ""
    items = [str(v) for v in values if isinstance(v, str | int) and not isinstance(v, bool)]
    return bounded(",".join(items[:MAX_IDS]))


# -- SMS keywords and senders -----------------------------------------------------------

STOP_WORDS: Final = frozenset(
    {
        "STOP",
        "STOPALL",
        "STOP ALL",
        "STOP SMS",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "OPT OUT",
        "ARRET",
        "ARRÊT",
    }
)
START_WORDS: Final = frozenset({"START", "UNSTOP"})
HELP_WORDS: Final = frozenset({"HELP", "INFO", "AIDE"})


def classify_keyword(body: str | None) -> str | None:
    """``stop``, ``start``, ``help`` or None for an SMS body: the whole message, trimmed,
    case-insensitive, surrounding punctuation and repeated spaces ignored."""
    if not isinstance(body, str):
        return None
    norm = unicodedata.normalize("NFC", body)
    norm = re.sub(r"\s+", " ", norm.strip().strip(".!?;,:'\"«»()")).upper()
    if norm in STOP_WORDS:
        return "stop"
    if norm in START_WORDS:
        return "start"
    if norm in HELP_WORDS:
        return "help"
    return None


def sender_type(sender: str | None) -> str:
    """``short_code``, ``alphanumeric``, ``long_code`` (a full number) or ``unknown``."""
    if not sender:
        return "unknown"
    digits = re.sub(r"[\s\-]", "", sender)
    if re.fullmatch(r"\d{3,8}", digits):
        return "short_code"
    if re.fullmatch(r"\+?\d{9,17}", digits):
        return "long_code"
    if re.fullmatch(r"[A-Za-z0-9 .&\-_]{1,20}", sender) and re.search(r"[A-Za-z]", sender):
        return "alphanumeric"
    return "unknown"


def sender_scope(sender: str | None) -> str | None:
    """What a keyword opt-out is scoped to: a short code or alphanumeric id as given. A full
    number is never put in ``scope`` (it would be an address in an event): None, i.e. the
    opt-out covers every SMS of the controller (fails closed)."""
    if sender and sender_type(sender) in ("short_code", "alphanumeric"):
        return sender
    return None


def sms_channel(kind: str | None) -> Channel:
    """A gateway's channel name to ours; unsupported ones are ``unsupported_channel``."""
    name = (kind or "sms").strip().lower()
    mapping = {
        "sms": Channel.SMS,
        "mms": Channel.SMS,
        "whatsapp": Channel.WHATSAPP,
        "rcs": Channel.RCS,
    }
    if name not in mapping:
        raise InvalidInput("unsupported_channel", "the message channel is not SMS, WhatsApp or RCS")
    return mapping[name]


def split_channel(raw: str) -> tuple[Channel, str]:
    """A gateway address with its channel prefix (``whatsapp:+33…``, ``rcs:…``) as
    (channel, number); no prefix is SMS, an unknown one ``unsupported_channel``."""
    prefix, sep, rest = raw.partition(":")
    if sep and prefix.lower() in ("whatsapp", "rcs", "sms", "mms"):
        return sms_channel(prefix), rest
    if sep and prefix.isalpha():
        return sms_channel(prefix), rest  # raises unsupported_channel
    return Channel.SMS, raw


def controller_for(connector: tk.Connector, *refs: str | None) -> str:
    """``options['controllers']`` maps a sender / service / organization to a controller."""
    table = connector.instance.options.get("controllers") or {}
    if isinstance(table, Mapping):
        for ref in refs:
            if ref and isinstance(table.get(ref), str):
                return str(table[ref])
    return connector.instance.controller


def first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v), None)


def keyword_consent(
    emit: tk.Emitter,
    keyword: str,
    dedupe: tuple[Any, ...],
    address: tk.Address,
    occurred: int,
    *,
    controller: str,
    channel: Channel,
    scope: str | None,
    receipt: str | None,
) -> ConsentEvent:
    """The ConsentEvent of an SMS STOP (withdraw, all purposes) or START (grant of the
    purpose mapped for the scope, else unmapped)."""
    connector = emit.connector
    purposes: list[str] = []
    unmapped: list[str] = []
    action = ConsentAction.WITHDRAW
    if keyword == "start":
        action = ConsentAction.GRANT
        key = scope or "sms_opt_in"
        canonical = (connector.purpose(scope) if scope else None) or connector.purpose("sms_opt_in")
        if canonical:
            purposes.append(canonical)
        else:
            unmapped.append(key)
    proof = Proof(
        method=f"keyword_{keyword}",
        collected_at_ms=occurred,
        collection_point=scope,
        vendor_receipt=receipt,
    )
    return emit.consent(
        dedupe,
        action,
        address,
        occurred,
        role=None,
        channels=[channel],
        purposes=purposes,
        unmapped=unmapped,
        scope=scope,
        proof=proof,
        controller=controller,
    )


def parse_form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Pairs of a form body, never failing (for ``sign`` on arbitrary test bodies)."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def opted_out(
    emit: tk.Emitter,
    receipt: str,
    address: tk.Address,
    occurred: int,
    *,
    channel: Channel,
    scope: str | None,
    controller: str,
    evidence: str,
) -> ConsentEvent:
    """The withdrawal a gateway reports by refusing a send to a number on its opt-out list
    (Twilio error 21610, Vonage err-code 9)."""
    return emit.consent(
        (receipt, "opted_out"),
        ConsentAction.WITHDRAW,
        address,
        occurred,
        role=None,
        channels=[channel],
        scope=scope,
        proof=Proof(method="gateway_opt_out_list", vendor_receipt=receipt),
        attributes={"evidence": evidence},
        controller=controller,
    )


def status_report(
    at: tk.Occurrence,
    kind: UsageKind,
    *,
    opt_out: tuple[str, str] | None = None,
    scope: str | None = None,
    **usage: Any,
) -> tk.Output:
    """A gateway's status report: its usage (``usage``: the keyword arguments of
    ``Emitter.usage``, ``channel`` and ``controller`` required) and, when the gateway refused the
    send because the number is on its opt-out list (``opt_out``: the message id and the
    evidence), the withdrawal that proves (see :func:`opted_out`), scoped to ``scope``."""
    out = tk.Output(usage=[at.usage(kind, role=None, **usage)])
    if opt_out is not None:
        receipt, evidence = opt_out
        channel, controller = usage.get("channel", Channel.SMS), usage["controller"]
        where = {"channel": channel, "scope": scope, "controller": controller}
        withdraw = opted_out(
            at.emit, receipt, at.address, at.occurred_at_ms, **where, evidence=evidence
        )
        out.consent.append(withdraw)
    return out


def reply(
    emit: tk.Emitter,
    dedupe: tuple[Any, ...],
    consent_dedupe: tuple[Any, ...],
    receipt: str | None,
    address: tk.Address,
    occurred: int,
    *,
    channel: Channel,
    controller: str,
    sender: str | None,
    event_type: str,
    keyword: str | None,
    scope: str | None,
    attributes: Mapping[str, Any],
    list_id: str | None = None,
    campaign_id: str | None = None,
    tags: list[str] | None = None,
) -> tk.Output:
    """An inbound message: its REPLY usage (id from ``dedupe``) and, for STOP or START, the
    keyword's consent event (id from ``consent_dedupe``)."""
    out = tk.Output()
    out.usage.append(
        emit.usage(
            dedupe,
            UsageKind.REPLY,
            address,
            occurred,
            role=None,
            channel=channel,
            controller=controller,
            list_id=list_id,
            campaign_id=campaign_id,
            tags=tags,
            sender=sender,
            source_event_type=event_type,
            attributes=attributes,
        )
    )
    if keyword in ("stop", "start"):
        out.consent.append(
            keyword_consent(
                emit,
                keyword,
                consent_dedupe,
                address,
                occurred,
                controller=controller,
                channel=channel,
                scope=scope,
                receipt=receipt,
            )
        )
    return out


def reply_to(
    at: tk.Occurrence,
    consent_dedupe: tuple[Any, ...],
    receipt: str | None,
    *,
    own: str | None,
    keyword: str | None,
    **reply_kw: Any,
) -> tk.Output:
    """:func:`reply` (the inbound message ``at``) to one of our numbers or sender ids
    (``own``): it is the sender, the scope of a keyword (see :func:`sender_scope`) and picks
    the controller; the attributes say the keyword and the kind of sender. ``reply_kw``:
    ``channel``, ``event_type`` and the optional arguments of :func:`reply`."""
    kw: dict[str, Any] = {
        "controller": controller_for(at.emit.connector, own),
        "sender": own,
        "keyword": keyword,
        "scope": sender_scope(own),
        "attributes": {"keyword": keyword or "none", "sender_type": sender_type(own)},
    }
    occurred = at.occurred_at_ms
    return reply(
        at.emit, at.dedupe, consent_dedupe, receipt, at.address, occurred, **kw, **reply_kw
    )
