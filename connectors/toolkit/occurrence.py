"""One platform event about one address, bound once: its events name only what is theirs.

``emit.at(dedupe, address, occurred_at_ms)`` gives an :class:`Occurrence`; its methods are
the :class:`~consentinel.connectors.toolkit.emitter.Emitter` methods without the four
arguments every event of the occurrence shares (the platform's identity of the event, the
address, the event time). Pure: never blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from consentinel.connectors.contract import Address
from consentinel.streams.events.records import ConsentAction, ConsentEvent, UsageEvent, UsageKind

if TYPE_CHECKING:
    from consentinel.connectors.toolkit.emitter import Emitter


@dataclass(frozen=True, slots=True)
class Occurrence:
    emit: Emitter
    dedupe: tuple[object, ...]
    address: Address
    occurred_at_ms: int

    def usage(self, kind: UsageKind, **usage: Any) -> UsageEvent:
        """See :meth:`Emitter.usage`."""
        return self.emit.usage(self.dedupe, kind, self.address, self.occurred_at_ms, **usage)

    def usages(self, kind: UsageKind, **usage: Any) -> list[UsageEvent]:
        """See :meth:`Emitter.usages` (``send_derived_from=`` adds the implied send)."""
        return self.emit.usages(self.dedupe, kind, self.address, self.occurred_at_ms, **usage)

    def consent(self, action: ConsentAction, **consent: Any) -> ConsentEvent:
        """See :meth:`Emitter.consent`."""
        return self.emit.consent(self.dedupe, action, self.address, self.occurred_at_ms, **consent)

    def proven(self, action: ConsentAction, **proven: Any) -> ConsentEvent:
        """See :meth:`Emitter.proven`."""
        return self.emit.proven(self.dedupe, action, self.address, self.occurred_at_ms, **proven)

    def scoped(self, action: ConsentAction, **scoped: Any) -> ConsentEvent:
        """See :meth:`Emitter.scoped`."""
        return self.emit.scoped(self.dedupe, action, self.address, self.occurred_at_ms, **scoped)
