"""The conformance kit: every connector passes the same tests, from one line.

    from consentinel.connectors.testkit import ConnectorCase, Sample, conformance_suite

    TestMandrillConformance = conformance_suite(mandrill_case())

``conformance_suite`` returns a pytest test class. What it checks, for every connector:

- the class declares ``name`` (= ``case.connector``), ``title``, ``produces``, ``auth``, and
  the case's instance carries every required secret of ``config_schema``;
- every valid sample: ``handshake`` returns None, ``verify`` passes, ``map_request`` gives
  exactly ``sample.usage`` usage and ``sample.consent`` consent events;
- every event round-trips through the codec, names the instance as ``source``, carries a
  64-hex subject key, a controller and plausible times;
- redelivery: mapping the same sample twice (even by a new connector object) gives the
  same event ids; ids never repeat between samples (samples must be distinct events);
- no raw address anywhere in the encoded events: every e-mail and ``+``/``00`` phone
  number found in the raw body (also URL-decoded, JSON-unescaped, lowercased, normalized,
  E.164 with and without ``+``) and every value the connector passed to ``Edge.address``.
  A business address the connector reports as ``sender`` may appear in ``sender`` only;
- tampering: a one-character change of each ``case.signed_parts`` part and of the
  signature itself fails ``verify`` with ``AuthenticationFailed``; so does a missing one;
- malformed input, re-signed with ``case.sign`` so it is authentic: empty body, garbage
  bytes, truncated JSON/form, wrong types, missing addresses, huge and odd unicode values,
  plus ``case.malformed``. Outcomes allowed (the documented decision):

    * ``InvalidInput`` with a short machine code (``[a-z0-9_.]{1,64}``) and a message that
      repeats no address from the body, or
    * ``AuthenticationFailed`` from ``verify`` (a scheme that cannot sign that body), or
    * an ``Output`` whose events are all valid (a platform batch with unusable parts may
      still yield events) — except for undecodable input (empty body, garbage bytes,
      truncated JSON), which must give ``InvalidInput`` or an empty ``Output``
      (an empty ``Output`` means "the platform legitimately sends nothing here").

    Any other exception is a failure: it would be a 500 and a lost payload.
- file rows (``case.rows``): each maps to valid events with stable ids, and an empty or
  blank row gives ``InvalidInput`` (or no events).

Part names for ``signed_parts`` and ``signature``: ``"body"``, ``"url"``,
``"timestamp"`` (the one header whose name contains ``timestamp``), ``"header:<name>"``,
``"query:<name>"``, ``"form:<name>"`` and, for ``signature`` only, ``"json:<key>"`` (a
top-level key of a JSON body). When ``signature`` is None the kit looks for it: a header
named like ``*signature*``/``authorization``/``*token*``/``*sig``, URL credentials, a
query or form parameter named ``sig``/``signature``/``token``/``key``/``secret``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import (
    parse_qs,
    parse_qsl,
    quote,
    quote_plus,
    unquote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

from consentinel.connectors.contract import (
    AuthenticationFailed,
    Connector,
    Edge,
    Instance,
    Output,
    Request,
    Response,
)
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.identity import Pseudonymizer, normalize_email, normalize_phone
from consentinel.streams.events.records import ConsentEvent, UsageEvent
from consentinel.streams.events.settings import Secret

#: The pepper of every test edge: fixed, so subject keys are reproducible in tests.
TEST_PEPPER = b"consentinel-testkit-pepper-0000"


@dataclass(frozen=True)
class Sample:
    name: str
    request: Request  # a VALID, correctly signed request (exact raw body)
    usage: int = 0  # expected number of UsageEvents
    consent: int = 0  # expected number of ConsentEvents


@dataclass(frozen=True)
class ConnectorCase:
    connector: str  # registry name, e.g. "mandrill"
    instance: Instance  # secrets as settings.Secret
    samples: tuple[Sample, ...]  # at least one
    sign: Callable[[Request, Instance], Request]  # re-sign a modified request
    malformed: tuple[bytes, ...] = ()  # extra raw bodies that must end in InvalidInput
    signed_parts: tuple[str, ...] = ("body",)  # "body", "url", "timestamp", "header:x"...
    rows: tuple[Mapping[str, Any], ...] = ()  # file-import rows, if the connector imports
    signature: str | None = None  # where the signature/secret is; None = look for it


# -- helpers for test authors ------------------------------------------------------------


class RecordingEdge(Edge):
    """An ``Edge`` that remembers every raw value a connector asked to key (tests only)."""

    def __init__(self, pseudonymizer: Pseudonymizer, default_region: str = "FR") -> None:
        super().__init__(pseudonymizer, default_region)
        self.seen: list[str] = []

    def address(self, raw: str, channel: str, region: str | None = None) -> Any:
        if isinstance(raw, str):
            self.seen.append(raw)
        return super().address(raw, channel, region)


def make_edge(default_region: str = "FR") -> RecordingEdge:
    """An edge with the fixed test pepper."""
    return RecordingEdge(Pseudonymizer(TEST_PEPPER), default_region)


def instance(
    connector: str,
    *,
    name: str | None = None,
    controller: str = "acme-test",
    tenant: str = "test",
    default_region: str = "FR",
    secrets: Mapping[str, str | bytes] | None = None,
    options: Mapping[str, Any] | None = None,
    purpose_map: Mapping[str, str] | None = None,
    public_url: str = "",
) -> Instance:
    """An ``Instance`` for tests, secrets given as plain text (wrapped in ``Secret``)."""
    wrapped = {
        k: Secret(v.encode("utf-8") if isinstance(v, str) else v)
        for k, v in (secrets or {}).items()
    }
    return Instance(
        name=name or f"{connector}-test",
        type=connector,
        controller=controller,
        tenant=tenant,
        default_region=default_region,
        purpose_map=dict(purpose_map or {}),
        secrets=wrapped,
        options=dict(options or {}),
        public_url=public_url,
    )


def with_body(request: Request, body: bytes) -> Request:
    """The same request with another raw body (Content-Length adjusted when present)."""
    headers = dict(request.headers)
    if "content-length" in headers:
        headers["content-length"] = str(len(body))
    return dataclasses.replace(request, body=body, headers=headers)


def with_url(request: Request, url: str) -> Request:
    """The same request with another URL; ``query`` follows it, ``path`` keeps its tail."""
    old, new = urlsplit(request.url), urlsplit(url)
    path = request.path
    if old.path != new.path and path and old.path.endswith(path):
        cut = len(old.path) - len(path)
        path = new.path[cut:] if new.path[:cut] == old.path[:cut] else path
    return dataclasses.replace(
        request, url=url, path=path, query=parse_qs(new.query, keep_blank_values=True)
    )


def build_connector(case: ConnectorCase, edge: Edge | None = None) -> Connector:
    """A fresh connector object for the case (resolved through the registry)."""
    from consentinel.connectors import registry

    return registry.connector_class(case.instance)(case.instance, edge or make_edge())


def all_events(output: Output) -> list[UsageEvent | ConsentEvent]:
    return [*output.usage, *output.consent]


# -- checks (usable on their own) --------------------------------------------------------

# bounded quantifiers: linear on huge values (no catastrophic backtracking)
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9._%+\-']{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){1,8}"
)
_PHONE_RE = re.compile(r"(?:\+|\b00)\d[\d \-().]{5,18}\d")
_CODE_RE = re.compile(r"[a-z0-9_.]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01


def _texts(body: bytes) -> list[str]:
    text = body.decode("utf-8", "replace")
    out = [text, unquote_plus(text)]
    for candidate in out[:]:
        with contextlib.suppress(Exception):
            out.extend(_json_strings(codec.loads(candidate)))
    return out


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        if value[:1] in "[{":
            with contextlib.suppress(Exception):
                yield from _json_strings(codec.loads(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)


def address_forms(raw: str, region: str = "FR") -> set[str]:
    """The ways an address may be written: as given, trimmed, lowercased, normalized."""
    forms = {raw, raw.strip(), raw.strip().lower()}
    if "@" in raw:
        with contextlib.suppress(InvalidInput):
            forms.add(normalize_email(raw))
    else:
        try:
            e164 = normalize_phone(raw, region)
            forms.update({e164, e164[1:]})
        except InvalidInput:
            pass
        digits = re.sub(r"\D", "", raw)
        if len(digits) >= 8:
            forms.add(digits)
    return {f for f in forms if len(f) >= 6}


def raw_addresses(body: bytes | str, extra: list[str] = ()) -> set[str]:  # type: ignore[assignment]
    """Every e-mail and phone-looking string in a payload, plus ``extra`` values."""
    data = body.encode("utf-8", "replace") if isinstance(body, str) else body
    found: set[str] = set(extra)
    for text in _texts(data):
        found.update(_EMAIL_RE.findall(text))
        found.update(m.group(0) for m in _PHONE_RE.finditer(text))
    return found


def assert_no_raw_address(
    events: list[UsageEvent | ConsentEvent],
    addresses: set[str],
    region: str = "FR",
    keyed: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """No form of any address in any encoded event (business sender numbers aside: a short
    code or a company's long number; a sender e-mail address leaves as its domain only)."""
    senders = {e.sender for e in events if isinstance(e, UsageEvent) and e.sender}
    for sender in senders:
        if "@" in sender:
            raise AssertionError("`sender` holds an e-mail address: keep its domain only")
        for raw in keyed:
            if sender in address_forms(raw, region):
                raise AssertionError(
                    "an address the connector keyed as a subject is also put in `sender`"
                )
    blob = "\n".join(
        codec.encode(
            dataclasses.replace(e, sender=None) if isinstance(e, UsageEvent) else e
        ).decode("utf-8")
        for e in events
    )
    lowered = blob.lower()
    for raw in addresses:
        for form in address_forms(raw, region):
            if form.lower() in lowered:
                # say which (masked) so the author can find it, never the address itself
                hint = form[:1] + "***" + form[-2:]
                raise AssertionError(
                    f"a raw address ({hint}, {len(form)} chars) appears in the encoded events"
                )


def assert_valid_events(output: Output, inst: Instance) -> None:
    """Every event round-trips through the codec and is plausible for this instance."""
    assert isinstance(output, Output), f"expected an Output, got {type(output).__name__}"
    for cls, events in ((UsageEvent, output.usage), (ConsentEvent, output.consent)):
        for event in events:
            assert isinstance(event, cls), f"{cls.__name__} list holds {type(event).__name__}"
            decoded = codec.decode(cls, codec.encode(event))
            assert decoded == event, f"{cls.__name__} {event.event_id} does not round-trip"
            assert isinstance(event.event_id, str) and event.event_id, "empty event_id"
            assert event.source == inst.name, (
                f"source is {event.source!r}, expected the instance name {inst.name!r}"
            )
            assert _HEX64.fullmatch(event.subject_key), "subject_key is not an HMAC-SHA256 hex"
            assert event.hint and "*" in event.hint, "hint is not a masked address"
            assert event.controller, "controller is empty"
            assert event.processor, "processor (the platform) is empty"
            assert _MIN_MS <= event.occurred_at_ms <= _MAX_MS, "occurred_at_ms not epoch ms"
            assert _MIN_MS <= event.received_at_ms <= _MAX_MS, "received_at_ms not epoch ms"


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


# -- the suite ---------------------------------------------------------------------------


#: one character of every class an address never holds, with the class for test ids
ODD_CHARACTERS: dict[str, str] = {
    "\x00": "Cc-nul",
    "\u200b": "Cf-zero-width-space",
    "\u202e": "Cf-rtl-override",
    "\ud800": "Cs-surrogate",
    "\ue000": "Co-private-use",
    "\u0378": "Cn-unassigned",
    "\ufffd": "replacement-character",  # noqa: F601 (not the same key as U+D800)
}


def inject(body: bytes, raw: str, char: str) -> bytes | None:
    """``body`` with ``char`` put after the first character of the address ``raw``, escaped
    as the body's format needs (JSON ``\\uXXXX`` or a form's percent escapes); None when
    the address is not found as written."""
    text = body.decode("utf-8", "replace")
    if raw in text and text.lstrip()[:1] in ("{", "["):
        escaped = "".join(f"\\u{u:04x}" for u in _utf16(char))
        return text.replace(raw, raw[:1] + escaped + raw[1:], 1).encode("utf-8")
    for encoded in (quote_plus(raw), quote(raw, safe="")):
        if encoded and encoded in text:
            try:
                extra = quote(char, safe="")
            except UnicodeEncodeError:
                extra = "%ED%A0%80"  # a surrogate as (invalid) UTF-8 bytes
            first = quote_plus(raw[:1]) if encoded == quote_plus(raw) else quote(raw[:1], safe="")
            altered = first + extra + encoded[len(first) :]
            return text.replace(encoded, altered, 1).encode("utf-8")
    return None


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def conformance_suite(case: ConnectorCase) -> type:
    """A pytest test class checking ``case`` against the connector contract."""
    import pytest

    if not case.samples:
        raise ValueError(f"ConnectorCase {case.connector!r}: give at least one sample")
    inst = case.instance
    region = inst.default_region
    samples = {s.name: s for s in case.samples}
    if len(samples) != len(case.samples):
        raise ValueError(f"ConnectorCase {case.connector!r}: sample names must be unique")
    first = case.samples[0]
    sig_part = case.signature or locate_signature(first.request)
    tamper_parts = [(p, False) for p in case.signed_parts]
    if sig_part is not None:
        tamper_parts += [(sig_part, False), (sig_part, True)]
    malformed = [
        (s.name, name, body, strict)
        for s in case.samples[:2]
        for name, body, strict in malformed_bodies(s.request, case.malformed if s is first else ())
    ]

    def mapped(sample: Sample) -> tuple[Output, RecordingEdge]:
        edge = make_edge(region)
        connector = build_connector(case, edge)
        assert connector.handshake(sample.request) is None, (
            f"handshake() answered the ordinary sample {sample.name!r}; return None for it"
        )
        connector.verify(sample.request)
        return connector.map_request(sample.request), edge

    class Suite:
        conformance_case = case

        def test_declares_itself(self) -> None:
            from consentinel.connectors import registry

            cls = registry.connector_class(inst)
            assert cls.name == case.connector, (
                f"registry gave {cls.__name__} named {cls.name!r}, expected {case.connector!r}"
            )
            assert getattr(cls, "title", ""), "declare a one-line `title`"
            assert cls.produces in ("usage", "consent", "usage+consent"), (
                "`produces` must be usage, consent or usage+consent"
            )
            assert getattr(cls, "auth", ""), "declare `auth`: the scheme in words"
            for f in cls.config_schema:
                if f.required and f.secret:
                    assert f.name in inst.secrets, f"the case instance lacks secret {f.name!r}"
                elif f.required:
                    assert f.name in inst.options, f"the case instance lacks option {f.name!r}"

        @pytest.mark.parametrize("name", list(samples))
        def test_sample_maps_to_expected_events(self, name: str) -> None:
            sample = samples[name]
            output, _ = mapped(sample)
            assert_valid_events(output, inst)
            assert (len(output.usage), len(output.consent)) == (sample.usage, sample.consent), (
                f"sample {name!r}: got {len(output.usage)} usage / {len(output.consent)} "
                f"consent events, expected {sample.usage} / {sample.consent}"
            )

        @pytest.mark.parametrize("name", list(samples))
        def test_no_raw_address_in_events(self, name: str) -> None:
            sample = samples[name]
            output, edge = mapped(sample)
            found = raw_addresses(
                sample.request.body + b"\n" + sample.request.url.encode("utf-8"), edge.seen
            )
            assert_no_raw_address(all_events(output), found, region, set(edge.seen))

        @pytest.mark.parametrize("name", list(samples))
        def test_redelivery_gives_same_ids(self, name: str) -> None:
            sample = samples[name]
            one, _ = mapped(sample)
            two, _ = mapped(sample)
            assert [e.event_id for e in all_events(one)] == [e.event_id for e in all_events(two)]

        @pytest.mark.parametrize("name", list(samples))
        def test_redelivery_with_a_new_signature_gives_same_ids(self, name: str) -> None:
            # a platform's retry: the same event, delivered later, signed again
            sample = samples[name]
            one, _ = mapped(sample)
            later = dataclasses.replace(
                sample.request, received_at_ms=(sample.request.received_at_ms or 0) + 61_000
            )
            two, _ = mapped(Sample(name, case.sign(later, inst)))
            assert [e.event_id for e in all_events(one)] == [e.event_id for e in all_events(two)], (
                f"sample {name!r}: a redelivery got other event ids; build ids from the "
                f"platform's own event identity only, never from delivery time or headers"
            )

        @pytest.mark.parametrize("char", list(ODD_CHARACTERS), ids=list(ODD_CHARACTERS.values()))
        def test_address_with_an_invisible_character_is_refused(self, char: str) -> None:
            injected = 0
            for sample in case.samples:
                _, edge = mapped(sample)
                for raw in dict.fromkeys(edge.seen):
                    body = inject(sample.request.body, raw, char)
                    if body is None:
                        continue
                    injected += 1
                    request = case.sign(with_body(sample.request, body), inst)
                    connector = build_connector(case, make_edge(region))
                    try:
                        connector.verify(request)
                        output = connector.map_request(request)
                    except InvalidInput:
                        continue
                    except AuthenticationFailed:
                        # a lone surrogate is not Unicode: a body holding one cannot be
                        # parsed, so a signature inside it cannot be found either
                        assert char == "\ud800", "re-signed request failed verification"
                        continue
                    assert output.rejected, (
                        f"sample {sample.name!r}: an address holding {ODD_CHARACTERS[char]} "
                        f"was taken; it must be refused (InvalidInput bad_email/bad_phone)"
                    )
            if not injected:  # only a connector that keys no address of the request
                for sample in case.samples:  # (one-click: a signed token) may pass so
                    _, edge = mapped(sample)
                    assert not edge.seen, (
                        f"sample {sample.name!r}: the kit could not find the addresses the "
                        f"connector keyed in the request; write them plainly in the sample"
                    )

        def test_ids_distinct_between_events(self) -> None:
            for kind in ("usage", "consent"):
                seen: dict[str, str] = {}
                for sample in case.samples:
                    output, _ = mapped(sample)
                    for event in getattr(output, kind):
                        assert event.event_id not in seen, (
                            f"{kind} event id repeats: sample {sample.name!r} and "
                            f"{seen[event.event_id]!r} (ids must differ between events)"
                        )
                        seen[event.event_id] = sample.name

        @pytest.mark.parametrize(
            ("part", "remove"),
            tamper_parts,
            ids=[f"{'missing' if r else 'changed'}-{p}" for p, r in tamper_parts],
        )
        def test_tampering_fails_verification(self, part: str, remove: bool) -> None:
            connector = build_connector(case)
            for sample in case.samples:
                forged = tamper(sample.request, part, remove=remove)
                with pytest.raises(AuthenticationFailed):
                    connector.verify(forged)

        def test_signature_is_found(self) -> None:
            assert sig_part is not None, (
                "the kit cannot tell where this connector's signature or secret is; "
                "set ConnectorCase.signature (e.g. 'header:x-mandrill-signature', "
                "'query:token', 'form:sig')"
            )

        @pytest.mark.parametrize(
            ("sample_name", "name", "body", "strict"),
            malformed,
            ids=[f"{s}-{n}" for s, n, _, _ in malformed],
        )
        def test_malformed_input_is_refused_cleanly(
            self, sample_name: str, name: str, body: bytes, strict: bool
        ) -> None:
            sample = samples[sample_name]
            request = case.sign(with_body(sample.request, body), inst)
            edge = make_edge(region)
            connector = build_connector(case, edge)
            found = raw_addresses(body, []) | raw_addresses(sample.request.body, [])
            _outcome(connector, request, strict, found, inst)

        def test_case_malformed_are_invalid(self) -> None:
            for i, body in enumerate(case.malformed):
                request = case.sign(with_body(first.request, body), inst)
                connector = build_connector(case)
                with pytest.raises(InvalidInput):
                    connector.verify(request)
                    connector.map_request(request)
                    raise AssertionError(f"case.malformed[{i}] was taken; expected InvalidInput")

        def test_empty_row_is_refused(self) -> None:
            connector = build_connector(case)
            for row in ({}, {k: "" for r in case.rows[:1] for k in r}):
                try:
                    output = connector.map_row(row)
                except InvalidInput as exc:
                    assert _CODE_RE.fullmatch(exc.code), f"bad code {exc.code!r}"
                    continue
                assert len(output) == 0, "an empty row produced events"

    if case.rows:

        def test_rows_map_to_valid_events(self: Any) -> None:
            ids: set[tuple[str, str]] = set()
            for i, row in enumerate(case.rows):
                edge = make_edge(region)
                connector = build_connector(case, edge)
                output = connector.map_row(row)
                assert len(output) > 0, f"row {i} produced no event"
                assert_valid_events(output, inst)
                again = build_connector(case).map_row(row)
                assert [e.event_id for e in all_events(output)] == [
                    e.event_id for e in all_events(again)
                ], f"row {i}: ids differ when mapped twice"
                values = [str(v) for v in row.values() if isinstance(v, str | int)]
                found = raw_addresses("\n".join(values), edge.seen)
                assert_no_raw_address(all_events(output), found, region, set(edge.seen))
                for e in all_events(output):
                    key = (type(e).__name__, e.event_id)
                    assert key not in ids, f"row {i}: event id repeats another row's"
                    ids.add(key)

        def test_rows_malformed_never_crash(self: Any) -> None:
            template = case.rows[0]
            variants: list[Mapping[str, Any]] = [
                {k: _ODD for k in template},
                {k: "x" * 100_000 for k in template},
                {k: None for k in template},
                {
                    k: ("not-an-address" if _looks_like_address(str(v)) else v)
                    for k, v in template.items()
                },
            ]
            for row in variants:
                connector = build_connector(case)
                try:
                    output = connector.map_row(row)
                except InvalidInput as exc:
                    assert _CODE_RE.fullmatch(exc.code), f"bad code {exc.code!r}"
                    continue
                assert_valid_events(output, inst)

        Suite.test_rows_map_to_valid_events = test_rows_map_to_valid_events  # type: ignore[attr-defined]
        Suite.test_rows_malformed_never_crash = test_rows_malformed_never_crash  # type: ignore[attr-defined]

    Suite.__name__ = Suite.__qualname__ = f"Conformance_{case.connector}"
    return Suite


__all__ = [
    "TEST_PEPPER",
    "ConnectorCase",
    "RecordingEdge",
    "Sample",
    "address_forms",
    "all_events",
    "assert_no_raw_address",
    "assert_valid_events",
    "build_connector",
    "conformance_suite",
    "instance",
    "locate_signature",
    "make_edge",
    "malformed_bodies",
    "raw_addresses",
    "tamper",
    "with_body",
    "with_url",
]
