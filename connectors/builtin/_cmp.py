"""Shared by the consent-management-platform connectors (didomi, onetrust): the subject's
address by shape, vendor purposes -> canonical purposes (fail closed), authentication by an
operator's choice, and the ConsentEvents of a TCF TC string (connectors.md §4.3).

Purpose resolution. Each vendor choice is (vendor purpose id, action, channels). A vendor id
goes through ``purpose_map``; an unmapped one is listed in ``unmapped_purposes`` of the event of
its action, never guessed. When two vendor ids map to one canonical purpose and one of them is
not a grant, the grant of that canonical purpose is dropped (the refusal or withdrawal wins).
An event whose purposes all are unmapped carries ``purposes=[]`` with ``unmapped_purposes``
filled: it means "none mapped", not "all purposes".

Authentication is the operator's choice, in ``_cmp_auth``.

Channels: ``options['purpose_channels']`` maps a vendor purpose id to a channel or a list of
channels (email, sms, phone, ...); without it the event names no channel (all).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.tcf import TCStringError, decode_tc_string
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, ConsentEvent, Proof

TCF_PURPOSES = range(1, 12)  # TCF v2.2 purposes 1..11
_PHONE_SHAPE = re.compile(r"(tel:)?\+?[\d\s().\-/]{6,22}")
_ADDRESS_LIKE = re.compile(r"@|\d{6,}")


_TRUE = frozenset({"true", "1", "yes", "y", "enabled", "granted", "opt_in"})
_FALSE = frozenset({"false", "0", "no", "n", "disabled", "denied", "opt_out"})


# -- payload shapes ---------------------------------------------------------------------


def unflatten(data: dict[str, Any]) -> dict[str, Any]:
    """``{"a__b__0__c": v}`` -> ``{"a": {"b": [{"c": v}]}}`` (a CMP's "flatten" delivery
    mode, e.g. Didomi's)."""
    root: dict[str, Any] = {}
    for key, value in data.items():
        parts = key.split("__")
        node: Any = root
        for here in parts[:-1]:
            child = node.get(here) if isinstance(node, dict) else None
            if child is None:
                child = {}
                node[here] = child
            node = child
        if isinstance(node, dict):
            node[parts[-1]] = value
    result: dict[str, Any] = _lists(root)
    return result


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        fixed = {k: _lists(v) for k, v in node.items()}
        if fixed and all(k.isdigit() for k in fixed):
            return [fixed[k] for k in sorted(fixed, key=int)]
        return fixed
    return node


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else an empty one (optional sub-objects)."""
    return value if isinstance(value, dict) else {}


def enabled(value: Any) -> bool | None:
    """A consent flag as CMPs write it (booleans, 1/0, yes/no, granted/denied...); None
    when it is none of them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int):
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


# -- addresses --------------------------------------------------------------------------


def address(
    edge: tk.Edge, raw: Any, *, region: str, what: str, kind: str | None = None
) -> tuple[tk.Address, str]:
    """Key an identifier that is an e-mail or a phone number, decided by ``kind`` (a platform's
    identifier type) or else by shape; anything else (a CRM id) is ``no_address``."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("missing_field", f"{what} is missing")
    value = raw.strip()
    hint = (kind or "").lower()
    phone_hint = any(word in hint for word in ("phone", "sms", "mobile", "msisdn"))
    if "mail" in hint or ("@" in value and not phone_hint):
        return edge.address(value, "email"), "email"
    if phone_hint or _PHONE_SHAPE.fullmatch(value):
        return edge.address(value, "sms", region), "phone"
    raise InvalidInput("no_address", f"{what} is neither an e-mail address nor a phone number")


def region_of(country: Any, default: str) -> str:
    if isinstance(country, str) and re.fullmatch(r"[A-Za-z]{2}", country.strip()):
        return country.strip().upper()
    return default


def safe_label(value: Any) -> str | None:
    """A collection point label or URL fit for an event: no query string, nothing that looks
    like an address; bounded."""
    if not isinstance(value, str) or not value.strip():
        return None
    label = value.strip().split("?", 1)[0].split("#", 1)[0]
    if _ADDRESS_LIKE.search(label):
        return None
    return u.bounded(label)


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


# -- purposes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    vendor_id: str
    action: ConsentAction
    channels: tuple[Channel, ...] = ()


def channels_for(instance: tk.Instance, vendor_id: str) -> tuple[Channel, ...]:
    table = instance.options.get("purpose_channels") or {}
    value = table.get(vendor_id) if isinstance(table, Mapping) else None
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    known = {c.value for c in Channel}
    return tuple(sorted({Channel(n) for n in names if isinstance(n, str) and n in known}))


@dataclass(slots=True)
class Group:
    action: ConsentAction
    channels: tuple[Channel, ...]
    purposes: list[str]
    unmapped: list[str]


def resolve(connector: tk.Connector, choices: Iterable[Choice]) -> list[Group]:
    """Group vendor choices into (action, channels) with canonical and unmapped purposes."""
    items = list(choices)
    negative: set[tuple[str, tuple[Channel, ...]]] = set()
    for c in items:
        canonical = connector.purpose(c.vendor_id)
        if canonical and c.action is not ConsentAction.GRANT:
            negative.add((canonical, c.channels))
    groups: dict[tuple[ConsentAction, tuple[Channel, ...]], Group] = {}
    for c in items:
        canonical = connector.purpose(c.vendor_id)
        if canonical and c.action is ConsentAction.GRANT and (canonical, c.channels) in negative:
            continue
        group = groups.setdefault((c.action, c.channels), Group(c.action, c.channels, [], []))
        target = group.purposes if canonical else group.unmapped
        value = canonical or u.bounded(c.vendor_id)
        if value not in target:
            target.append(value)
    for g in groups.values():
        g.purposes.sort()
        g.unmapped.sort()
    order = {a: i for i, a in enumerate(ConsentAction)}
    return sorted(groups.values(), key=lambda g: (order[g.action], [c.value for c in g.channels]))


@dataclass(frozen=True, slots=True)
class Record:
    """One consent record of a CMP about one subject: what each of its events shares."""

    connector: tk.Connector
    addr: tk.Address
    occurred: int
    received: int
    controller: str

    def events(
        self,
        groups: Sequence[Group],
        dedupe: tuple[Any, ...],
        *,
        proof: Proof | None,
        attributes: Mapping[str, Any],
        expires_at_ms: int | None = None,
    ) -> list[ConsentEvent]:
        """One ConsentEvent per (action, channels) group; ids from ``dedupe`` (the
        platform's identity of the consent record), the action and the channels."""
        emit = tk.Emitter(self.connector, self.received)
        return [
            emit.consent(
                (*dedupe, g.action.value, ",".join(c.value for c in g.channels)),
                g.action,
                self.addr,
                self.occurred,
                role=None,
                channels=g.channels,
                purposes=g.purposes,
                unmapped=g.unmapped,
                proof=proof,
                expires_at_ms=expires_at_ms,
                attributes=attributes,
                controller=self.controller,
            )
            for g in groups
        ]

    def tcf(
        self, raw: str, dedupe: tuple[Any, ...], record_ref: str | None = None
    ) -> tuple[list[ConsentEvent], dict[str, Any]]:
        """See :func:`tcf_events`."""
        return _tcf(self, raw, dedupe, record_ref)


def consent_events(
    connector: tk.Connector,
    groups: Sequence[Group],
    *,
    dedupe: tuple[Any, ...],
    occurred: int,
    received: int,
    addr: tk.Address,
    controller: str,
    proof: Proof | None,
    attributes: Mapping[str, Any],
    expires_at_ms: int | None = None,
) -> list[ConsentEvent]:
    """:meth:`Record.events` of the record these arguments describe."""
    record = Record(connector, addr, occurred, received, controller)
    return record.events(
        groups, dedupe, proof=proof, attributes=attributes, expires_at_ms=expires_at_ms
    )


# -- TCF --------------------------------------------------------------------------------


def tcf_events(
    connector: tk.Connector,
    raw: str,
    *,
    dedupe: tuple[Any, ...],
    occurred: int,
    received: int,
    addr: tk.Address,
    controller: str,
    record_ref: str | None = None,
) -> tuple[list[ConsentEvent], dict[str, Any]]:
    """Grant/refuse per TCF purpose (``tcf:<n>`` through ``purpose_map``), channel web, the raw
    string as ``vendor_receipt``, ``record_ref`` (the CMP's own record of this consent, when
    the payload names one) as the proof by reference. An undecodable string gives no events
    and ``tcf=undecodable`` in the attributes returned (for the other events of the payload)."""
    return _tcf(Record(connector, addr, occurred, received, controller), raw, dedupe, record_ref)


def _tcf(
    record: Record, raw: str, dedupe: tuple[Any, ...], record_ref: str | None
) -> tuple[list[ConsentEvent], dict[str, Any]]:
    try:
        tc = decode_tc_string(raw)
    except TCStringError:
        return [], {"tcf": "undecodable"}
    choices = [
        Choice(
            f"tcf:{n}",
            ConsentAction.GRANT if n in tc.purposes_consent else ConsentAction.REFUSE,
            (Channel.WEB,),
        )
        for n in TCF_PURPOSES
    ]
    vendors = sorted(tc.vendor_consents.ids)
    attrs: dict[str, Any] = {
        "tcf": "decoded",
        "tcf_cmp_id": tc.cmp_id,
        "tcf_cmp_version": tc.cmp_version,
        "tcf_policy_version": tc.tcf_policy_version,
        "tcf_vendor_list_version": tc.vendor_list_version,
        "tcf_purposes_li": ",".join(str(n) for n in sorted(tc.purposes_legitimate_interest)),
        "tcf_vendor_consents": u.id_list(vendors),
        "tcf_vendor_consent_count": len(vendors),
        "tcf_publisher_cc": tc.publisher_cc,
    }
    try:
        collected: int | None = tt.ms_of(tc.last_updated, "TC string LastUpdated")
    except InvalidInput:
        collected = None  # a CMP clock far off: the consent stands, its time is unknown
    proof = Proof(
        method="tcf",
        collected_at_ms=collected,
        notice_version=f"gvl:{tc.vendor_list_version};policy:{tc.tcf_policy_version}",
        vendor_receipt=raw,
        record_ref=record_ref,
    )
    groups = resolve(record.connector, choices)
    events = record.events(groups, (*dedupe, "tcf"), proof=proof, attributes=attrs)
    return events, {"tcf": "decoded"}
