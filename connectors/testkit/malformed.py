"""Malformed inputs: bodies a connector must refuse cleanly (InvalidInput with a short
code, never a crash, never an address in the message)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import (
    urlencode,
)

from consentinel.connectors.contract import (
    AuthenticationFailed,
    Connector,
    Instance,
    Request,
    Response,
)
from consentinel.connectors.testkit.case import (
    all_events,
)
from consentinel.connectors.testkit.privacy import (
    _CODE_RE,
    _EMAIL_RE,
    _PHONE_RE,
    address_forms,
    assert_no_raw_address,
    assert_valid_events,
)
from consentinel.connectors.testkit.tamper import (
    _form_pairs,
)
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

# -- malformed inputs --------------------------------------------------------------------

_ODD = "\u202e\u0000\ufeff\U0001f4e7e\u0301\u200b" * 3


def _mutate_json(value: Any) -> Iterator[tuple[str, Any]]:
    """Authentic-looking JSON with wrong types, missing addresses, huge and odd values."""
    yield "wrong_types_numbers", _map_leaves(value, lambda v: 12345 if isinstance(v, str) else v)
    yield "wrong_types_strings", _map_leaves(value, lambda v: "x" if not isinstance(v, str) else v)
    yield "wrong_types_containers", _map_leaves(value, lambda v: [v] if v is not None else {})
    yield "nulls", _map_leaves(value, lambda v: None)
    yield (
        "no_addresses",
        _map_leaves(value, lambda v: "" if isinstance(v, str) and _looks_like_address(v) else v),
    )
    yield (
        "bad_addresses",
        _map_leaves(
            value,
            lambda v: "not-an-address" if isinstance(v, str) and _looks_like_address(v) else v,
        ),
    )
    yield "odd_unicode", _map_leaves(value, lambda v: v + _ODD if isinstance(v, str) else v)
    yield "huge_values", _map_leaves(value, lambda v: v * 500 if isinstance(v, str) else v)
    yield "empty_object", {}
    yield "empty_array", []
    yield "wrapped_in_array", [value, value] if not isinstance(value, list) else [value]
    yield "scalar", "just a string"


def _looks_like_address(text: str) -> bool:
    return bool(_EMAIL_RE.search(text) or _PHONE_RE.search(text) or re.fullmatch(r"\d{8,15}", text))


def _map_leaves(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _map_leaves(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(v, fn) for v in value]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            inner = codec.loads(value)
        except InvalidInput:
            return fn(value)
        return codec.dumps(_map_leaves(inner, fn)).decode("utf-8")
    return fn(value)


def malformed_bodies(
    sample: Request, extra: tuple[bytes, ...] = ()
) -> list[tuple[str, bytes, bool]]:
    """(name, body, strict) for one sample; strict = must be InvalidInput or no events."""
    body = sample.body
    out: list[tuple[str, bytes, bool]] = [
        ("empty", b"", True),
        ("garbage_bytes", b"\xff\xfe\x00\x9c garbage \xed\xa0\x80\xc3", True),
        ("utf16", '{"a": 1}'.encode("utf-16"), True),
    ]
    try:
        parsed: Any = codec.loads(body) if body else None
        is_json = body[:1] in (b"{", b"[")
    except InvalidInput:
        parsed, is_json = None, False
    pairs = _form_pairs(sample)
    if is_json:
        trimmed = body.rstrip()
        for cut in (1, len(trimmed) // 2, len(trimmed) - 1):
            out.append((f"truncated_json_{cut}", trimmed[:cut], True))
        for name, value in _mutate_json(parsed):
            out.append((name, codec.dumps(value), False))
        out.append(("json_null", b"null", True))
    elif pairs is not None:
        out.append(("truncated_form", body[: len(body) // 2], False))
        out.append(("bad_percent", b"a=%ZZ&%&=&&type=%FF%FE", False))
        out.append(("form_no_fields", b"unrelated=1", False))
        keys = [k for k, _ in pairs]
        as_obj = dict(pairs)
        for name, value in _mutate_json(as_obj):
            if isinstance(value, dict):
                flat = [
                    (k, v if isinstance(v, str) else codec.dumps(v).decode())
                    for k, v in value.items()
                ]
                out.append((f"form_{name}", urlencode(flat).encode("utf-8"), False))
        out.append(("form_keys_only", "&".join(keys).encode("utf-8"), False))
    else:
        out.append(("truncated", body[: len(body) // 2], False))
        out.append(("odd_unicode", body + _ODD.encode("utf-8"), False))
    out.append(("huge_garbage", b"\x00" + b"\xff" * 1_000_000, True))
    for i, raw in enumerate(extra):
        out.append((f"case_malformed_{i}", raw, False))
    return out


def _outcome(
    connector: Connector, request: Request, strict: bool, addresses: set[str], inst: Instance
) -> str:
    """Run one authentic malformed request; return the outcome or raise AssertionError."""
    try:
        hs = connector.handshake(request)
        if hs is not None:
            assert isinstance(hs, Response), "handshake must return a Response or None"
            return "handshake"
        connector.verify(request)
        output = connector.map_request(request)
    except AuthenticationFailed:
        return "unauthenticated"
    except InvalidInput as exc:
        assert isinstance(exc.code, str) and _CODE_RE.fullmatch(exc.code), (
            f"InvalidInput code {exc.code!r} is not a short machine code"
        )
        assert exc.message, "InvalidInput without a message"
        lowered = str(exc.message).lower()
        for raw in addresses:
            for form in address_forms(raw, inst.default_region):
                assert form.lower() not in lowered, "an InvalidInput message repeats an address"
        return f"invalid:{exc.code}"
    except Exception as exc:
        raise AssertionError(
            f"malformed input raised {type(exc).__name__} ({exc}); a connector must raise "
            f"InvalidInput with a reason code for input it cannot take"
        ) from exc
    assert_valid_events(output, inst)
    if strict:
        assert len(output) == 0, (
            f"undecodable input produced {len(output)} event(s); expected InvalidInput"
        )
    assert_no_raw_address(all_events(output), addresses, inst.default_region)
    return f"events:{len(output)}"
