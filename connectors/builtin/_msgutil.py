"""Small helpers shared by the SMS-gateway and CMP connectors (twilio, vonage, cmcom, didomi,
onetrust): request parameters, times, secrets during rotation, keyword classification.

Nothing here sees an address except to hand it to ``Edge.address``; nothing logs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from consentinel.connectors.contract import Connector, Edge, Instance, Request
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.ids import event_id
from consentinel.streams.events.records import Channel, ConsentAction, ConsentEvent, Proof

_MIN_MS: Final = 946_684_800_000  # 2000-01-01
_MAX_MS: Final = 4_102_444_800_000  # 2100-01-01
MAX_ATTR: Final = 200  # longest attribute string we keep
MAX_IDS: Final = 20  # longest id list we keep in an attribute


# -- secrets ----------------------------------------------------------------------------


def secrets(instance: Instance, name: str) -> list[bytes]:
    """The secret ``name`` and, while rotating, ``<name>_previous`` when configured."""
    values = [instance.secret(name)]
    if f"{name}_previous" in instance.secrets:
        values.append(instance.secret(f"{name}_previous"))
    return values


# -- request parameters -----------------------------------------------------------------


def is_json(request: Request) -> bool:
    ctype = (request.header("content-type") or "").lower()
    if "json" in ctype:
        return True
    return "form" not in ctype and request.body.lstrip()[:1] in (b"{", b"[")


def flat_params(request: Request) -> dict[str, str]:
    """Form body (POST) or query (GET, or a POST without a body) as name -> first value."""
    if request.body.strip():
        pairs = request.form()
        return {k: v[0] for k, v in pairs.items() if v}
    return {k: v[0] for k, v in request.query.items() if v}


def json_object(request: Request) -> dict[str, Any]:
    data = codec.loads(request.body)
    if not isinstance(data, dict):
        raise InvalidInput("malformed_json", "the JSON body is not an object")
    return data


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


def with_query(request: Request, **params: str) -> Request:
    """The request with query parameters set (replacing any of the same name)."""
    from dataclasses import replace

    parts = urlsplit(request.url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    pairs.extend(params.items())
    url = urlunsplit(parts._replace(query=urlencode(pairs)))
    query: dict[str, list[str]] = {}
    for k, v in pairs:
        query.setdefault(k, []).append(v)
    return replace(request, url=url, query=query)


def with_body(request: Request, body: bytes) -> Request:
    from dataclasses import replace

    headers = dict(request.headers)
    if "content-length" in headers:
        headers["content-length"] = str(len(body))
    return replace(request, body=body, headers=headers)


def with_headers(request: Request, **headers: str) -> Request:
    from dataclasses import replace

    merged = dict(request.headers)
    merged.update({k.lower().replace("_", "-"): v for k, v in headers.items()})
    return replace(request, headers=merged)


# -- times ------------------------------------------------------------------------------


def _checked(ms: int, what: str) -> int:
    if not _MIN_MS <= ms <= _MAX_MS:
        raise InvalidInput("bad_timestamp", f"{what} is outside 2000..2100")
    return ms


def iso_ms(value: Any, what: str) -> int:
    """ISO 8601 / RFC 3339 (``T`` or space; ``Z``, ``±HH:MM``, ``±HHMM``; no zone = UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("bad_timestamp", f"{what} is not a date-time text")
    raw = value.strip()
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw)  # nanoseconds -> microseconds
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("bad_timestamp", f"{what} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _checked(int(parsed.timestamp() * 1000), what)


def epoch_ms(value: Any, what: str) -> int:
    """Unix seconds or milliseconds (told apart by magnitude), number or digit text."""
    if isinstance(value, bool):
        raise InvalidInput("bad_timestamp", f"{what} is not a Unix time")
    if isinstance(value, str) and re.fullmatch(r"\d{9,13}(\.\d+)?", value.strip()):
        value = float(value)
    if not isinstance(value, int | float):
        raise InvalidInput("bad_timestamp", f"{what} is not a Unix time")
    ms = int(value * 1000) if value < 100_000_000_000 else int(value)
    return _checked(ms, what)


def compact_ms(value: str, what: str) -> int:
    """Carrier times ``YYMMDDhhmm`` or ``YYMMDDhhmmss``, taken as UTC."""
    raw = value.strip()
    fmt = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(raw))
    if fmt is None or not raw.isdigit():
        raise InvalidInput("bad_timestamp", f"{what} is not YYMMDDhhmm[ss]")
    try:
        parsed = datetime.strptime(raw, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput("bad_timestamp", f"{what} is not a valid YYMMDDhhmm[ss]") from None
    return _checked(int(parsed.timestamp() * 1000), what)


def any_time_ms(value: Any, what: str) -> int:
    """Whatever a file export holds: Unix s/ms, ISO 8601, or RFC 2822 (Twilio's API)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_ms(value, what)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{9,13}(\.\d+)?\s*", value):
        return epoch_ms(value, what)
    if isinstance(value, str) and re.match(r"\s*[A-Za-z]{3},", value):
        from email.utils import parsedate_to_datetime

        try:
            parsed = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            raise InvalidInput("bad_timestamp", f"{what} is not an RFC 2822 date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _checked(int(parsed.timestamp() * 1000), what)
    return iso_ms(value, what)


def ms_of(dt: datetime) -> int:
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def received_ms(request: Request | None) -> int:
    return (request.received_at_ms if request is not None else 0) or Edge.now_ms()


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


def controller_for(connector: Connector, *refs: str | None) -> str:
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
    connector: Connector,
    *,
    keyword: str,
    dedupe: tuple[Any, ...],
    occurred: int,
    received: int,
    addr_key: str,
    hint: str,
    controller: str,
    channel: Channel,
    scope: str | None,
    receipt: str | None,
) -> ConsentEvent:
    """The ConsentEvent of an SMS STOP (withdraw, all purposes) or START (grant of the
    purpose mapped for the scope, else unmapped)."""
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
    return ConsentEvent(
        event_id=event_id(connector.instance.name, *dedupe),
        occurred_at_ms=occurred,
        received_at_ms=received,
        source=connector.instance.name,
        processor=connector.name,
        subject_key=addr_key,
        hint=hint,
        controller=controller,
        action=action,
        purposes=purposes,
        channels=[channel],
        scope=scope,
        proof=Proof(
            method=f"keyword_{keyword}",
            collected_at_ms=occurred,
            collection_point=scope,
            vendor_receipt=receipt,
        ),
        unmapped_purposes=unmapped,
    )


def parse_form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Pairs of a form body, never failing (for ``sign`` on arbitrary test bodies)."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
