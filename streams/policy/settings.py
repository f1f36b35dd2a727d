"""The part of the settings the policy reads, frozen and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..events.errors import FatalConfigError
from ..events.records import Severity
from ..events.settings import Settings

STRENGTHS = ("violation", "warning", "off")


def _default_allowance() -> Mapping[str, int]:
    return MappingProxyType({"email": 172_800_000, "sms": 0, "phone": 0})


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """What the rules need: grace, R5 allowances, R3/R13 strengths, R20 retention, R23 wait."""

    grace_ms: int = 120_000
    allowance_ms_by_channel: Mapping[str, int] = field(default_factory=_default_allowance)
    r3_strength: str = "violation"  # violation | warning | off
    r13_strength: str = "violation"  # violation | warning | off
    retention_days: int = 1095
    max_versions: int = 64
    # R9: the SMS charter's sending window, minutes after local midnight [start, end)
    sms_hours: tuple[int, int] = (480, 1290)
    # R23: how long a use of a purchased lead whose certificate is only claimed is held,
    # waiting for its verification, before it raises R23 (from when the use reached Kafka)
    certificate_wait_ms: int = 900_000

    def __post_init__(self) -> None:
        problems = [
            f"{name}={value!r}: expected one of {', '.join(STRENGTHS)}"
            for name, value in (
                ("r3_strength", self.r3_strength),
                ("r13_strength", self.r13_strength),
            )
            if value not in STRENGTHS
        ]
        if self.retention_days < 1:
            problems.append(f"retention_days={self.retention_days}: expected at least 1")
        if self.certificate_wait_ms < 0:
            problems.append(f"certificate_wait_ms={self.certificate_wait_ms}: expected >= 0")
        if self.max_versions < 2:
            problems.append(f"max_versions={self.max_versions}: expected at least 2")
        start, end = self.sms_hours
        if not 0 <= start < end <= 1440:
            problems.append(f"sms_hours={self.sms_hours}: expected 0 <= start < end <= 1440")
        if problems:
            raise FatalConfigError(problems, "policy settings")

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicySettings:
        return cls(
            grace_ms=int(settings.grace_seconds * 1000),
            allowance_ms_by_channel=MappingProxyType(
                {ch: settings.allowance_ms(ch) for ch in settings.withdrawal_allowance_s}
            ),
            r3_strength=settings.r3_strength,
            r13_strength=settings.r13_strength,
            retention_days=settings.retention_days,
            max_versions=settings.ledger_max_versions,
            certificate_wait_ms=int(settings.certificate_wait_seconds * 1000),
        )

    def allowance_ms(self, channel: str) -> int:
        """R5 processing allowance after a withdrawal on ``channel`` (0 when not set)."""
        return int(self.allowance_ms_by_channel.get(channel, 0))

    @property
    def retention_ms(self) -> int:
        return self.retention_days * 86_400_000


_SEVERITY_OF_STRENGTH = {"violation": Severity.CRITICAL, "warning": Severity.WARNING}


def strength_severity(strength: str) -> Severity | None:
    """violation -> critical, warning -> warning, off -> None (rule disabled)."""
    return _SEVERITY_OF_STRENGTH.get(strength)
