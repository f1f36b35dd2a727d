"""An instance's secrets during rotation (see ``consentinel.streams.events.secrets``): the
declaration of a rotating secret and its resolution, which accepts ``<name>_previous`` too."""

from __future__ import annotations

from consentinel.connectors.contract import ConfigField, Instance
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


def rotating_secret(name: str, doc: str, *, required: bool = True) -> tuple[ConfigField, ...]:
    """The options of a secret that :func:`secrets` reads: ``name`` and its
    ``<name>_previous`` twin, accepted while the secret is being rotated. Spread it into a
    ``config_schema``: ``(*tk.rotating_secret("token", "..."), ...)``."""
    return (
        ConfigField(name, doc, required=required, secret=True),
        ConfigField(f"{name}_previous", f"previous {name}, accepted while rotating", secret=True),
    )
