"""The canonical purpose vocabulary (rules.md, "Canonical purpose taxonomy") and channel groups.

A use is purpose x channel x controller x legal basis; channel and basis stay out of the
purpose key. Each key carries its closest DPV term (``broader``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events.records import Channel


@dataclass(frozen=True, slots=True)
class Purpose:
    key: str
    meaning: str
    broader: str  # closest DPV term


PURPOSES: dict[str, Purpose] = {
    p.key: p
    for p in (
        Purpose("service.transactional", "receipts, OTPs, service notices", "dpv:ServiceProvision"),
        Purpose(
            "editorial.newsletter",
            "newsletter the reader asked for",
            "dpv:RequestedServiceProvision",
        ),
        Purpose("marketing.direct", "own-brand promotion", "dpv:DirectMarketing"),
        Purpose("marketing.telemarketing", "sales calls", "dpv:DirectMarketing"),
        Purpose(
            "marketing.partner_transfer",
            "list rental, sharing or co-registration for partners' marketing",
            "dpv:SellDataToThirdParties",
        ),
        Purpose("political.communication", "campaign or party messaging", "dpv:DirectMarketing"),
        Purpose("advertising.personalised", "profile-based ads", "dpv:PersonalisedAdvertising"),
        Purpose("advertising.limited", "contextual ads, frequency capping", "dpv:Advertising"),
        Purpose("measurement", "ad and content performance, statistics", "dpv:Analytics"),
        Purpose(
            "profiling.scoring",
            "lead or intent scoring, segmentation",
            "dpv:CustomerRelationshipManagement",
        ),
        Purpose(
            "data.sale_enrichment",
            "selling insights or enriched profiles",
            "dpv:SellInsightsFromData",
        ),
        Purpose("security.fraud", "fraud prevention, security", "dpv:FraudPreventionAndDetection"),
    )
}

TRANSACTIONAL = "service.transactional"
NEWSLETTER = "editorial.newsletter"
MARKETING_DIRECT = "marketing.direct"
TELEMARKETING = "marketing.telemarketing"
PARTNER_TRANSFER = "marketing.partner_transfer"
POLITICAL = "political.communication"

#: Never promotional: a declaration for these defaults to ``promotional: false``.
NON_PROMOTIONAL: frozenset[str] = frozenset({TRANSACTIONAL, "security.fraud"})

#: What a partner's "opt-in partenaires" grant (``marketing.partner_transfer`` naming the
#: recipient) lets that recipient do. Anything else, political messages above all, needs
#: the purpose itself in the grant.
PARTNER_COVERED: frozenset[str] = frozenset({MARKETING_DIRECT, TELEMARKETING})

#: Electronic messages in the sense of ePrivacy art. 13 (e-mail, SMS and their successors).
ELECTRONIC_MESSAGES: frozenset[str] = frozenset(
    {Channel.EMAIL, Channel.SMS, Channel.RCS, Channel.WHATSAPP}
)

CHANNEL_LABELS: dict[str, str] = {
    Channel.EMAIL: "e-mail",
    Channel.SMS: "SMS",
    Channel.PHONE: "call",
    Channel.POSTAL: "letter",
    Channel.RCS: "RCS message",
    Channel.WHATSAPP: "WhatsApp message",
    Channel.WEB: "web use",
}


def is_known(key: str) -> bool:
    return key in PURPOSES
