"""What the e-mail connectors share (mailchimp, mandrill, brevo, sendgrid, mailjet,
one_click): field access that never crashes on wrong types, hashes, purposes and
unsigned-platform credentials. Events, times, secrets and JSON bodies come from the toolkit.

Nothing here keeps or prints an address: addresses go straight to ``Edge.address``, and
every error message names the field, never its value.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import (
    AuthenticationFailed,
    basic_auth_header,
    verify_basic_auth,
    verify_header_token,
    verify_shared_token,
)
from consentinel.streams.events.codec import loads
from consentinel.streams.events.errors import InvalidInput

_MAX_ATTR = 256  # longest attribute text kept; vendor strings can be huge
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: an IPv4 address already in its normal form (what ``str(ip_address(...))`` writes)
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)

# -- JSON and fields ---------------------------------------------------------------------


def objects(value: Any, what: str, *, allow_single: bool) -> list[dict[str, Any]]:
    """A JSON array of objects (or, with ``allow_single``, one bare object)."""
    if allow_single and isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        expected = "an object or an array of objects" if allow_single else "an array of objects"
        raise InvalidInput("malformed_json", f"{what} is not {expected}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidInput("malformed_json", f"{what}[{i}] is not an object")
    return value


def text(obj: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> str | None:
    """A string field, stripped; None when absent or blank (``missing_field`` if required)."""
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("missing_field", f"{field} is missing")
        return None
    if not isinstance(value, str):
        raise InvalidInput("bad_value", f"{field} is not a string")
    return value.strip()


def ident(obj: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> str | None:
    """``obj[key]`` as an identifier (see :func:`toolkit.ident`)."""
    return tk.ident(obj.get(key), field, required=required)


def sub(obj: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> dict[str, Any]:
    """A nested object (empty when absent, unless ``required``)."""
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidInput("missing_field", f"{field} is missing")
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("bad_value", f"{field} is not an object")
    return value


def strings(value: Any) -> list[str]:
    """Tags or categories: a string or a list of strings (other items are dropped)."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def id_list(value: Any, field: str) -> list[str]:
    """List ids in every form platforms use: ``[12, 31]``, ``12``, ``"12"``, ``"12,31"``."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise InvalidInput("bad_value", f"{field} is not a list id or a list of list ids")
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    return list(dict.fromkeys(out))


def email(edge: tk.Edge, value: Any, field: str) -> tk.Address:
    """Key an e-mail address; ``missing_field`` when absent, ``bad_email`` when not one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput("missing_field", f"{field} is missing")
    if not isinstance(value, str):
        raise InvalidInput("bad_email", f"{field} is not a string")
    return edge.address(value, "email")


def attr_text(value: str | None) -> str | None:
    return None if value is None else value[:_MAX_ATTR]


# -- times -------------------------------------------------------------------------------


# -- hashes, URLs ------------------------------------------------------------------------


def ip_hash(value: Any) -> str | None:
    """sha256 hex of a normalized IP address; None for anything that is not one."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _CANONICAL_IPV4.fullmatch(text) is None:  # anything else: parsed, then normalized
        try:
            text = str(ipaddress.ip_address(text))
        except ValueError:
            return None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def url_host(value: Any) -> str | None:
    """Only the host of a clicked URL: paths and queries may carry an address."""
    if not isinstance(value, str):
        return None
    try:
        host = urlsplit(value.strip()).hostname
    except ValueError:
        return None
    return host[:_MAX_ATTR] if host else None


def sender_address(value: Any) -> str | None:
    """The sending DOMAIN of a sender address (``news@shop.example.com`` -> ``shop.example.com``).

    A From address is an address like any other (``jean.dupont@…`` is a person), so it never
    leaves the connector; the domain is what a declaration names (``sender: shop.example.com``).
    """
    if not isinstance(value, str) or "@" not in value or len(value) > _MAX_ATTR:
        return None
    return tk.sending_domain(value)


# -- purposes ----------------------------------------------------------------------------


def purposes(connector: tk.Connector, vendor_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(canonical purposes, unmapped vendor ids): never a guess; unmapped fails closed."""
    return tk.map_purposes(connector, vendor_ids)


def declared_purpose(connector: tk.Connector, vendor_purpose: str | None) -> str | None:
    """A sender-declared purpose (metadata, custom args) mapped to a canonical key."""
    return connector.purpose(vendor_purpose) if vendor_purpose else None


def metadata_purpose(value: Any, key: str) -> str | None:
    """``key`` of a metadata object, or of a JSON object given as a string."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = loads(value)
        except InvalidInput:
            return None
    if isinstance(value, dict):
        found = value.get(key)
        if isinstance(found, str) and found.strip():
            return found.strip()[:_MAX_ATTR]
    return None


# -- secrets and unsigned platforms ------------------------------------------------------


def path_token(request: tk.Request) -> str | None:
    """The last non-empty segment of the request path (``/hooks/mailchimp/<token>``)."""
    path = request.path or urlsplit(request.url).path
    segments = [s for s in path.split("/") if s]
    return segments[-1] if segments else None


def verify_unsigned(request: tk.Request, instance: tk.Instance, secret: str = "token") -> None:
    """Authenticate a platform that signs nothing, by the shared secret wherever it is:

    - ``Authorization: Basic`` (credentials embedded in the callback URL): user name = the
      ``basic_user`` option (default ``consentinel``), password = the secret;
    - ``Authorization: Bearer <secret>`` (a token configured on the webhook);
    - otherwise the URL: query parameter ``token``, else the last path segment.

    When an Authorization header is present it decides alone.
    """
    tokens = tk.secrets(instance, secret)
    authorization = (request.header("authorization") or "").strip()
    if authorization:
        kind = authorization.partition(" ")[0].lower()
        if kind == "basic":
            verify_basic_auth(basic_user(instance), tokens, request.headers)
            return
        if kind == "bearer":
            verify_header_token(tokens, request.headers)
            return
        raise AuthenticationFailed(
            "malformed_credentials",
            "the Authorization header is neither Basic nor Bearer",
            scheme="token",
        )
    presented = request.param("token")
    name = "'token' URL parameter"
    if presented is None:
        presented, name = path_token(request), "token in the URL path"
    verify_shared_token(tokens, presented, name=name)


def basic_user(instance: tk.Instance) -> str:
    return str(instance.options.get("basic_user") or "consentinel")


def sign_unsigned(
    request: tk.Request, instance: tk.Instance, *, default_mode: str, secret: str = "token"
) -> tk.Request:
    """Put the secret where the platform would: ``auth`` option ``url`` (query ``token``),
    ``basic`` (the header a client sends for ``https://user:pass@host``) or ``bearer``."""
    mode = str(instance.options.get("auth") or default_mode)
    token = instance.secret(secret).decode("utf-8")
    if mode == "basic":
        return request.with_headers(
            {"authorization": basic_auth_header(basic_user(instance), token)}
        )
    if mode == "bearer":
        return request.with_headers({"authorization": f"Bearer {token}"})
    return request.with_query({"token": token})


# -- events ------------------------------------------------------------------------------


def unsigned_schema(
    platform: str, *, token_doc: str, default_auth: str, purpose_doc: str
) -> tuple[tk.ConfigField, ...]:
    """The options of a platform that signs nothing (Brevo, Mailjet): the shared token
    (and its previous value while rotating), where it travels, the account, the purpose key."""
    return (
        *tk.rotating_secret("token", f"shared secret: {token_doc}"),
        tk.option(
            "basic_user",
            "text",
            "user name of Basic credentials in the callback URL",
            "consentinel",
        ),
        tk.option(
            "auth", "text", "where sign() puts the token: url, basic or bearer", default_auth
        ),
        tk.option("account", "text", f"the {platform} account, reported as sender"),
        tk.option("purpose_key", "text", f"{purpose_doc} holding the sender's purpose", "purpose"),
    )


class UnsignedBatchConnector(tk.Connector):
    """An e-mail platform that signs nothing and posts one event or an array of them:
    verified by the shared token (see :func:`verify_unsigned`), mapped item by item."""

    def verify(self, request: tk.Request) -> None:
        """Raises ``AuthenticationFailed`` unless the request carries the shared token."""
        verify_unsigned(request, self.instance)

    def map_request(self, request: tk.Request) -> tk.Output:
        """A bare object is one event (refused whole); an array is mapped item by item."""
        body = tk.json_body(request.body, "the body")
        emit = tk.Emitter(self, tk.received_ms(request))
        single = not isinstance(body, list) or len(body) == 1
        return tk.map_batch(
            body,
            "the body",
            lambda i, item: self._item(emit, item, "the event" if single else f"event[{i}]"),
            allow_single=True,
        )

    @abstractmethod
    def _item(self, emit: tk.Emitter, item: Mapping[str, Any], where: str) -> tk.Output:
        """One platform event; raises ``InvalidInput`` naming ``where``."""
