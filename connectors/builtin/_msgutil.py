"""Small helpers shared by the SMS-gateway and CMP connectors (twilio, vonage, cmcom, didomi,
onetrust): request parameters, keyword classification, channels; the SMS events and senders
(``_msgevents``) are re-exported here. Events, times, secrets and JSON bodies come from the
toolkit.

Nothing here sees an address except to hand it to ``Edge.address``; nothing logs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin._msgevents import (
    controller_for,
    keyword_consent,
    opted_out,
    reply,
    reply_to,
    sender_scope,
    sender_type,
    status_report,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Channel,
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


# -- SMS keywords -----------------------------------------------------------------------

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


def first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v), None)


def parse_form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Pairs of a form body, never failing (for ``sign`` on arbitrary test bodies)."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


__all__ = [
    "HELP_WORDS",
    "MAX_ATTR",
    "MAX_IDS",
    "START_WORDS",
    "STOP_WORDS",
    "bounded",
    "ci_get",
    "classify_keyword",
    "controller_for",
    "first",
    "flat_params",
    "id_list",
    "is_json",
    "keyword_consent",
    "opted_out",
    "parse_form_pairs",
    "reply",
    "reply_to",
    "sender_scope",
    "sender_type",
    "sms_channel",
    "split_channel",
    "status_report",
    "text",
]
