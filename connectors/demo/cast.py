"""The demo's cast (the instances, campaigns and lists of deploy/demo/*.yaml), its phases'
shape and the incidents the monitor should open for it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from consentinel.connectors.demo.platforms import Post
from consentinel.connectors.demo.world import OWN_NUMBERS, World, hint

# -- the cast (as in deploy/demo/*.yaml) --------------------------------------------------

MAILCHIMP = "mailchimp-lequotidien"
MANDRILL = "mandrill-lequotidien"
SENDGRID_CAMPAIGN = "sendgrid-campagne2027"
SENDGRID_ROUTEUR = "sendgrid-routeur"
TWILIO = "twilio-boutique"
LEADS = "leads-jeuxconcours"
TWILIO_VOICE = "twilio-voice-horizon"
VONAGE = "vonage-fleursdelys"

#: instance -> connector type
INSTANCES = {
    MAILCHIMP: "mailchimp",
    MANDRILL: "mandrill",
    SENDGRID_CAMPAIGN: "sendgrid",
    SENDGRID_ROUTEUR: "sendgrid",
    TWILIO: "twilio",
    LEADS: "lead_post",
    TWILIO_VOICE: "twilio_voice",
    VONAGE: "vonage",
}

NEWSLETTER_LIST = "9e2f4a1c07"  # Mailchimp audience "La Matinale"
MATINALE_CAMPAIGN = "4c7b2e9d1a"  # a Mailchimp campaign sent to that whole audience
MATINALE = "lq-matinale"
ABONNEMENT = "lq-abonnement"
POLITICAL = "c2027-lettre-aux-lecteurs"
SOLAIRE = "ev-offre-solaire"
AUTO = "ad-devis-auto"
PRET = "cf-pret-express"
TWILIO_ACCOUNT = "AC089eb09878c980aefce3ad87f14a07e1"
PROMO_SERVICE = "MG55593f0c5bd0dfd790efede354ca3d26"  # promotions, short code 36111
ORDERS_SERVICE = "MGc93e32f6054c70913d37fc85844f1911"  # order notices, sender SOLEIL
SHORT_CODE = "36111"
ORDERS_SENDER = "SOLEIL"

PARTNERS = ("Energie Verte", "Assur Direct")  # as the lead vendor's form names them
CALLS = "mh-sante-seniors"  # Mutuelle Horizon's call campaign on a rented file
VOICE_ACCOUNT = "AC5e1f0c2b9a8d7e6f5a4b3c2d1e0f9a8b"
CALLER_ID = "+33199000042"  # fiction range 01 99 00 xx xx
NIGHT_PROMO = "fl-promo-noel"  # Fleurs de Lys's SMS promotion
FLORIST_MOBILE = OWN_NUMBERS[0]  # the owner's 06 number, not a 36xxx short code


@dataclass(frozen=True)
class Phase:
    key: str
    title: str
    build: Callable[[int], list[Post]]  # now (epoch ms) -> the requests, in order
    after: tuple[str, float] | None = None  # not before (phase key, seconds after its start)


@dataclass(frozen=True)
class Expected:
    """One incident the monitor should open: controller x campaign x rule."""

    controller: str
    campaign: str | None
    rule: str
    alerts: int
    hints: list[str]
    story: str
    resolved: bool = False  # closed by corrections once late consent arrived

    @property
    def incident_key(self) -> str:
        return f"{self.controller}|{self.campaign or '-'}|{self.rule}"


def after_grace(grace_s: float) -> float:
    """When to post the consent that comes too late: once the held uses were decided.

    The worker decides a held use on its first tick past receipt + G (ticks come every
    G/4, at most 5 s apart); half a grace period more plus 5 s leaves room for that.
    """
    return grace_s * 1.5 + 5.0


#: The SMS charter hours (rules.md R9, the policy's default ``sms_hours``), Paris time.
CHARTER_HOURS = (8 * 60, 21 * 60 + 30)


def out_of_charter(at_s: float) -> bool:
    """Whether an SMS sent at ``at_s`` (epoch seconds) is outside the charter hours."""
    local = datetime.fromtimestamp(at_s, tz=UTC).astimezone(ZoneInfo("Europe/Paris"))
    start, end = CHARTER_HOURS
    return not start <= local.hour * 60 + local.minute < end


def _promos_at_night(world: World, played: Mapping[str, float]) -> list[str]:
    """Boutique Soleil's promotional SMS sent outside the charter hours: Twilio reports
    no send time, so a promotion is sent when the demo posts it (its phase's start)."""
    sent = {"promo": world.customers, "promo-again": world.second_promo}
    return [p for key, to in sent.items() if key in played and out_of_charter(played[key])
            for p in to]  # fmt: skip


def expectations(world: World, played: Mapping[str, float] | None = None) -> list[Expected]:
    """The incidents of ``world``'s story; ``played``: when each phase started (epoch
    seconds, ``Report.phase_started``), unknown meaning within the SMS charter hours."""
    sample = {k: [hint(a) for a in v[:3]] for k, v in vars(world).items() if isinstance(v, list)}
    at_night = _promos_at_night(world, played or {})
    pol = "Campagne 2027 e-mails newspaper readers rented from a list broker"
    late = "Energie Verte e-mailed leads before their consent was posted (after the grace)"
    off_hours = [hint(a) for a in world.called_off_hours[:3]]
    night = "Fleurs de Lys texts a promotion at 23:45 from the owner's 06 number"
    night_promo = Expected(
        "boutique-soleil",
        None,
        "R9",
        len(at_night),
        [hint(a) for a in at_night[:3]],
        "Boutique Soleil's SMS promotions went out (when the demo ran) outside the charter "
        "hours 08:00-21:30",
    )
    return [
        *(
            Expected("campagne-2027", POLITICAL, rule, len(world.rented), sample["rented"], pol)
            for rule in ("R1", "R2", "R17")
        ),
        Expected(
            "boutique-soleil",
            None,
            "R5",
            len(world.texted_after_stop),
            sample["texted_after_stop"],
            "Boutique Soleil's second SMS promotion reached customers who had replied STOP",
        ),
        *([night_promo] if at_night else []),
        Expected(
            "credit-facile",
            PRET,
            "R13",
            len(world.unnamed_targets),
            sample["unnamed_targets"],
            "Crédit Facile e-mails co-registration leads whose consent named other partners",
        ),
        *(
            Expected(
                "energie-verte",
                SOLAIRE,
                rule,
                len(world.late_after_grace),
                sample["late_after_grace"],
                late,
                resolved=True,
            )
            for rule in ("R1", "R2")
        ),
        Expected(
            "mutuelle-horizon",
            CALLS,
            "R10",
            len(world.called_off_hours),
            off_hours,
            "Mutuelle Horizon calls prospects at 21:30, on a Sunday, on a public holiday",
        ),
        Expected(
            "mutuelle-horizon",
            CALLS,
            "R11",
            len(world.pestered),
            sample["pestered"],
            "Mutuelle Horizon calls some prospects a 5th time within 30 days",
        ),
        Expected(
            "mutuelle-horizon",
            CALLS,
            "R12",
            world.calls,
            sample["prospects"],
            "Mutuelle Horizon calls a rented file with no consent and no Bloctel cleaning",
        ),
        *(
            Expected(
                "le-quotidien",
                MATINALE_CAMPAIGN,
                rule,
                len(world.imported),
                sample["imported"],
                "Le Quotidien's Mailchimp campaign to La Matinale reaches the file it imported "
                "(no consent); its subscribed readers are lawful",
            )
            for rule in MATINALE_RULES
        ),
        *(
            Expected(
                "fleurs-de-lys",
                NIGHT_PROMO,
                rule,
                len(world.night_texted),
                sample["night_texted"],
                night,
            )
            for rule in ("R8", "R9")
        ),
    ]


#: What the campaign to La Matinale raises for each imported member (no consent at all)
MATINALE_RULES = ("R1", "R2")

#: Controllers whose traffic is lawful: no incident expected beyond ``expectations``.
LAWFUL = ("le-quotidien", "assur-direct", "energie-verte", "boutique-soleil", "emailing-pro",
          "jeux-concours-media")  # fmt: skip
