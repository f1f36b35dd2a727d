"""The demo's synthetic world: who exists, who agreed to what, who gets used how.

Everything is derived from a seed, so a given ``(seed, scale)`` always gives the same
people in the same roles. Addresses are synthetic and reserved for documentation:
e-mail under ``example.org``/``.net``/``.com`` (RFC 2606), mobile numbers in the French
fiction range ``+33 6 39 98 xx xx``. They exist only in this process and in the requests
it posts to the ingest server; nothing here prints them (``hint`` gives the masked form).

The roles (each a list of addresses, disjoint unless said otherwise):

- ``readers``: Le Quotidien's newsletter readers; ``unsubscribed`` left since (a subset);
  ``paying``: readers with a paid subscription (transactional mail);
- ``rented``: readers the list broker rented to Campagne 2027 (some had unsubscribed);
- ``customers``: Boutique Soleil's customers (phones); ``stoppers`` replied STOP;
  ``texted_after_stop``: stoppers the second promotion still went to; ``thankers``
  replied something else;
- ``leads``: co-registration leads whose consent names Energie Verte and Assur Direct;
  ``unnamed_targets``: leads Crédit Facile (named nowhere) e-mails;
  ``late_in_grace`` / ``late_after_grace``: leads Energie Verte e-mails before their
  consent is posted, which then arrives within / after the grace period;
- ``prospects``: phones in the file Mutuelle Horizon rented and calls (each once, at a
  lawful hour, unless below); ``called_late`` (at 21:30), ``called_sunday``,
  ``called_on_holiday``: called once, at that time instead; ``pestered``: called five times
  in a week (disjoint subsets of ``prospects``);
- ``night_texted``: Fleurs de Lys's customers, texted a promotion at 23:45 from the
  owner's 06 number;
- ``imported``: a file Le Quotidien bought and imported into La Matinale's Mailchimp
  audience (members with no consent; none of them a reader).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from consentinel.streams.events.identity import mask, normalize

FIRST = (
    "alice", "bruno", "camille", "david", "emma", "fabien", "gaelle", "hugo", "ines", "jules",
    "karima", "louis", "manon", "nadia", "olivier", "pauline", "quentin", "rose", "samir",
    "theo", "ursule", "victor", "yasmine", "zoe",
)  # fmt: skip
LAST = (
    "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand", "leroy",
    "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david", "bertrand", "roux",
    "vincent", "fournier", "morel", "girard", "andre", "mercier",
)  # fmt: skip
DOMAINS = ("example.org", "example.net", "example.com")

#: How many of each role, per scale.
SCALES: dict[str, dict[str, int]] = {
    "small": {
        "readers": 12, "unsubscribed": 2, "paying": 4, "rented": 8,
        "customers": 8, "stoppers": 3, "texted_after_stop": 2, "thankers": 1,
        "leads": 6, "unnamed_targets": 3, "late_in_grace": 2, "late_after_grace": 2,
        "prospects": 6, "called_late": 1, "called_sunday": 1, "called_on_holiday": 1,
        "pestered": 1, "night_texted": 3, "imported": 3,
    },
    "normal": {
        "readers": 60, "unsubscribed": 6, "paying": 15, "rented": 40,
        "customers": 30, "stoppers": 8, "texted_after_stop": 5, "thankers": 4,
        "leads": 24, "unnamed_targets": 8, "late_in_grace": 5, "late_after_grace": 4,
        "prospects": 20, "called_late": 3, "called_sunday": 2, "called_on_holiday": 2,
        "pestered": 2, "night_texted": 10, "imported": 12,
    },
}  # fmt: skip


def hint(address: str) -> str:
    """The masked form people may see (``a***@e***.org``, ``+33 6** ** ** 12``)."""
    channel = "email" if "@" in address else "sms"
    return mask(normalize(address, "email" if channel == "email" else "phone"), channel)


@dataclass(frozen=True)
class World:
    seed: int
    scale: str
    readers: list[str]
    unsubscribed: list[str]
    paying: list[str]
    rented: list[str]
    customers: list[str]
    stoppers: list[str]
    texted_after_stop: list[str]
    thankers: list[str]
    leads: list[str]
    unnamed_targets: list[str]
    late_in_grace: list[str]
    late_after_grace: list[str]
    prospects: list[str]
    called_late: list[str]
    called_sunday: list[str]
    called_on_holiday: list[str]
    pestered: list[str]
    night_texted: list[str]
    #: per address: days ago it subscribed (readers) or opted in (leads, in minutes)
    age: dict[str, int] = field(default_factory=dict)
    imported: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, seed: int = 2027, scale: str = "normal") -> World:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}: expected {', '.join(SCALES)}")
        n = SCALES[scale]
        rng = random.Random(seed)
        emails = _emails(
            rng, n["readers"] + n["leads"] + n["late_in_grace"] + n["late_after_grace"]
        )
        readers = emails[: n["readers"]]
        lead_pool = emails[n["readers"] :]
        leads = lead_pool[: n["leads"]]
        late_in = lead_pool[n["leads"] : n["leads"] + n["late_in_grace"]]
        late_after = lead_pool[n["leads"] + n["late_in_grace"] :]
        unsubscribed = rng.sample(readers, n["unsubscribed"])
        active = [r for r in readers if r not in unsubscribed]
        paying = rng.sample(active, n["paying"])
        # the broker's file predates the unsubscriptions: it rents leavers too
        rented = sorted(rng.sample(active, n["rented"] - 1) + unsubscribed[:1], key=readers.index)
        customers = _phones(rng, n["customers"])
        stoppers = rng.sample(customers, n["stoppers"])
        texted_after_stop = stoppers[: n["texted_after_stop"]]
        thankers = rng.sample([c for c in customers if c not in stoppers], n["thankers"])
        unnamed = rng.sample(leads, n["unnamed_targets"])
        age = {r: rng.randint(3, 700) for r in readers}  # days since subscription
        age.update({lead: rng.randint(20, 240) for lead in leads + late_in + late_after})  # min
        more = _phones(rng, n["prospects"] + n["night_texted"], taken=set(customers))
        prospects, night = more[: n["prospects"]], more[n["prospects"] :]
        singled = rng.sample(
            prospects, sum(n[k] for k in ("called_late", "called_sunday", "called_on_holiday"))
        )
        late_call, sunday, holiday = _split(singled, n, "called_late", "called_sunday")
        pestered = rng.sample([p for p in prospects if p not in singled], n["pestered"])
        # drawn apart, last: the roles above stay what they were before this one existed
        taken = set(emails)
        imported = [
            a
            for a in _emails(random.Random(seed * 31 + 7), n["imported"] + len(taken))
            if a not in taken
        ][: n["imported"]]
        return cls(
            seed=seed,
            scale=scale,
            readers=readers,
            unsubscribed=unsubscribed,
            paying=paying,
            rented=rented,
            customers=customers,
            stoppers=stoppers,
            texted_after_stop=texted_after_stop,
            thankers=thankers,
            leads=leads,
            unnamed_targets=sorted(unnamed, key=leads.index),
            late_in_grace=late_in,
            late_after_grace=late_after,
            prospects=prospects,
            called_late=late_call,
            called_sunday=sunday,
            called_on_holiday=holiday,
            pestered=sorted(pestered, key=prospects.index),
            night_texted=night,
            age=age,
            imported=imported,
        )

    @property
    def newsletter_readers(self) -> list[str]:
        """Readers still subscribed: La Matinale goes to them."""
        return [r for r in self.readers if r not in self.unsubscribed]

    @property
    def second_promo(self) -> list[str]:
        """Customers the second promotion goes to: all but the stoppers it was removed for."""
        skipped = set(self.stoppers) - set(self.texted_after_stop)
        return [c for c in self.customers if c not in skipped]

    @property
    def called_off_hours(self) -> list[str]:
        """Prospects called outside the legal calling hours (R10)."""
        return [*self.called_late, *self.called_sunday, *self.called_on_holiday]

    @property
    def calls(self) -> int:
        """Calls the campaign makes: one per prospect, five to each pestered one."""
        return len(self.prospects) + 4 * len(self.pestered)

    def addresses(self) -> list[str]:
        """Every synthetic address of the world (for privacy scans)."""
        return [*self.readers, *self.customers, *self.leads, *self.late_in_grace,
                *self.late_after_grace, *self.prospects, *self.night_texted,
                *self.imported]  # fmt: skip


def _emails(rng: random.Random, count: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        address = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
        if address not in seen:
            seen.add(address)
            out.append(address)
    return out


#: The fiction-range numbers the demo's own senders use: never a person of the world.
OWN_NUMBERS = ("+33639989998", "+33639989999")


def _phones(rng: random.Random, count: int, taken: set[str] | None = None) -> list[str]:
    """``count`` numbers of the fiction range ``+33 6 39 98 xx xx``, none in ``taken`` nor
    the demo's own."""
    used = {*OWN_NUMBERS, *(taken or ())}
    numbers = rng.sample([n for n in range(10_000) if f"+3363998{n:04d}" not in used], count)
    return [f"+3363998{n:04d}" for n in numbers]


def _split(items: list[str], n: dict[str, int], *first: str) -> list[list[str]]:
    """``items`` cut into consecutive parts of sizes ``n[k]`` for ``first``, then the rest."""
    parts, start = [], 0
    for key in first:
        parts.append(items[start : start + n[key]])
        start += n[key]
    return [*parts, items[start:]]


def token(*parts: object, size: int = 32) -> str:
    """A deterministic hex id (message ids, SIDs) from its parts."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:size]
