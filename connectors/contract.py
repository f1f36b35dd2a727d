"""The connector contract: what a connector declares, and what it does.

A connector turns one platform's reports into canonical events. It is pure: it is given
the raw request (or a file row) and returns events; it never talks to Kafka, never logs
an address, never blocks on I/O. The runtime (``runtime/``) does the I/O: it reads the
raw body once, calls the methods below in this order, produces with acks=all and answers
the platform only after Kafka acknowledged.

    handshake(request)  -> Response | None   platform verification requests (Meta
                                             hub.challenge, Mailchimp GET, Mandrill HEAD,
                                             LinkedIn challengeCode). Must not raise for
                                             ordinary requests: return None.
    verify(request)     -> None              authenticate with the platform's own scheme,
                                             constant-time. Raises AuthenticationFailed
                                             (401, counted, nothing produced).
    map_request(request)-> Output            parse and map. Raises InvalidInput with a
                                             reason code (4xx, payload to dead letters).
    map_row(row)        -> Output            a file-import row (CSV/JSONL), same rules.

Addresses are turned into subject keys and masked hints only through ``Edge.address``;
a connector never puts a raw address into an event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from consentinel.connectors.auth.errors import AuthConfigError, AuthenticationFailed
from consentinel.streams.events import clock
from consentinel.streams.events.errors import ConsentinelError, InvalidInput
from consentinel.streams.events.identity import Pseudonymizer, mask, normalize
from consentinel.streams.events.records import ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Secret


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One entry of a connector's configuration schema.

    ``kind`` is the option's declared type, one of ``OPTION_KINDS`` (``text``, ``number``,
    ``yes/no``, ``mapping``, ``list``); ``connectors show`` and connectors/REFERENCE.md print
    it. A secret needs none (it is given by reference). Left empty, the reference says the
    type is not declared.
    """

    name: str
    doc: str
    required: bool = False
    secret: bool = False  # given by reference (env:NAME or file:PATH), never printed
    default: Any = None
    kind: str = ""

    def __post_init__(self) -> None:
        if self.kind and self.kind not in OPTION_KINDS:
            raise ValueError(
                f"option {self.name!r}: kind {self.kind!r} is not one of {', '.join(OPTION_KINDS)}"
            )

    @property
    def kind_words(self) -> str:
        """What the reference prints in the option's ``kind`` column."""
        if self.secret:
            return "secret (env:NAME or file:PATH)"
        return self.kind or "(not declared)"


#: the option types a ``ConfigField`` may declare
OPTION_KINDS = ("text", "number", "yes/no", "mapping", "list")


@dataclass(frozen=True, slots=True)
class Request:
    """An inbound HTTP request as the platform sent it. ``body`` is the exact raw bytes.

    ``url`` is the URL the platform called (scheme, host, path and query), rebuilt from
    the instance's ``public_url`` when the server sits behind a proxy: several platforms
    sign it. ``path`` is the part of the path after ``/hooks/<instance>`` ("/" when
    nothing follows; platforms that put a secret in the path find it there) and ``query``
    the parsed query string (blank values kept). Header names are lowercase.
    """

    method: str
    url: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    remote: str = ""
    received_at_ms: int = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded (blank values kept).

        Raises ``InvalidInput`` ``bad_encoding`` when the body, or a percent-escaped value
        in it, is not UTF-8: never turned into U+FFFD (it would reach a hint)."""
        try:
            text = self.body.decode("utf-8")
            return parse_qs(text, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise InvalidInput("bad_encoding", "form body is not UTF-8") from None

    def with_headers(self, headers: Mapping[str, str]) -> Request:
        """This request with ``headers`` added or replaced (names lowercased). Pure."""
        merged = {**self.headers, **{k.lower(): v for k, v in headers.items()}}
        return replace(self, headers=merged)

    def with_query(self, params: Mapping[str, str]) -> Request:
        """This request with query parameters set in both ``url`` and ``query`` (any of the
        same name replaced, the others kept in order). Pure."""
        parts = urlsplit(self.url)
        pairs = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params
        ]
        pairs.extend(params.items())
        query: dict[str, list[str]] = {}
        for k, v in pairs:
            query.setdefault(k, []).append(v)
        return replace(self, url=urlunsplit(parts._replace(query=urlencode(pairs))), query=query)

    def with_body(self, body: bytes) -> Request:
        """This request with another body (``content-length`` kept in step when present)."""
        headers = dict(self.headers)
        if "content-length" in headers:
            headers["content-length"] = str(len(body))
        return replace(self, body=body, headers=headers)


@dataclass(frozen=True, slots=True)
class Response:
    """A direct answer to a handshake (no event produced)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    #: extra response headers (e.g. ``cache-control: no-store`` on a token)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ItemRejected:
    """One item of a batch that could not be taken in; the rest of the batch is.

    The runtime dead-letters ``raw`` (the item alone, sealed) with ``code``, ``message``
    and ``index`` (its position in the platform's array) and still answers 2xx, so a
    platform that retries whole batches does not drop the good items with the bad one.
    """

    index: int
    code: str  # machine-readable reason, as InvalidInput.code
    message: str  # one sentence for a person; never an address
    raw: bytes  # the item as received (re-encoded by the codec when it was parsed)


@dataclass(slots=True)
class Output:
    """What one request or row becomes: canonical events, in order, and the items of a
    batch that were refused one by one (``rejected``)."""

    usage: list[UsageEvent] = field(default_factory=list)
    consent: list[ConsentEvent] = field(default_factory=list)
    rejected: list[ItemRejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.usage) + len(self.consent)

    def extend(self, other: Output) -> None:
        self.usage.extend(other.usage)
        self.consent.extend(other.consent)
        self.rejected.extend(other.rejected)


@dataclass(frozen=True, slots=True)
class Address:
    """An address as it may leave the connector: key and hint, never the raw form."""

    key: str
    hint: str


@dataclass(frozen=True)
class Instance:
    """One configured connector instance (an entry of the connectors YAML file)."""

    name: str  # instance name: the ``source`` of its events, a metric label
    type: str  # connector type (registry name)
    controller: str  # who uses the addresses (the tenant's legal entity)
    tenant: str = ""
    default_region: str = "FR"
    purpose_map: Mapping[str, str] = field(default_factory=dict)  # vendor purpose -> canonical
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    public_url: str = ""  # base URL the platform calls, for signed-URL schemes

    def secret(self, name: str) -> bytes:
        try:
            return self.secrets[name].reveal()
        except KeyError:
            raise ConsentinelError(
                f"instance {self.name!r}: secret {name!r} is not configured"
            ) from None


def sending_domain(sender: str | None) -> str | None:
    """What a sender may leave the connector as: a From address as its domain only
    (``news@shop.example.com`` -> ``shop.example.com``; it may name a person); a full
    telephone number (a long code: it may be a person's own mobile) as its masked hint
    (``+1 5** * ** ** 06``); sender ids, short codes and account names unchanged."""
    if not sender:
        return sender
    if "@" in sender:
        return sender.strip().lower().rpartition("@")[2].strip(" >") or None
    bare = sender.strip()
    for prefix in ("whatsapp:", "rcs:", "tel:", "sms:"):
        if bare.lower().startswith(prefix):
            bare = bare[len(prefix) :]
    digits = "".join(ch for ch in bare if ch not in " -.()")
    if len(digits.lstrip("+")) >= _LONG_CODE_DIGITS and digits.lstrip("+").isdigit():
        return mask("+" + digits.lstrip("+"), "phone")
    return sender


_LONG_CODE_DIGITS = 7  # short codes have at most 6 digits; anything longer is a phone number


class Edge:
    """What a connector may do with an address: normalize, pseudonymize, mask."""

    __slots__ = ("_pseudo", "default_region")

    def __init__(self, pseudonymizer: Pseudonymizer, default_region: str = "FR") -> None:
        self._pseudo = pseudonymizer
        self.default_region = default_region

    def address(self, raw: str, channel: str, region: str | None = None) -> Address:
        """Normalize (``InvalidInput`` ``bad_email``/``bad_phone`` when it cannot) and key."""
        normalized = normalize(
            raw, "email" if channel == "email" else "phone", region or self.default_region
        )
        return Address(
            self._pseudo.subject_key(normalized),
            mask(normalized, "email" if channel == "email" else "phone"),
        )

    @staticmethod
    def now_ms() -> int:
        """The one clock (``consentinel.streams.events.clock.now_ms``)."""
        return clock.now_ms()


class Connector(ABC):
    """Base class of every connector; subclasses declare the class attributes."""

    #: registry name, e.g. "mandrill"
    name: ClassVar[str]
    #: one line for ``consentinel connectors list``
    title: ClassVar[str]
    #: what it produces: "usage", "consent" or "usage+consent"
    produces: ClassVar[str]
    #: the authentication scheme, in words (e.g. "HMAC-SHA1 of URL + sorted params")
    auth: ClassVar[str]
    #: configuration schema (options and secrets)
    config_schema: ClassVar[tuple[ConfigField, ...]] = ()
    #: the platform event types it accepts (as the platform names them), for the reference
    events: ClassVar[tuple[str, ...]] = ()
    #: where an event's time (``occurred_at_ms``) comes from, in words
    event_time: ClassVar[str] = ""
    #: what to answer when the event cannot be kept at all (Kafka away AND the ingest spool
    #: full): the status this platform retries. 503 by default; 429 for platforms that drop
    #: a webhook answered with any 5xx (Brevo).
    busy_status: ClassVar[int] = 503

    def __init__(self, instance: Instance, edge: Edge) -> None:
        self.instance = instance
        self.edge = edge

    def handshake(self, request: Request) -> Response | None:
        """Answer a platform's verification request, or None for ordinary requests."""
        return None

    @abstractmethod
    def verify(self, request: Request) -> None:
        """Authenticate; raise ``AuthenticationFailed``. Constant-time comparisons only."""

    @abstractmethod
    def map_request(self, request: Request) -> Output:
        """Parse and map a verified request; raise ``InvalidInput`` with a reason code."""

    def map_row(self, row: Mapping[str, Any]) -> Output:
        """Map one file-import row (CSV columns or a JSONL object)."""
        raise InvalidInput("not_importable", f"connector {self.name!r} does not import files")

    def purpose(self, vendor_purpose: str) -> str | None:
        """The canonical purpose for a vendor purpose id, or None (fails closed upstream)."""
        return self.instance.purpose_map.get(vendor_purpose)


__all__ = [
    "Address",
    "AuthConfigError",
    "AuthenticationFailed",
    "ConfigField",
    "Connector",
    "Edge",
    "Instance",
    "Output",
    "Request",
    "Response",
    "sending_domain",
]
