"""``consentinel demo``: play the demo world through the real connectors.

    consentinel demo --config deploy/demo/connectors.yaml --ingest http://127.0.0.1:8585
                     [--seed N] [--scale small|normal] [--grace SECONDS]

Generates a deterministic synthetic world (``world``) and posts its story (``scenario``)
to the ingest server, each request signed as its platform signs it, with the secrets of
the instances in the connectors file:

- Le Quotidien's readers subscribe to its newsletter (Mailchimp, double opt-in); the
  newsletter and subscription receipts go out through Mandrill: lawful.
- Le Quotidien imports a bought file into the newsletter's Mailchimp audience (members
  with no consent), then sends a Mailchimp campaign to the whole audience, one event
  naming nobody: expanded per member, lawful for the subscribed readers, R1 and R2 for
  the imported file, nothing for those who left the list or were never on it.
- A list broker rents those readers to Campagne 2027, which e-mails them through
  SendGrid under a campaign declared political and rented: R1, R2, R17.
- Boutique Soleil texts its customers (Twilio); some reply STOP; a later promotion still
  reaches some of them: R5.
- A lead vendor posts co-registration leads naming two partners; the partners e-mail them
  (lawful) and so does Crédit Facile, named by nobody: R13.
- Some of a partner's sends precede their consent: posted within the grace period, the
  held uses are allowed; after it, the alerts raised meanwhile are resolved by
  corrections.
- Mutuelle Horizon calls a rented file (Twilio Voice) with no consent and no Bloctel
  cleaning: R12 on every call; some calls at 21:30, on a Sunday, on a public holiday:
  R10; five calls in a week to some people: R11 on the 5th (``phone``, ``slots``).
- Fleurs de Lys texts a promotion to its customers at 23:45 from the owner's 06 number
  (Vonage Messages API): R8 and R9. Run outside the SMS charter hours (08:00-21:30
  Paris), Boutique Soleil's promotions, sent as they are posted, announce R9 too.
- Deliveries, opens, clicks, replies and transactional messages all around.

It prints each phase, a summary of requests by connector instance and status, and the
incidents the monitor should open. Addresses never appear in its output: counts and
masked hints only. Exit status 1 when a request finally failed (non-2xx), 78 when the
connectors file does not fit the demo.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from consentinel.connectors import config as connectors_config
from consentinel.connectors.demo.cast import INSTANCES, Expected, expectations
from consentinel.connectors.demo.feed import Feed, HttpTransport, Report
from consentinel.connectors.demo.scenario import Story
from consentinel.connectors.demo.world import SCALES, World
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.settings import Settings

__all__ = ["Expected", "Story", "World", "expectations", "main", "summary"]


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="consentinel demo",
        description="Post the demo traffic through the real connectors to the ingest server.",
    )
    p.add_argument(
        "--config", default=None, help="the connectors file (deploy/demo/connectors.yaml)"
    )
    p.add_argument("--ingest", required=True, help="the ingest server, e.g. http://127.0.0.1:8585")
    p.add_argument("--seed", type=int, default=2027, help="seed of the synthetic world")
    p.add_argument("--scale", choices=sorted(SCALES), default="normal")
    p.add_argument(
        "--grace",
        type=float,
        default=None,
        help="the worker's grace period in seconds (default: CONSENTINEL_GRACE_SECONDS)",
    )
    p.add_argument("--pace", type=float, default=0.03, help="seconds between requests")
    p.add_argument(
        "--wait", type=float, default=90.0, help="seconds to wait for the ingest server to answer"
    )
    return p.parse_args(argv)


def summary(world: World, report: Report, out: TextIO) -> None:
    out.write("\nrequests by connector instance and status:\n")
    for instance, statuses in sorted(report.by_instance().items()):
        counts = ", ".join(f"{n} x {s or 'no answer'}" for s, n in sorted(statuses.items()))
        out.write(f"  {instance:24} {counts}  ({report.events[instance]} platform events)\n")
    if report.retries:
        out.write(f"  {report.retries} request(s) retried after 503/429/no answer\n")
    out.write(
        "\nincidents the monitor should open (controller | campaign | rule: alerts; on a fresh "
        "state: a second run on the same topics adds to the first):\n"
    )
    for e in expectations(world, report.phase_started):
        state = " -> resolved by corrections" if e.resolved else ""
        out.write(
            f"  {e.incident_key}: {e.alerts}{state}\n      {e.story}; e.g. {', '.join(e.hints)}\n"
        )
    out.write(
        f"  lawful, no incident: Le Quotidien's newsletter, receipts and its Mailchimp "
        f"campaign to its subscribed readers ({len(world.newsletter_readers)} readers), "
        f"Assur Direct and on-time Energie Verte offers ({len(world.leads)} leads), "
        f"{len(world.late_in_grace)} held sends whose consent came within the grace period, "
        f"transactional SMS, deliveries, opens, clicks\n"
    )
    if report.failures:
        out.write(f"\n{len(report.failures)} request(s) FAILED:\n")
        for line in report.failures[:20]:
            out.write(f"  {line}\n")
        if len(report.failures) > 20:
            out.write(f"  ... and {len(report.failures) - 20} more\n")
    out.flush()


def main(argv: list[str]) -> int:
    args = _parse(argv)
    settings = Settings.from_env()
    cfg = connectors_config.load(connectors_config.default_path(args.config), settings)
    grace = settings.grace_seconds if args.grace is None else args.grace
    world = World.build(args.seed, args.scale)
    transport = HttpTransport(args.ingest)
    feed = Feed(cfg, transport, pace_s=args.pace)
    problems = feed.check(INSTANCES)
    if problems:
        raise FatalConfigError(problems, "the demo's connectors file")
    out = sys.stdout
    out.write(
        f"consentinel demo: seed {args.seed}, scale {args.scale}, grace period {grace:g} s, "
        f"ingest {args.ingest}\n"
    )
    if not transport.wait_ready(args.wait):
        out.write(f"consentinel demo: the ingest server at {args.ingest} does not answer\n")
        return 69  # EX_UNAVAILABLE
    story = Story(world, grace, run=str(time.time_ns()))
    report = feed.play(story.phases())
    summary(world, report, out)
    return 0 if report.ok else 1
