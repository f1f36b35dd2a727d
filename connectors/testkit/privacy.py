"""The address scanner: every form an address can take in a payload, and the checks that
none of them reaches an event, a message or a refusal."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import (
    unquote_plus,
)

from consentinel.connectors.contract import (
    Instance,
    Output,
)
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.identity import normalize_email, normalize_phone
from consentinel.streams.events.records import ConsentEvent, UsageEvent

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
    """No form of any address in any encoded event. A sender leaves as an id, a short code,
    a masked long number (it may be a person's mobile) or, for e-mail, its domain only."""
    senders = {e.sender for e in events if isinstance(e, UsageEvent) and e.sender}
    for sender in senders:
        if "@" in sender:
            raise AssertionError("`sender` holds an e-mail address: keep its domain only")
        if _PHONE_RE.fullmatch(sender.strip()):
            raise AssertionError("`sender` holds a full phone number: mask it (sending_domain)")
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
