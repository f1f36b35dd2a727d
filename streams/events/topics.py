"""Topic names and their configuration (DESIGN.md, "Topics")."""

from __future__ import annotations

from dataclasses import dataclass, field

CONSENT = "consentinel.consent.v1"
USAGE = "consentinel.usage.v1"
REGISTRY = "consentinel.registry.v1"
VERDICTS = "consentinel.verdicts.v1"
ALERTS = "consentinel.alerts.v1"
DEADLETTER = "consentinel.deadletter.v1"
AUDIT = "consentinel.audit.v1"

_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def topic_name(base: str, prefix: str = "") -> str:
    """A topic's name in a deployment (``prefix`` isolates tests and tenants)."""
    return f"{prefix}{base}"


def topic_specs(partitions: int, prefix: str = "") -> list[TopicSpec]:
    """Every topic of DESIGN.md with its configuration.

    Usage, consent and verdicts share ``partitions`` (co-partitioned by subject key);
    the registry is compacted and small; alerts and dead letters are partitioned like
    the rest so alert routers can scale with workers.
    """
    keep_forever = {"retention.ms": "-1", "cleanup.policy": "delete"}
    return [
        TopicSpec(
            topic_name(CONSENT, prefix),
            partitions,
            dict(keep_forever),
            "consent history: evidence, kept without time limit",
        ),
        TopicSpec(
            topic_name(USAGE, prefix),
            partitions,
            {"retention.ms": str(30 * _DAY_MS), "cleanup.policy": "delete"},
            "uses of addresses, co-partitioned with consent",
        ),
        TopicSpec(
            topic_name(REGISTRY, prefix),
            1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
            "purpose declarations, compacted, read whole by every worker",
        ),
        TopicSpec(
            topic_name(VERDICTS, prefix),
            partitions,
            {"retention.ms": str(400 * _DAY_MS), "cleanup.policy": "delete"},
            "every decision, for audit and coverage",
        ),
        TopicSpec(
            topic_name(ALERTS, prefix),
            partitions,
            {"retention.ms": str(400 * _DAY_MS), "cleanup.policy": "delete"},
            "violations and warnings, deterministic ids",
        ),
        TopicSpec(
            topic_name(DEADLETTER, prefix),
            partitions,
            {"retention.ms": str(30 * _DAY_MS), "cleanup.policy": "delete"},
            "what could not be taken in, sealed, with why",
        ),
        TopicSpec(
            topic_name(AUDIT, prefix),
            1,
            dict(keep_forever),
            "who looked up or erased which subject, when (data-subject requests)",
        ),
    ]


#: Topics that must have equal partition counts (a mismatch = silent false alerts).
CO_PARTITIONED = (CONSENT, USAGE)
