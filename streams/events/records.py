"""The records every part of consentinel exchanges (DESIGN.md, "Records").

Frozen, slotted dataclasses; times are integer epoch milliseconds UTC (``*_ms``), which
orders and bisects cheaply and survives JSON exactly. Every top-level record carries a
schema version ``v``. Encode and decode only through ``codec``.

No raw address appears in any record: ``subject_key`` is the HMAC pseudonym and
``hint`` the masked form for people (``identity.mask``). The dead-letter payload is the
one exception, and it is sealed (``sealing``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

Scalar = str | int | float | bool


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    POSTAL = "postal"
    RCS = "rcs"
    WHATSAPP = "whatsapp"
    WEB = "web"


class UsageKind(enum.StrEnum):
    SEND = "send"
    DELIVER = "deliver"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    DEFER = "defer"
    DROP = "drop"
    COMPLAINT = "complaint"
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    REPLY = "reply"
    FAIL = "fail"
    CALL = "call"
    LEAD_DELIVERED = "lead_delivered"
    LIST_TRANSFER = "list_transfer"


class ConsentAction(enum.StrEnum):
    GRANT = "grant"
    WITHDRAW = "withdraw"
    REFUSE = "refuse"
    EXPIRE = "expire"
    ERASE = "erase"
    #: List membership only: the platform put the address on the list named in ``scope``
    #: (an import of a file, an API call, a form). Evidence that campaigns to that list
    #: reach the address, never a consent: the consent history ignores it.
    JOIN = "join"
    #: R23 only: a lead certificate's verification result for ``controller`` (the buyer it
    #: was verified for): ``proof.certificate_id`` names the certificate,
    #: ``certificate_status`` is the result (verified, expired, mismatch) and the attribute
    #: ``certificate_reason`` says why. Never a consent: the consent history keeps it beside
    #: the controller's consents, and the latest result (event time, then id) counts.
    VERIFY = "verify"


class CertificateStatus(enum.StrEnum):
    """A purchased lead's consent certificate (TrustedForm, LeadiD), R23."""

    CLAIMED = "claimed"  # the connector saw a certificate id; nobody has verified it yet
    VERIFIED = "verified"  # the certificate exists, matches the lead, names the buyer
    EXPIRED = "expired"  # the certificate expired (or was never retained) before it was checked
    MISMATCH = "mismatch"  # the lead's data differs from what was witnessed, or the
    # disclosure does not name the buyer


class LegalBasis(enum.StrEnum):
    CONSENT = "consent"
    SOFT_OPT_IN = "soft_opt_in"
    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"
    LEGAL_OBLIGATION = "legal_obligation"
    B2B = "b2b"


class Sourcing(enum.StrEnum):
    """Where a declared campaign's or list's addresses came from."""

    OWN = "own"  # collected by the controller itself
    RENTED = "rented"  # rented or bought from a list broker
    PARTNER = "partner"  # received from a partner under "opt-in partenaires"
    PURCHASED = "purchased"  # purchased leads
    CUSTOMER = "customer"  # collected from customers during a sale (soft opt-in)


class Decision(enum.StrEnum):
    ALLOWED = "allowed"
    WARNING = "warning"
    VIOLATION = "violation"
    PENDING = "pending"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


#: Marketing-type uses: what the checker judges. Deliveries, opens, bounces are
#: evidence of a send, not new uses; the connector's ``send`` is the use.
USE_KINDS: frozenset[UsageKind] = frozenset(
    {
        UsageKind.SEND,
        UsageKind.CALL,
        UsageKind.LEAD_DELIVERED,
        UsageKind.LIST_TRANSFER,
    }
)


@dataclass(frozen=True, slots=True)
class Proof:
    """What makes a consent provable (ISO/IEC 27560, rules R3)."""

    method: str | None = None  # double_opt_in, checkbox, keyword_stop, tcf, lead_certificate...
    collected_at_ms: int | None = None
    collection_point: str | None = None  # form id or URL
    notice_version: str | None = None  # or a hash of the notice text
    text_hash: str | None = None
    ip_hash: str | None = None
    certificate_id: str | None = None  # TrustedForm / LeadiD
    vendor_receipt: str | None = None  # receipt id, TC string, message id
    # the proof record the platform keeps (a CMP's consent event / receipt id): a consent
    # that names one is provable by reference, the record being held by its collector
    record_ref: str | None = None


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One use (or evidence of a use) of an address, as a platform reported it."""

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str
    occurred_at_ms: int
    received_at_ms: int
    source: str  # connector instance name
    processor: str  # platform (connector type)
    channel: Channel
    kind: UsageKind
    subject_key: str
    hint: str
    controller: str
    campaign_id: str | None = None
    list_id: str | None = None
    form_id: str | None = None
    sender: str | None = None
    tags: list[str] = field(default_factory=list)
    declared_purpose: str | None = None
    source_event_type: str | None = None
    is_test: bool = False
    attributes: dict[str, Scalar] = field(default_factory=dict)
    # R6, what the connector saw in the message itself; None = not seen (unknown)
    opt_out_instruction: bool | None = None  # SMS: the text says how to opt out (STOP au 36xxx)
    list_unsubscribe: bool | None = None  # e-mail: a List-Unsubscribe header with an https URI
    list_unsubscribe_post: bool | None = None  # e-mail: List-Unsubscribe-Post: ...=One-Click
    # R15/R18, what the connector saw: the message names where the address came from
    source_named: bool | None = None
    v: int = 1


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """A change to an address's consent for one controller."""

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str
    occurred_at_ms: int
    received_at_ms: int
    source: str
    processor: str
    subject_key: str
    hint: str
    controller: str  # to whom the consent is given (or withdrawn from)
    action: ConsentAction
    purposes: list[str] = field(default_factory=list)  # canonical keys; empty = all
    channels: list[Channel] = field(default_factory=list)  # empty = all
    recipients: list[str] = field(default_factory=list)  # partners named at collection
    collected_by: str | None = None  # who collected it, when not the controller itself
    legal_basis: LegalBasis = LegalBasis.CONSENT
    scope: str | None = None  # list / group / topic the event is limited to
    proof: Proof | None = None
    expires_at_ms: int | None = None
    unmapped_purposes: list[str] = field(default_factory=list)  # vendor ids with no mapping
    attributes: dict[str, Scalar] = field(default_factory=dict)
    gpc: bool | None = None  # R21: Sec-GPC: 1 seen at collection; None = not seen (unknown)
    # R23: on a grant, ``claimed`` when the connector saw a certificate id
    # (``proof.certificate_id``); on a ``verify`` event, the verification result
    certificate_status: CertificateStatus | None = None
    v: int = 1


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a campaign, list, form, sender, tag or checkbox is for (the purpose registry).

    ``ref_kind``/``ref`` name the thing a usage event carries (``campaign_id``,
    ``list_id``, ``form_id``, ``sender``, ``tag``); ``decl_id`` is the registry key.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    decl_id: str
    ref_kind: str  # campaign | list | form | sender | tag | checkbox
    ref: str
    controller: str
    purpose: str  # canonical purpose key
    channel: Channel
    legal_basis: LegalBasis = LegalBasis.CONSENT
    sourcing: Sourcing = Sourcing.OWN
    data_sources: list[str] = field(default_factory=list)  # lists / files the addresses came from
    acquired_from: list[str] = field(default_factory=list)  # controllers who supplied them
    promotional: bool = True
    description: str = ""
    updated_at_ms: int = 0
    bloctel_cleaned_at_ms: int | None = None  # R12: when the call file was last cleaned
    sector: str | None = None  # R12: "press" (Bloctel exception), "home_energy_renovation"
    notice_version: str | None = None  # R4: the notice in force; consent to another is stale
    opt_out_in_message: bool | None = None  # R6: its messages carry the opt-out means
    tcf_purpose: int | None = None  # R22: the TCF purpose (1-11) the use is processing for
    tcf_vendor: int | None = None  # R22: the GVL id of the vendor that processes
    names_source: bool | None = None  # R15/R18: its messages name where the addresses came from
    # R19: what kind of files its addresses come from (hr, payroll, administrative, ...)
    source_categories: list[str] = field(default_factory=list)
    v: int = 1


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one usage event (every decision, for audit and coverage)."""

    SCHEMA_VERSION: ClassVar[int] = 1

    usage_event_id: str
    subject_key: str
    occurred_at_ms: int
    decided_at_ms: int
    decision: Decision
    rule_ids: list[str] = field(default_factory=list)
    consent_version: str | None = None  # event id of the consent state used
    controller: str = ""
    channel: Channel = Channel.EMAIL
    purpose: str | None = None
    source: str = ""
    decl_id: str | None = None
    correction: bool = False
    v: int = 1


@dataclass(frozen=True, slots=True)
class ConsentSummary:
    """The consent state at the moment of use, as evidence."""

    state: str  # given, withdrawn, refused, expired, erased, unknown
    consent_event_ids: list[str] = field(default_factory=list)
    purposes: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    legal_basis: str | None = None
    proof: Proof | None = None
    valid_from_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """A violation or warning on one use; ``alert_id`` = hash(usage event id, rule id)."""

    SCHEMA_VERSION: ClassVar[int] = 1

    alert_id: str
    rule_id: str
    rule_source: str
    severity: Severity
    incident_key: str  # controller x campaign x rule
    usage_event_id: str
    subject_key: str
    hint: str
    controller: str
    channel: Channel
    summary: str  # one human sentence
    occurred_at_ms: int
    detected_at_ms: int
    status: AlertStatus = AlertStatus.FIRING
    campaign_id: str | None = None
    purpose_used: str | None = None
    decl_id: str | None = None
    source: str = ""
    consent: ConsentSummary | None = None
    correction_reason: str | None = None
    revision: int = 1
    v: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What could not be taken in, with why; the raw payload sealed (``sealing``)."""

    SCHEMA_VERSION: ClassVar[int] = 1

    source: str
    received_at_ms: int
    reason_code: str
    reason: str
    sealed_payload: str  # base64 of the AES-GCM sealed raw payload
    key_id: str
    content_type: str = "application/octet-stream"
    stage: str = "ingest"  # ingest | import | worker
    attributes: dict[str, Scalar] = field(default_factory=dict)
    v: int = 1


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An operator's look at personal data (a data-subject lookup), for the audit trail.

    ``subject_key`` is the pseudonym looked up, never the address the operator typed."""

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str
    at_ms: int
    actor: str  # who looked: the OS user of the CLI, or the console's operator
    action: str  # subject_lookup | subject_erase (the router redacts the subject's evidence)
    via: str  # cli | console
    subject_key: str
    v: int = 1
