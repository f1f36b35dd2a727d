"""Tampering: find where a request carries its signature or secret, and forge it."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import (
    parse_qsl,
    urlencode,
    urlsplit,
    urlunsplit,
)

from consentinel.connectors.contract import (
    Request,
)
from consentinel.connectors.testkit.case import (
    with_body,
    with_url,
)
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

# -- tampering ---------------------------------------------------------------------------

_SIG_HEADER = re.compile(r"signature|^authorization$|token|(^|-)sig$|hmac|api-key|secret", re.I)
_SIG_PARAMS = ("sig", "signature", "token", "key", "secret", "auth", "google_key")


def _flip(text: str, at: int | None = None) -> str:
    """Change one alphanumeric character (the last one, or the one nearest ``at``)."""
    positions = [i for i, ch in enumerate(text) if ch.isalnum() and ch.isascii()]
    if not positions:
        return text + "x" if text else "x"
    i = positions[-1] if at is None else min(positions, key=lambda p: abs(p - at))
    ch = text[i]
    swap = {"z": "y", "Z": "Y", "9": "8"}.get(ch, chr(ord(ch) + 1))
    return text[:i] + swap + text[i + 1 :]


def _flip_bytes(body: bytes) -> bytes:
    return _flip(body.decode("latin-1"), len(body) // 2).encode("latin-1")


def _form_pairs(request: Request) -> list[tuple[str, str]] | None:
    ctype = (request.header("content-type") or "").lower()
    if "form" not in ctype:
        return None
    try:
        return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None


def _find_header(request: Request, pattern: re.Pattern[str]) -> str | None:
    for name in request.headers:
        if pattern.search(name):
            return str(name)
    return None


def locate_signature(request: Request) -> str | None:
    """Where a request carries its signature or secret, in ``signed_parts`` notation."""
    header = _find_header(request, _SIG_HEADER)
    if header:
        return f"header:{header}"
    if urlsplit(request.url).password:
        return "url"
    for name in _SIG_PARAMS:
        if name in request.query:
            return f"query:{name}"
    pairs = _form_pairs(request)
    if pairs:
        names = {k for k, _ in pairs}
        for name in _SIG_PARAMS:
            if name in names:
                return f"form:{name}"
    try:
        obj = codec.loads(request.body)
    except InvalidInput:
        obj = None
    if isinstance(obj, dict):
        for name in _SIG_PARAMS:
            if isinstance(obj.get(name), str):
                return f"json:{name}"
    return None


def _resolve(part: str, request: Request) -> str:
    if part == "timestamp":
        found = _find_header(request, re.compile("timestamp", re.I))
        if not found:
            raise AssertionError("signed part 'timestamp': no header named *timestamp* found")
        return f"header:{found}"
    return part


def tamper(request: Request, part: str, *, remove: bool = False) -> Request:
    """The request with one character of ``part`` changed (or ``part`` removed)."""
    part = _resolve(part, request)
    kind, _, name = part.partition(":")
    if kind == "body":
        return with_body(request, b"" if remove else _flip_bytes(request.body))
    if kind == "url":
        url = request.url
        parts = urlsplit(url)
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            netloc = host if remove else f"{parts.username}:{_flip(parts.password)}@{host}"
            return with_url(request, urlunsplit(parts._replace(netloc=netloc)))
        return with_url(request, _flip(url))
    if kind == "header":
        headers = {k: v for k, v in request.headers.items() if k != name.lower()}
        if not remove:
            value = request.headers.get(name.lower())
            if value is None:
                raise AssertionError(f"signed part {part!r}: the sample has no such header")
            headers[name.lower()] = _flip(value, len(value) // 2)
        return dataclasses.replace(request, headers=headers)
    if kind == "query":
        parts = urlsplit(request.url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if name not in {k for k, _ in pairs}:
            raise AssertionError(f"signed part {part!r}: the sample URL has no such parameter")
        pairs = [(k, v) for k, v in pairs if not (remove and k == name)]
        pairs = [(k, _flip(v, len(v) // 2) if k == name else v) for k, v in pairs]
        return with_url(request, urlunsplit(parts._replace(query=urlencode(pairs))))
    if kind == "form":
        pairs = _form_pairs(request) or []
        if name not in {k for k, _ in pairs}:
            raise AssertionError(f"signed part {part!r}: the sample form has no such field")
        pairs = [(k, v) for k, v in pairs if not (remove and k == name)]
        pairs = [(k, _flip(v, len(v) // 2) if k == name else v) for k, v in pairs]
        return with_body(request, urlencode(pairs).encode("utf-8"))
    if kind == "json":
        obj = codec.loads(request.body)
        if remove:
            obj.pop(name, None)
        else:
            obj[name] = _flip(str(obj[name]))
        return with_body(request, codec.dumps(obj))
    raise AssertionError(f"unknown signed part {part!r} (body, url, timestamp, header:, query:...)")
