"""The purpose registry seen from the policy: which declaration a use falls under, and a
pure validator for declarations read from the ops' YAML file.

The YAML itself is parsed by the processor (with line numbers); ``validate_declarations``
takes ``[(line, mapping), ...]`` and returns the declarations and *every* problem, each
with its line, so a person fixes the file in one go.

A declaration names what it declares either as ``ref_kind: campaign`` + ``ref: spring-2027``
or with the shorthand ``campaign: spring-2027`` (also ``list``, ``form``, ``sender``,
``tag``, ``checkbox``). Required: the reference, ``controller``, ``purpose`` (a canonical
key), ``channel``. Optional: ``legal_basis`` (default consent), ``sourcing`` (default own),
``data_sources``, ``acquired_from`` (lists of strings), ``promotional`` (default true, false
for service.transactional and security.fraud), ``description``, and what single rules
read: ``bloctel_cleaned_at_ms`` and ``sector`` (R12), ``notice_version`` (R4),
``opt_out_in_message`` (R6), ``tcf_purpose`` with ``tcf_vendor`` (R22), ``names_source``
(R15, R18: its messages name where the addresses came from) and ``source_categories`` (R19:
a list among ``SOURCE_CATEGORIES``, e.g. [hr]).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import ids
from ..events.records import Channel, Declaration, LegalBasis, Sourcing, UsageEvent
from .purposes import NON_PROMOTIONAL, PURPOSES

#: Usage fields tried in order, with the ref kind their declarations are keyed by.
RESOLUTION_ORDER = (
    ("campaign", "campaign_id"),
    ("list", "list_id"),
    ("form", "form_id"),
    ("sender", "sender"),
)
REF_KINDS = ("campaign", "list", "form", "sender", "tag", "checkbox")
#: Optional fields read by single rules: (name, type, what a person should write).
_OPTIONAL: tuple[tuple[str, type, str], ...] = (
    ("bloctel_cleaned_at_ms", int, "epoch milliseconds of the last Bloctel cleaning"),
    ("sector", str, "a name such as press or home_energy_renovation"),
    ("notice_version", str, "the version of the notice in force, e.g. v8"),
    ("opt_out_in_message", bool, "true or false"),
    ("tcf_purpose", int, "a TCF purpose number, 1 to 24"),
    ("tcf_vendor", int, "a vendor's GVL id, 1 or more"),
    ("names_source", bool, "true or false"),
)
#: R19: source categories a declaration may name (``source_categories``); the first three
#: are the ones political use must never draw on.
SOURCE_CATEGORIES = (
    "hr",
    "payroll",
    "administrative",
    "customers",
    "subscribers",
    "prospects",
    "members",
    "public",
)
_FIELDS = frozenset(
    {
        "ref_kind",
        "ref",
        "controller",
        "purpose",
        "channel",
        "legal_basis",
        "sourcing",
        "data_sources",
        "acquired_from",
        "source_categories",
        "promotional",
        "description",
        *(name for name, _, _ in _OPTIONAL),
        *REF_KINDS,
    }
)


def candidate_ids(usage: UsageEvent) -> list[str]:
    """The registry keys a use may fall under, in the order they are tried."""
    out = [
        ids.declaration_id(kind, str(getattr(usage, attr)))
        for kind, attr in RESOLUTION_ORDER
        if getattr(usage, attr)
    ]
    out += [ids.declaration_id("tag", tag) for tag in usage.tags if tag]
    return list(dict.fromkeys(out))


def resolve(usage: UsageEvent, lookup: Callable[[str], Declaration | None]) -> Declaration | None:
    """The declaration of the first of campaign, list, form, sender, tags that has one.

    Its ``controller`` is the controller of the use (the platform account may be a
    broker's). The candidate ids are a function of what the use names alone, kept per
    name (``_CANDIDATES``: a campaign's sends all name the same things); ``lookup`` is
    asked every time (the registry may change).
    """
    key = (usage.campaign_id, usage.list_id, usage.form_id, usage.sender, *usage.tags)
    candidates = _CANDIDATES.get(key)
    if candidates is None:
        if len(_CANDIDATES) >= _CANDIDATES_MAX:
            _CANDIDATES.clear()
        candidates = _CANDIDATES[key] = tuple(candidate_ids(usage))
    for decl_id in candidates:
        found = lookup(decl_id)
        if found is not None:
            return found
    return None


#: ``candidate_ids`` by what it reads (campaign, list, form, sender, tags); cleared when full
_CANDIDATES: dict[tuple[str | None, ...], tuple[str, ...]] = {}
_CANDIDATES_MAX = 4096


def _choices(enum_type: type[Channel] | type[LegalBasis] | type[Sourcing]) -> str:
    return ", ".join(m.value for m in enum_type)


def _str_list(doc: dict[str, Any], key: str, where: str, problems: list[str]) -> list[str]:
    value = doc.get(key, [])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: '{key}' should be a list of names, e.g. [{key[:-1]}-a]")
        return []
    return list(value)


def _one(line: int, doc: Any, updated_at_ms: int, problems: list[str]) -> Declaration | None:
    where = f"line {line}"
    if not isinstance(doc, dict):
        problems.append(f"{where}: expected a mapping (controller, purpose, channel, ...)")
        return None
    before = len(problems)
    unknown = sorted(str(k) for k in doc if k not in _FIELDS)
    if unknown:
        problems.append(
            f"{where}: unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(_FIELDS))}"
        )
    shorthand = [k for k in REF_KINDS if k in doc]
    ref_kind: str | None = None
    ref: str | None = None
    if "ref_kind" in doc or "ref" in doc:
        if shorthand:
            problems.append(f"{where}: use either ref_kind/ref or {shorthand[0]}:, not both")
        ref_kind, ref = doc.get("ref_kind"), doc.get("ref")
        if ref_kind not in REF_KINDS:
            problems.append(f"{where}: ref_kind {ref_kind!r} is not one of {', '.join(REF_KINDS)}")
    elif len(shorthand) == 1:
        ref_kind, ref = shorthand[0], doc[shorthand[0]]
    elif shorthand:
        problems.append(f"{where}: names several things ({', '.join(shorthand)}); one per entry")
    else:
        problems.append(
            f"{where}: missing what is declared: add e.g. 'campaign: spring-2027' "
            f"(or list, form, sender, tag, checkbox)"
        )
    if ref is not None and not isinstance(ref, str | int):
        problems.append(f"{where}: the {ref_kind or 'ref'} should be a name or number")
        ref = None
    elif ref is not None:
        ref = str(ref)
    if ref_kind is not None and ref in (None, ""):
        problems.append(f"{where}: the {ref_kind} is empty")

    controller = doc.get("controller")
    if not isinstance(controller, str) or not controller.strip():
        problems.append(f"{where}: missing 'controller' (who uses the addresses)")
    purpose = doc.get("purpose")
    if purpose is None:
        problems.append(f"{where}: missing 'purpose' (one of {', '.join(PURPOSES)})")
    elif purpose not in PURPOSES:
        problems.append(
            f"{where}: unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}"
        )
    channel = doc.get("channel")
    if channel is None:
        problems.append(f"{where}: missing 'channel' (one of {_choices(Channel)})")
    elif channel not in Channel._value2member_map_:
        problems.append(
            f"{where}: unknown channel {channel!r}; expected one of {_choices(Channel)}"
        )
    basis = doc.get("legal_basis", LegalBasis.CONSENT.value)
    if basis not in LegalBasis._value2member_map_:
        problems.append(
            f"{where}: unknown legal_basis {basis!r}; expected one of {_choices(LegalBasis)}"
        )
    sourcing = doc.get("sourcing", Sourcing.OWN.value)
    if sourcing not in Sourcing._value2member_map_:
        problems.append(
            f"{where}: unknown sourcing {sourcing!r}; expected one of {_choices(Sourcing)}"
        )
    promotional = doc.get("promotional", purpose not in NON_PROMOTIONAL)
    if not isinstance(promotional, bool):
        problems.append(f"{where}: 'promotional' should be true or false")
    description = doc.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}: 'description' should be text")
    data_sources = _str_list(doc, "data_sources", where, problems)
    acquired_from = _str_list(doc, "acquired_from", where, problems)
    categories = _str_list(doc, "source_categories", where, problems)
    unknown_categories = [c for c in categories if c not in SOURCE_CATEGORIES]
    if unknown_categories:
        problems.append(
            f"{where}: unknown source_categories {', '.join(unknown_categories)}; expected "
            f"some of {', '.join(SOURCE_CATEGORIES)}"
        )
    extras = _optional(doc, where, problems)
    if len(problems) > before:
        return None
    assert ref_kind is not None and ref is not None and isinstance(controller, str)
    return Declaration(
        decl_id=ids.declaration_id(ref_kind, ref),
        ref_kind=ref_kind,
        ref=ref,
        controller=controller.strip(),
        purpose=str(purpose),
        channel=Channel(str(channel)),
        legal_basis=LegalBasis(basis),
        sourcing=Sourcing(sourcing),
        data_sources=data_sources,
        acquired_from=acquired_from,
        source_categories=categories,
        promotional=bool(promotional),
        description=str(description),
        updated_at_ms=updated_at_ms,
        **extras,
    )


def _optional(doc: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """The optional single-rule fields present in ``doc``, checked."""
    out: dict[str, Any] = {}
    for name, kind, hint in _OPTIONAL:
        value = doc.get(name)
        if value is None:
            continue
        wrong_int = kind is int and isinstance(value, bool)
        blank = isinstance(value, str) and not value.strip()
        if wrong_int or blank or not isinstance(value, kind):
            problems.append(f"{where}: '{name}' should be {hint}, not {value!r}")
            continue
        out[name] = value
    purpose, vendor = out.get("tcf_purpose"), out.get("tcf_vendor")
    if (purpose is None) != (vendor is None):
        problems.append(
            f"{where}: tcf_purpose and tcf_vendor go together (R22 checks a purpose for a vendor)"
        )
    if purpose is not None and not 1 <= purpose <= 24:
        problems.append(f"{where}: 'tcf_purpose' should be a TCF purpose number, 1 to 24")
    if vendor is not None and vendor < 1:
        problems.append(f"{where}: 'tcf_vendor' should be a vendor's GVL id, 1 or more")
    return out


def validate_declarations(
    docs: list[tuple[int, dict[str, Any]]], *, updated_at_ms: int = 0
) -> tuple[list[Declaration], list[str]]:
    """Check every entry; return the valid declarations and every problem with its line.

    A duplicate (the same ``kind:ref`` twice) is a problem on the second line naming the
    first; only the first is kept. Callers should refuse to publish when problems exist.
    """
    problems: list[str] = []
    out: list[Declaration] = []
    seen: dict[str, int] = {}
    for line, doc in docs:
        decl = _one(line, doc, updated_at_ms, problems)
        if decl is None:
            continue
        if decl.decl_id in seen:
            problems.append(
                f"line {line}: {decl.decl_id} is already declared at line {seen[decl.decl_id]}"
            )
            continue
        seen[decl.decl_id] = line
        out.append(decl)
    return out, problems
