"""What the lead-generator connectors share (meta_leads, linkedin_leads, google_ads_leads,
lead_post): the events of a lead, yes/no flags, safe URLs, channels per address. Events,
times, secrets and JSON bodies come from the toolkit.

Nothing here keeps or prints an address: addresses go straight to ``Edge.address``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from consentinel.connectors import toolkit as tk
from consentinel.streams.events.codec import loads
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, Proof, Scalar, UsageKind

#: Channels a phone number can be used on; e-mail addresses have only ``email``.
PHONE_CHANNELS = frozenset({Channel.SMS, Channel.PHONE, Channel.WHATSAPP, Channel.RCS})

_TRUE = frozenset({"1", "true", "yes", "y", "on", "checked"})
_FALSE = frozenset({"", "0", "false", "no", "n", "off", "unchecked", "null", "none"})


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


#: an identifier as text (Google and Meta ids are int64): see :func:`toolkit.ident`
text_id = tk.ident


def flag(value: Any, field: str) -> bool:
    """A tick or a yes/no in any of the encodings platforms use: booleans, 1/0, ``"1"``/``""``,
    ``"true"``/``"false"``, ``"yes"``/``"no"``; absent (None) is false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise InvalidInput("bad_value", f"{field} is not a recognisable yes/no value")


_ADDRESS_LIKE = re.compile(r"@|\d[\d\s().+-]{6,}")


def consent_answers(
    responses: Any, where: str, id_key: str, id_field: str, flag_key: str
) -> list[tuple[str, bool]]:
    """A form's consent answers (a list of objects, each a consent id and a tick) as
    ``(id, ticked)``, each id once (the last answer wins); absent is no answer.

    ``where`` names the list in messages, ``id_field`` the id."""
    if responses is None:
        return []
    if not isinstance(responses, list):
        raise InvalidInput("malformed_json", f"{where} is not a list")
    name = where.rpartition(".")[2]
    out: dict[str, bool] = {}
    for item in responses:
        if not isinstance(item, dict):
            raise InvalidInput("malformed_json", f"{name}[] is not an object")
        consent_id = text_id(item.get(id_key), id_field, required=True)
        out[consent_id or ""] = flag(item.get(flag_key), f"{name}[].{flag_key}")
    return list(out.items())


def safe_url(url: str) -> str:
    """The URL minus credentials, fragment, and query values or path segments that may hold an
    address (an ``@``, or a run of 7+ digits): proof of where, without the who."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput("bad_value", "source URL is not a URL") from None
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _ADDRESS_LIKE.search(v) and not _ADDRESS_LIKE.search(k)
    ]
    path = "/".join(
        "-" if _ADDRESS_LIKE.search(unquote(segment)) else segment
        for segment in parts.path.split("/")
    )
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, path, urlencode(query), ""))


#: options checked at start (kept here for the lead connectors that import them)
mapping_option = tk.mapping_option
check_options = tk.check_options


def lead_events(
    emit: tk.Emitter,
    lead_id: str | None,
    addresses: Iterable[LeadAddress],
    occurred: int,
    *,
    policy: ChannelPolicy,
    consents: Sequence[tuple[str, bool]],
    proof: Proof,
    attributes: Mapping[str, Scalar],
    campaign_id: str | None,
    form_id: str | None,
    source_event_type: str,
    is_test: bool = False,
    consent_attributes: Mapping[str, Scalar] | None = None,
    keyed_consents: bool = True,
) -> tk.Output:
    """The events of one lead: a LEAD_DELIVERED use per address, and per address the
    grant or refusal of each (consent id, ticked) on the channels that address can carry.
    Ids come from the lead id, the address key and the consent id (``keyed_consents``)."""
    out = tk.Output()
    for lead_address in addresses:
        addr, kind = lead_address.address, lead_address.kind
        out.usage.append(
            emit.usage(
                ("lead", lead_id, addr.key),
                UsageKind.LEAD_DELIVERED,
                addr,
                occurred,
                role=None,
                channel=policy.usage_channel(kind),
                campaign_id=campaign_id,
                form_id=form_id,
                source_event_type=source_event_type,
                is_test=is_test,
                attributes=attributes,
            )
        )
        for consent_id, ticked in consents:
            channels = policy.consent_channels(kind, consent_id)
            if not channels:
                continue
            purpose = emit.connector.purpose(consent_id)
            dedupe = ("consent", lead_id, addr.key, *([consent_id] if keyed_consents else []))
            out.consent.append(
                emit.consent(
                    dedupe,
                    ConsentAction.GRANT if ticked else ConsentAction.REFUSE,
                    addr,
                    occurred,
                    role=None,
                    channels=channels,
                    purposes=[purpose] if purpose else [],
                    unmapped=[] if purpose else [consent_id],
                    scope=consent_id,
                    proof=proof,
                    attributes=consent_attributes or attributes,
                )
            )
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class LeadAddress:
    """One address of a lead: its key and hint, and whether it is an e-mail or a phone."""

    address: tk.Address
    kind: str  # "email" | "phone"


class ChannelPolicy:
    """Which channels a consent covers for one address, from instance options:

    - ``phone_channel`` (default ``sms``): the channel of a phone address in usage events and,
      unless configured otherwise, in its consent events.
    Configuration problems are appended to ``problems`` (see ``check_options``).

    - ``consent_channels``: vendor consent id (checkbox key, consent id, form id, purpose) ->
      channel or list of channels. A consent configured for e-mail only yields no event for the
      lead's phone, and the reverse.
    """

    def __init__(self, instance: tk.Instance, problems: list[str]) -> None:
        self.phone_channel = _channel(instance.options.get("phone_channel", "sms"), problems)
        if self.phone_channel is not None and self.phone_channel not in PHONE_CHANNELS:
            problems.append("phone_channel must be one of sms, phone, whatsapp, rcs")
        self.configured: dict[str, list[Channel]] = {}
        raw = instance.options.get("consent_channels") or {}
        if not isinstance(raw, Mapping):
            problems.append("consent_channels must map a consent id to channels")
            raw = {}
        for key, value in raw.items():
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, Iterable):
                problems.append(f"consent_channels[{key!r}] must be a channel or a list")
                continue
            channels = [_channel(v, problems) for v in values]
            self.configured[str(key)] = [c for c in channels if c is not None]

    def usage_channel(self, kind: str) -> Channel:
        return Channel.EMAIL if kind == "email" else self.phone_channel or Channel.SMS

    def consent_channels(
        self, kind: str, consent_id: str | None, given: Iterable[Channel] | None = None
    ) -> list[Channel]:
        """Channels for an address of ``kind``: those ``given`` (the payload's), else those
        configured for ``consent_id``, else the address's usage channel; restricted to what
        the address can carry. Empty means: this consent says nothing for this address."""
        chosen = list(given) if given is not None else self.configured.get(consent_id or "")
        if chosen is None:
            return [self.usage_channel(kind)]
        fits = {Channel.EMAIL} if kind == "email" else PHONE_CHANNELS
        return [c for c in dict.fromkeys(chosen) if c in fits]


def lead_options(consent_doc: str, test_doc: str = "") -> tuple[tk.ConfigField, ...]:
    """The options of :class:`ChannelPolicy` (``consent_doc``: what a consent id is on this
    platform) and, with ``test_doc``, ``ingest_test_leads`` (see
    :meth:`LeadConnector.skip_test`)."""
    test = (tk.option("ingest_test_leads", "yes/no", test_doc, False),) if test_doc else ()
    return (
        tk.option("consent_channels", "mapping", f"{consent_doc} -> channel(s)", {}),
        tk.option("phone_channel", "text", "channel of phone addresses", "sms"),
        *test,
    )


class LeadConnector(tk.Connector):
    """A lead generator: its options checked at start with every problem listed, the
    channels of each address from a :class:`ChannelPolicy` (``self.channels``)."""

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        problems: list[str] = []
        self.channels = ChannelPolicy(instance, problems)
        self.configure(problems)
        check_options(instance, problems)

    def configure(self, problems: list[str]) -> None:
        """Read the connector's own options, noting each problem in ``problems``."""

    def skip_test(self, is_test: bool) -> bool:
        """A test lead is dropped unless the option ``ingest_test_leads`` is set."""
        return is_test and not self.instance.options.get("ingest_test_leads", False)

    def addresses(
        self,
        items: Any,
        where: str,
        pick: Callable[[dict[str, Any]], Iterable[tuple[str, Any]]],
        missing: str,
    ) -> list[LeadAddress]:
        """The lead's distinct addresses from the list of answers ``items`` (``where`` names
        it): ``pick`` gives the ``(kind, value)`` pairs of one answer (``kind`` ``email`` or
        ``phone``; nothing for names and free text, personal data dropped unread; a blank or
        non-text value is skipped). ``missing_field`` saying ``missing`` when there is none,
        ``malformed_json`` when ``items`` is not a list of objects."""
        if not isinstance(items, list):
            raise InvalidInput("missing_field", f"{where} is missing or not a list")
        out: dict[str, LeadAddress] = {}
        for item in items:
            if not isinstance(item, dict):
                raise InvalidInput("malformed_json", f"{where}[] is not an object")
            for kind, value in pick(item):
                if isinstance(value, str) and value.strip():
                    address = self.edge.address(value, kind)
                    out.setdefault(address.key, LeadAddress(address, kind))
        if not out:
            raise InvalidInput("missing_field", missing)
        return list(out.values())


def _channel(value: Any, problems: list[str]) -> Channel | None:
    try:
        return Channel(str(value).strip().lower())
    except ValueError:
        problems.append(f"{value!r} is not a channel ({', '.join(c.value for c in Channel)})")
        return None


def parse_channels(values: Any, field: str) -> list[Channel]:
    """A payload's channel list (``email``, ``sms``, ``phone``…); unknown names are bad input."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise InvalidInput("bad_value", f"{field} is not a list of channels")
    out = []
    for value in values:
        try:
            out.append(Channel(str(value).strip().lower()))
        except ValueError:
            raise InvalidInput("unknown_channel", f"{field} names an unknown channel") from None
    return out


# -- flat lead fields (lead posts and lead files) -------------------------------------

MAX_CELL = 512  # longest partner name, certificate or user agent kept


def cell_text(value: Any, field: str) -> str | None:
    """A flat lead field (a post or file cell) as text: numbers as their digits, blank is
    None; ``bad_value`` naming ``field`` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput("bad_value", f"{field} is not a text or a number")
    return str(value).strip() or None


def _cell_items(value: Any, field: str, separators: str) -> list[Any]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = loads(text)
        else:
            return [v for v in re.split(f"[{re.escape(separators)}]", text) if v.strip()]
    if not isinstance(value, list):
        raise InvalidInput("bad_value", f"{field} is not a list")
    return value


def cell_names(value: Any, field: str) -> list[str]:
    """Partner or buyer names: strings, or objects with an ``id`` or ``name`` (a list, a JSON
    array text, or a text split on ``|`` or ``;``), each cut to :data:`MAX_CELL`."""
    if value is None:
        return []
    out = []
    for item in _cell_items(value, field, "|;"):
        if isinstance(item, dict):
            item = item.get("id") or item.get("name")
        name = cell_text(item, f"{field}[]")
        if name:
            out.append(name[:MAX_CELL])
    return out


def cell_keys(value: Any, field: str) -> list[str]:
    """Purpose or channel keys: a list, a JSON array text, or a text split on ``|;,``."""
    return [k for k in (cell_text(v, f"{field}[]") for v in _cell_items(value, field, "|;,")) if k]
