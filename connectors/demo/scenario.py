"""The demo's story: who posts what through which connector instance, in which order, and
which incidents the monitor should raise from it.

The instance names, list ids, campaign ids and messaging services below are the ones
``deploy/demo/connectors.yaml`` and ``deploy/demo/registry.yaml`` declare (a unit test
keeps the three in step). Each phase builds its requests when it starts, so every event
time is the time it is posted (older where the story says so: subscriptions, opt-ins).

Timing: uses whose consent is not known yet are held for the grace period G. Phase
``late-in`` posts consent G/3 after the sends it covers (the held uses are then allowed);
phase ``late-after`` posts it ``after_grace(G)`` later, once the held uses were decided
without it: those alerts are then resolved by corrections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consentinel.connectors.demo import platforms as pf
from consentinel.connectors.demo.cast import (
    ABONNEMENT,
    AUTO,
    LEADS,
    MAILCHIMP,
    MANDRILL,
    MATINALE,
    MATINALE_CAMPAIGN,
    NEWSLETTER_LIST,
    ORDERS_SENDER,
    ORDERS_SERVICE,
    PARTNERS,
    POLITICAL,
    PRET,
    PROMO_SERVICE,
    SENDGRID_CAMPAIGN,
    SENDGRID_ROUTEUR,
    SHORT_CODE,
    SOLAIRE,
    TWILIO,
    TWILIO_ACCOUNT,
    Phase,
    after_grace,
)
from consentinel.connectors.demo.phone import PhoneStory
from consentinel.connectors.demo.platforms import Post
from consentinel.connectors.demo.world import World, token

# -- the phases ---------------------------------------------------------------------------

_DAY_MS = 86_400_000
_MIN_MS = 60_000


def _first_name(address: str) -> str:
    return address.split(".", 1)[0].capitalize()


def _member(address: str) -> str:
    """Mailchimp's short member id: the same for one member in every event."""
    return token("member", address, size=10)


def _ip(*parts: object) -> str:
    return f"198.51.100.{int(token(*parts, size=4), 16) % 250 + 1}"


def _batches(items: list[dict[str, object]], size: int) -> list[list[dict[str, object]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass
class Story:
    """Builds the phases for one world; ``run`` makes ids unique per run of the feed."""

    world: World
    grace_s: float
    run: str = ""
    _seq: int = field(default=0, init=False)

    def _id(self, *parts: object, size: int = 32) -> str:
        self._seq += 1
        return token(self.world.seed, self.run, self._seq, *parts, size=size)

    # Le Quotidien -----------------------------------------------------------------------

    def subscriptions(self, now: int) -> list[Post]:
        posts = []
        for address in self.world.readers:
            body = pf.mailchimp_member(
                "subscribe",
                fired_at_ms=now - self.world.age[address] * _DAY_MS,
                list_id=NEWSLETTER_LIST,
                member_id=_member(address),
                email=address,
                ip=_ip(address),
                first_name=_first_name(address),
            )
            posts.append(Post(MAILCHIMP, body, pf.FORM, "subscribe"))
        for address in self.world.unsubscribed:
            body = pf.mailchimp_member(
                "unsubscribe",
                fired_at_ms=now - self.world.age[address] // 2 * _DAY_MS,
                list_id=NEWSLETTER_LIST,
                member_id=_member(address),
                email=address,
                ip=_ip(address),
                first_name=_first_name(address),
                extra={"data[action]": "unsub", "data[reason]": "manual"},
            )
            posts.append(Post(MAILCHIMP, body, pf.FORM, "unsubscribe"))
        return posts

    def _mandrill(
        self, now: int, to: list[str], campaign: str, purpose: str, subject: str, what: str
    ) -> tuple[list[Post], list[dict[str, object]]]:
        ts = now // 1000 - 90  # platforms report a little after the fact
        sends = [
            pf.mandrill_event(
                "send",
                message_id=self._id("mandrill"),
                ts_s=ts,
                email=address,
                subject=subject,
                tags=[campaign, NEWSLETTER_LIST] if purpose == "newsletter" else [campaign],
                metadata={"purpose": purpose, "campaign_id": campaign},
                subaccount="lequotidien",
            )
            for address in to
        ]
        posts = [
            Post(MANDRILL, pf.mandrill_body(b), pf.FORM, what, events=len(b))
            for b in _batches(sends, 10)
        ]
        return posts, sends

    def receipts(self, now: int) -> list[Post]:
        posts, _ = self._mandrill(
            now, self.world.paying, ABONNEMENT, "transactional",
            "Votre reçu d'abonnement", "receipt",
        )  # fmt: skip
        return posts

    def newsletter(self, now: int) -> list[Post]:
        readers = self.world.newsletter_readers
        posts, sends = self._mandrill(
            now, readers, MATINALE, "newsletter", "La Matinale", "newsletter send"
        )
        engaged = []
        for i, send in enumerate(sends):
            if i % 2 == 0:
                engaged.append({**send, "event": "open", "ts": now // 1000 - 60 + i % 30})
            if i % 5 == 0:
                click = {**send, "event": "click", "ts": now // 1000 - 30 + i % 20}
                click["url"] = "https://www.lequotidien.example/politique/edito"
                engaged.append(click)
        posts += [
            Post(MANDRILL, pf.mandrill_body(b), pf.FORM, "open/click", events=len(b))
            for b in _batches(engaged, 10)
        ]
        return posts

    def matinale_campaign(self, now: int) -> list[Post]:
        """Le Quotidien imports a bought file into La Matinale's audience (Mailchimp reports
        each member an admin added, with no sign-up IP), then sends a Mailchimp campaign to
        the whole audience: one event that names no recipient."""
        posts = []
        for address in self.world.imported:
            body = pf.mailchimp_member(
                "subscribe",
                fired_at_ms=now - 2 * _DAY_MS,
                list_id=NEWSLETTER_LIST,
                member_id=_member(address),
                email=address,
                ip="",
                first_name=_first_name(address),
            )
            posts.append(Post(MAILCHIMP, body, pf.FORM, "import (admin subscribe)"))
        campaign = pf.mailchimp_campaign(
            fired_at_ms=now,
            campaign_id=MATINALE_CAMPAIGN,
            list_id=NEWSLETTER_LIST,
            subject="La Matinale: édition spéciale",
        )
        posts.append(Post(MAILCHIMP, campaign, pf.FORM, "campaign (whole audience)"))
        return posts

    # SendGrid senders ---------------------------------------------------------------------

    def _sendgrid(
        self,
        now: int,
        instance: str,
        to: list[str],
        campaign: str,
        name: str,
        categories: list[str],
        *,
        engagement: bool,
    ) -> list[Post]:
        ts = now // 1000
        events: list[dict[str, object]] = []
        for i, address in enumerate(to):
            message = self._id("sg-message", size=22)
            kinds = [("processed", -60), ("delivered", -58)]  # reported after the fact
            if engagement and i % 3 == 0:
                kinds.append(("open", -20))
            events += [
                pf.sendgrid_event(
                    kind,
                    event_id=self._id("sg", size=22),
                    message_id=message,
                    ts_s=ts + later,
                    email=address,
                    campaign_id=campaign,
                    campaign_name=name,
                    categories=categories,
                )
                for kind, later in kinds
            ]
        return [
            Post(instance, pf.sendgrid_body(b), pf.JSON, "send/deliver/open", events=len(b))
            for b in _batches(events, 20)
        ]

    def political(self, now: int) -> list[Post]:
        return self._sendgrid(
            now, SENDGRID_CAMPAIGN, self.world.rented, POLITICAL,
            "Lettre aux lecteurs", ["politique", "appel-aux-dons"], engagement=True,
        )  # fmt: skip

    def partners(self, now: int) -> list[Post]:
        leads = self.world.leads
        return self._sendgrid(
            now, SENDGRID_ROUTEUR, leads, SOLAIRE, "Panneaux solaires", ["offres"],
            engagement=True,
        ) + self._sendgrid(
            now, SENDGRID_ROUTEUR, leads[::2], AUTO, "Devis auto", ["offres"], engagement=False
        )  # fmt: skip

    def unnamed_partner(self, now: int) -> list[Post]:
        return self._sendgrid(
            now, SENDGRID_ROUTEUR, self.world.unnamed_targets, PRET, "Prêt express",
            ["offres"], engagement=False,
        )  # fmt: skip

    def early_sends(self, now: int) -> list[Post]:
        to = self.world.late_in_grace + self.world.late_after_grace
        return self._sendgrid(
            now, SENDGRID_ROUTEUR, to, SOLAIRE, "Panneaux solaires", ["offres"], engagement=False
        )

    # Boutique Soleil (Twilio) -------------------------------------------------------------

    def _sms(self, now: int, to: list[str], service: str, sender: str, what: str) -> list[Post]:
        posts = []
        for phone in to:
            sid = "SM" + self._id("sms")
            for status in ("sent", "delivered"):
                body = pf.twilio_status(
                    sid=sid,
                    status=status,
                    account=TWILIO_ACCOUNT,
                    service=service,
                    sender=sender,
                    to=phone,
                    dlr=pf.dlr_time(now) if status == "delivered" else "",
                )
                posts.append(Post(TWILIO, body, pf.FORM, f"{what} {status}"))
        return posts

    def promo(self, now: int) -> list[Post]:
        return self._sms(now, self.world.customers, PROMO_SERVICE, SHORT_CODE, "promo SMS")

    def replies(self, now: int) -> list[Post]:
        posts = []
        for phone in self.world.stoppers + self.world.thankers:
            stop = phone in self.world.stoppers
            body = pf.twilio_inbound(
                sid="SM" + self._id("inbound"),
                account=TWILIO_ACCOUNT,
                service=PROMO_SERVICE,
                sender=phone,
                to=SHORT_CODE,
                text="STOP" if stop else "Merci, à samedi !",
                opt_out="STOP" if stop else "",
            )
            posts.append(Post(TWILIO, body, pf.FORM, "STOP reply" if stop else "other reply"))
        return posts

    def orders(self, now: int) -> list[Post]:
        # a customer who replied STOP still gets the notice of the order she placed
        to = list(dict.fromkeys(self.world.stoppers[:1] + self.world.customers[:4]))
        return self._sms(now, to, ORDERS_SERVICE, ORDERS_SENDER, "order SMS")

    def promo_again(self, now: int) -> list[Post]:
        return self._sms(now, self.world.second_promo, PROMO_SERVICE, SHORT_CODE, "promo SMS")

    # Jeux & Concours Média (lead_post) ----------------------------------------------------

    def _leads(self, now: int, addresses: list[str]) -> list[Post]:
        posts = []
        for address in addresses:
            optin = now - (self.world.age[address] + 30) * _MIN_MS
            lead_id = "jcm-2027-" + self._id("lead", size=8)
            lead = {
                "lead_id": lead_id,
                "email": address,
                "first_name": _first_name(address),
                "optin_time": pf.iso(optin),
                "ip": _ip("lead", address),
                "user_agent": "Mozilla/5.0 (Linux; Android 14)",
                "source_url": "https://jeux.example.net/grand-concours-2027?sub=fb12",
                "consent_text": (
                    "J'accepte de recevoir par e-mail les offres d'Energie Verte et "
                    "d'Assur Direct, partenaires de Jeux & Concours Média."
                ),
                "notice_version": "jcm-partenaires-v3",
                "partners": list(PARTNERS),
                "purposes": ["offres", "partage_partenaires"],
                "channels": ["email"],
                "doi": True,
                "confirmation_time": pf.iso(optin + 2 * _MIN_MS),
                "trustedform_cert_url": "https://cert.trustedform.com/" + token(lead_id, size=40),
                "campaign_id": "grand-concours-2027",
            }
            posts.append(
                Post(
                    LEADS, pf.lead_body(lead), pf.JSON, "lead", headers={"idempotency-key": lead_id}
                )
            )
        return posts

    def leads(self, now: int) -> list[Post]:
        return self._leads(now, self.world.leads)

    def leads_in_grace(self, now: int) -> list[Post]:
        return self._leads(now, self.world.late_in_grace)

    def leads_after_grace(self, now: int) -> list[Post]:
        return self._leads(now, self.world.late_after_grace)

    # the order ----------------------------------------------------------------------------

    def phases(self) -> list[Phase]:
        g = self.grace_s
        phone = PhoneStory(self.world, self._id)
        return [
            Phase("subscribe", "Le Quotidien: readers subscribe to La Matinale "
                  "(Mailchimp, double opt-in); a few left since", self.subscriptions),
            Phase("receipts", "Le Quotidien: subscription receipts (Mandrill, transactional)",
                  self.receipts),
            Phase("newsletter", "Le Quotidien: La Matinale goes out (Mandrill), opens and "
                  "clicks follow", self.newsletter),
            Phase("matinale-campaign", "Le Quotidien imports a bought file into La Matinale, "
                  "then sends a Mailchimp campaign to the whole audience", self.matinale_campaign),
            Phase("promo", "Boutique Soleil: SMS promotion to its customers (Twilio, soft "
                  "opt-in)", self.promo),
            Phase("replies", "Boutique Soleil: some customers reply STOP, others reply "
                  "something else", self.replies),
            Phase("orders", "Boutique Soleil: order notifications (transactional SMS)",
                  self.orders),
            Phase("leads", "Jeux & Concours Média: co-registration leads whose consent "
                  "names Energie Verte and Assur Direct (lead post)", self.leads),
            Phase("partners", "Energie Verte and Assur Direct e-mail those leads (SendGrid, "
                  "via the Emailing Pro account)", self.partners),
            Phase("political", "DataMarket Brokers rents the newsletter readers to Campagne "
                  "2027, which e-mails them (SendGrid)", self.political),
            Phase("promo-again", "Boutique Soleil: second SMS promotion, the STOP list only "
                  "partly applied", self.promo_again),
            Phase("unnamed", "Crédit Facile, named by no consent, e-mails some of the leads "
                  "(SendGrid, Emailing Pro)", self.unnamed_partner),
            Phase("calls", "Mutuelle Horizon calls a rented file (Twilio Voice): no consent, "
                  "no Bloctel cleaning; some at 21:30, on a Sunday, on a holiday, five times "
                  "in a week", phone.calls),
            Phase("night-sms", "Fleurs de Lys: SMS promotion at 23:45 from the owner's 06 "
                  "number (Vonage)", phone.night_sms),
            Phase("late", "Energie Verte e-mails leads whose consent the vendor has not "
                  "posted yet (held for the grace period)", self.early_sends),
            Phase("late-in", f"Jeux & Concours Média posts part of that consent within the "
                  f"grace period ({g / 3:.0f} s later)", self.leads_in_grace,
                  after=("late", g / 3)),
            Phase("late-after", f"Jeux & Concours Média posts the rest after the grace period "
                  f"({after_grace(g):.0f} s later): corrections", self.leads_after_grace,
                  after=("late", after_grace(g))),
        ]  # fmt: skip
