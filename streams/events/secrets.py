"""Secret references, resolved in one place for connectors and alert sinks.

A secret is never written in a configuration file: the file holds a reference,

- ``env:NAME``: the value of the environment variable ``NAME``;
- ``file:PATH``: the content of the file ``PATH`` (relative paths are read from the
  directory of the configuration file), e.g. a mounted Kubernetes or Docker secret.

Surrounding whitespace (the newline an editor or ``echo`` adds) is stripped. An empty or
missing value is a problem, never an empty secret.

While a secret is rotated, the old value is configured beside the new one under
``<name>_previous``; :func:`with_previous` gives both, newest first, so a verifier accepts
either until the platform has switched.

Nothing here prints or logs a secret value: problems name the reference only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from consentinel.streams.events.errors import ConsentinelError
from consentinel.streams.events.settings import Secret

PREFIXES = ("env:", "file:")


class UnresolvedSecret(ConsentinelError):
    """A reference that cannot be resolved. ``kind`` is ``env`` or ``file``, ``name`` the
    variable or path it names, ``reason`` what is wrong (``is not set``...); ``problem`` is
    the whole sentence, for the person fixing the configuration (the caller prefixes where
    the reference was written)."""

    def __init__(self, kind: str, name: str, reason: str) -> None:
        self.kind = kind
        self.name = name
        self.reason = reason
        what = f"environment variable {name}" if kind == "env" else name
        self.problem = f"{what} {reason}"
        super().__init__(self.problem)

    @property
    def shown(self) -> str:
        """The reference as a person writes it in prose: ``$NAME`` or the path."""
        return f"${self.name}" if self.kind == "env" else self.name


def is_reference(value: object) -> bool:
    """Whether ``value`` is written as ``env:NAME`` or ``file:PATH``."""
    return isinstance(value, str) and value.startswith(PREFIXES)


def resolve(ref: str, *, environ: Mapping[str, str], base_dir: Path | None = None) -> Secret:
    """The secret a reference names.

    Blocks on reading the file of a ``file:`` reference (a local read). Raises
    :class:`UnresolvedSecret` when the reference is malformed, the variable is unset or
    empty, or the file cannot be read or is empty.
    """
    kind, sep, name = ref.partition(":")
    if not sep or kind not in ("env", "file") or not name.strip():
        raise UnresolvedSecret(kind, name, "is not a reference: write env:NAME or file:PATH")
    if kind == "env":
        value = environ.get(name, "").strip()
        if not value:
            raise UnresolvedSecret("env", name, "is not set (or empty)")
        return Secret(value.encode("utf-8"))
    path = Path(name)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise UnresolvedSecret("file", str(path), f"cannot be read ({exc.strerror})") from None
    if not data:
        raise UnresolvedSecret("file", str(path), "is empty")
    return Secret(data)


def with_previous(secrets: Mapping[str, Secret], name: str) -> list[bytes]:
    """The secret ``name`` and, while rotating, ``<name>_previous`` when configured.

    Raises :class:`ConsentinelError` naming the secret when ``name`` is not configured.
    """
    try:
        found = [secrets[name].reveal()]
    except KeyError:
        raise ConsentinelError(f"secret {name!r} is not configured") from None
    previous = secrets.get(f"{name}_previous")
    if previous is not None:
        found.append(previous.reveal())
    return found


__all__ = ["PREFIXES", "UnresolvedSecret", "is_reference", "resolve", "with_previous"]
