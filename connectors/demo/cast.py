"""The demo's cast (the instances, campaigns and lists of deploy/demo/*.yaml), its phases'
shape and the incidents the monitor should open for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consentinel.connectors.demo.platforms import Post
from consentinel.connectors.demo.world import World, hint

# -- the cast (as in deploy/demo/*.yaml) --------------------------------------------------

MAILCHIMP = "mailchimp-lequotidien"
MANDRILL = "mandrill-lequotidien"
SENDGRID_CAMPAIGN = "sendgrid-campagne2027"
SENDGRID_ROUTEUR = "sendgrid-routeur"
TWILIO = "twilio-boutique"
LEADS = "leads-jeuxconcours"

#: instance -> connector type
INSTANCES = {
    MAILCHIMP: "mailchimp",
    MANDRILL: "mandrill",
    SENDGRID_CAMPAIGN: "sendgrid",
    SENDGRID_ROUTEUR: "sendgrid",
    TWILIO: "twilio",
    LEADS: "lead_post",
}

NEWSLETTER_LIST = "9e2f4a1c07"  # Mailchimp audience "La Matinale"
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


def expectations(world: World) -> list[Expected]:
    sample = {k: [hint(a) for a in v[:3]] for k, v in vars(world).items() if isinstance(v, list)}
    pol = "Campagne 2027 e-mails newspaper readers rented from a list broker"
    late = "Energie Verte e-mailed leads before their consent was posted (after the grace)"
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
    ]


#: Controllers whose traffic is lawful: no incident expected beyond ``expectations``.
LAWFUL = ("le-quotidien", "assur-direct", "energie-verte", "boutique-soleil", "emailing-pro",
          "jeux-concours-media")  # fmt: skip
