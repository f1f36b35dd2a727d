"""An instance's secrets during rotation (see ``consentinel.streams.events.secrets``)."""

from __future__ import annotations

from consentinel.connectors.contract import Instance
from consentinel.streams.events import secrets as shared
from consentinel.streams.events.errors import ConsentinelError


def secrets(instance: Instance, name: str) -> list[bytes]:
    """The secret ``name`` and, while rotating, ``<name>_previous`` when configured.

    Raises ``ConsentinelError`` naming the instance when ``name`` is not configured."""
    try:
        return shared.with_previous(instance.secrets, name)
    except ConsentinelError:
        raise ConsentinelError(
            f"instance {instance.name!r}: secret {name!r} is not configured"
        ) from None
