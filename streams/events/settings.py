"""One frozen settings object, from the environment (and an optional file).

Every setting is ``CONSENTINEL_<NAME>`` in the environment, or ``<name>: value`` in the
YAML file named by ``CONSENTINEL_SETTINGS_FILE`` (the environment wins). ``from_env``
validates everything and raises ``FatalConfigError`` listing every problem at once.
Secrets are ``Secret`` values: they print as ``Secret('***')``.

In development (the default ``CONSENTINEL_ENV=development``) a missing pepper or token
is generated once, kept under ``CONSENTINEL_HOME`` (outside the repository) and
announced; in production a missing secret is a fatal error.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FatalConfigError

_CHANNELS = ("email", "sms", "phone", "postal", "rcs", "whatsapp", "web")


class Secret:
    """A secret value that never prints."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    home: Path = Path.home() / ".cache" / "consentinel"
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = 6
    # replicas of every topic consentinel creates (3 on a production cluster, with the
    # brokers' min.insync.replicas at 2); 1 fits the local single-node broker only
    replication_factor: int = 1
    app_id: str = "consentinel"
    default_region: str = "FR"
    grace_seconds: float = 120.0
    certificate_wait_seconds: float = 900.0
    # R23: the TrustedForm-style certificate API ``certificates verify`` calls, and a
    # reference (env:NAME or file:PATH) to its API key
    certificate_endpoint: str = "https://cert.trustedform.com"
    certificate_key: str = ""
    # R23, Jornaya LeadiD: its Authenticate API, the account code (``lac``) and an optional
    # reference (env:NAME or file:PATH) to a bearer key
    certificate_leadid_endpoint: str = "https://api.leadid.com"
    certificate_leadid_account: str = ""
    certificate_leadid_key: str = ""
    withdrawal_allowance_s: Mapping[str, float] = field(
        default_factory=lambda: {"email": 172_800.0, "sms": 0.0, "phone": 0.0}
    )
    r13_strength: str = "violation"  # violation | warning | off
    r3_strength: str = "violation"  # violation | warning | off
    retention_days: int = 1095
    ledger_max_versions: int = 64
    web_host: str = "127.0.0.1"
    worker_port: int = 6066
    ingest_port: int = 8585
    console_port: int = 8686
    metrics_port: int = 9464
    log_level: str = "INFO"
    # the worker's youngest-generation GC threshold after start-up (worker.gctune); 0:
    # Python's defaults
    gc_threshold: int = 50_000
    # how long the worker's agent waits for more records when it finds fewer than
    # ``worker.agent.LINGER_BELOW`` buffered (worker.agent); 0: it takes them at once
    batch_linger_ms: int = 10
    pepper: Secret = field(default_factory=lambda: Secret(b""), repr=False)
    token: Secret = field(default_factory=lambda: Secret(b""), repr=False)
    # reference (env:NAME or file:PATH) to the Ed25519 seed that signs evidence packs
    evidence_key: str = ""
    announcements: tuple[str, ...] = ()

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    def topic(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    def allowance_ms(self, channel: str) -> int:
        return int(self.withdrawal_allowance_s.get(channel, 0.0) * 1000)

    def describe(self) -> dict[str, Any]:
        """Every setting, secrets masked: what ``consentinel settings`` prints."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "announcements":
                continue
            value = getattr(self, f.name)
            out[f.name] = repr(value) if isinstance(value, Secret) else value
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return _load(dict(os.environ if environ is None else environ))


# -- loading -----------------------------------------------------------------------------


def _read_file(path: str, problems: list[str]) -> dict[str, str]:
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        problems.append(f"CONSENTINEL_SETTINGS_FILE={path}: cannot read it ({exc.strerror})")
        return {}
    except Exception as exc:  # yaml errors carry the line
        problems.append(f"CONSENTINEL_SETTINGS_FILE={path}: not valid YAML ({exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"CONSENTINEL_SETTINGS_FILE={path}: expected a mapping of settings")
        return {}
    return {f"CONSENTINEL_{str(k).upper()}": str(v) for k, v in data.items()}


def _num(
    raw: dict[str, str],
    name: str,
    conv: Callable[[str], Any],
    default: Any,
    problems: list[str],
    low: float | None = None,
    high: float | None = None,
) -> Any:
    key = f"CONSENTINEL_{name}"
    if key not in raw:
        return default
    try:
        value = conv(raw[key])
    except ValueError:
        kind = {"int": "whole number", "float": "number"}.get(conv.__name__, conv.__name__)
        problems.append(f"{key}={raw[key]!r}: expected a {kind} (e.g. {default})")
        return default
    if (low is not None and value < low) or (high is not None and value > high):
        problems.append(f"{key}={value}: expected between {low} and {high}")
        return default
    return value


def _choice(
    raw: dict[str, str], name: str, default: str, allowed: tuple[str, ...], problems: list[str]
) -> str:
    key = f"CONSENTINEL_{name}"
    value = raw.get(key, default).strip().lower()
    if value not in allowed:
        problems.append(f"{key}={value!r}: expected one of {', '.join(allowed)}")
        return default
    return value


def _secret(
    raw: dict[str, str],
    name: str,
    home: Path,
    env: str,
    problems: list[str],
    notes: list[str],
    size: int,
) -> Secret:
    file_key, value_key = f"CONSENTINEL_{name}_FILE", f"CONSENTINEL_{name}"
    if raw.get(file_key):
        try:
            value = Path(raw[file_key]).read_bytes().strip()
        except OSError as exc:
            problems.append(f"{file_key}={raw[file_key]}: cannot read it ({exc.strerror})")
            return Secret(b"")
        if len(value) < 16:
            problems.append(f"{file_key}: the secret is shorter than 16 bytes; make a longer one")
        return Secret(value)
    if raw.get(value_key):
        value = raw[value_key].encode("utf-8")
        if len(value) < 16:
            problems.append(f"{value_key}: the secret is shorter than 16 bytes; make a longer one")
        return Secret(value)
    if env == "production":
        problems.append(
            f"{file_key} (or {value_key}) is not set: production needs a secret; "
            f"create one with `head -c 32 /dev/urandom | base64 > FILE`"
        )
        return Secret(b"")
    path = home / "secrets" / f"dev-{name.lower()}"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(size))
            notes.append(f"development {name.lower()} generated and kept at {path}")
        return Secret(path.read_bytes().strip())
    except FileExistsError:
        return Secret(path.read_bytes().strip())
    except OSError as exc:
        problems.append(f"cannot keep a development {name.lower()} at {path} ({exc.strerror})")
        return Secret(b"")


def _allowance(raw: dict[str, str], problems: list[str]) -> dict[str, float]:
    out = {"email": 172_800.0, "sms": 0.0, "phone": 0.0}
    key = "CONSENTINEL_WITHDRAWAL_ALLOWANCE"
    if key not in raw:
        return out
    for part in filter(None, (p.strip() for p in raw[key].split(","))):
        channel, _, seconds = part.partition("=")
        if channel not in _CHANNELS:
            problems.append(f"{key}: unknown channel {channel!r} (expected {', '.join(_CHANNELS)})")
            continue
        try:
            out[channel] = float(seconds)
        except ValueError:
            problems.append(f"{key}: {part!r} should be channel=seconds, e.g. email=172800")
    return out


def _load(environ: dict[str, str]) -> Settings:
    problems: list[str] = []
    notes: list[str] = []
    raw: dict[str, str] = {}
    if environ.get("CONSENTINEL_SETTINGS_FILE"):
        raw.update(_read_file(environ["CONSENTINEL_SETTINGS_FILE"], problems))
    raw.update({k: v for k, v in environ.items() if k.startswith("CONSENTINEL_")})

    env = _choice(raw, "ENV", "development", ("development", "production", "test"), problems)
    home = Path(raw.get("CONSENTINEL_HOME") or Path.home() / ".cache" / "consentinel")
    region = raw.get("CONSENTINEL_DEFAULT_REGION", "FR").upper()
    if len(region) != 2 or not region.isalpha():
        problems.append(
            f"CONSENTINEL_DEFAULT_REGION={region!r}: expected an ISO country code like FR"
        )
    bootstrap = raw.get("CONSENTINEL_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            problems.append(
                f"CONSENTINEL_BOOTSTRAP_SERVERS: {server!r} should be host:port[,host:port]"
            )
    values: dict[str, Any] = {
        "env": env,
        "home": home,
        "bootstrap_servers": bootstrap,
        "topic_prefix": raw.get("CONSENTINEL_TOPIC_PREFIX", ""),
        "app_id": raw.get("CONSENTINEL_APP_ID", "consentinel"),
        "partitions": _num(raw, "PARTITIONS", int, 6, problems, 1, 1024),
        "replication_factor": _num(raw, "REPLICATION_FACTOR", int, 1, problems, 1, 32),
        "default_region": region,
        "grace_seconds": _num(raw, "GRACE_SECONDS", float, 120.0, problems, 0, 86_400),
        "certificate_wait_seconds": _num(
            raw, "CERTIFICATE_WAIT_SECONDS", float, 900.0, problems, 0, 604_800
        ),
        "withdrawal_allowance_s": _allowance(raw, problems),
        "r13_strength": _choice(
            raw, "R13_STRENGTH", "violation", ("violation", "warning", "off"), problems
        ),
        "r3_strength": _choice(
            raw, "R3_STRENGTH", "violation", ("violation", "warning", "off"), problems
        ),
        "retention_days": _num(raw, "RETENTION_DAYS", int, 1095, problems, 1, 36_500),
        "ledger_max_versions": _num(raw, "LEDGER_MAX_VERSIONS", int, 64, problems, 2, 10_000),
        "web_host": raw.get("CONSENTINEL_WEB_HOST", "127.0.0.1"),
        "worker_port": _num(raw, "WORKER_PORT", int, 6066, problems, 1, 65_535),
        "ingest_port": _num(raw, "INGEST_PORT", int, 8585, problems, 1, 65_535),
        "console_port": _num(raw, "CONSOLE_PORT", int, 8686, problems, 1, 65_535),
        "metrics_port": _num(raw, "METRICS_PORT", int, 9464, problems, 1, 65_535),
        "log_level": _choice(
            raw, "LOG_LEVEL", "info", ("debug", "info", "warning", "error"), problems
        ).upper(),
        "gc_threshold": _num(raw, "GC_THRESHOLD", int, 50_000, problems, 0, 10_000_000),
        "batch_linger_ms": _num(raw, "BATCH_LINGER_MS", int, 10, problems, 0, 1_000),
        "evidence_key": raw.get("CONSENTINEL_EVIDENCE_KEY", ""),
        "certificate_endpoint": raw.get(
            "CONSENTINEL_CERTIFICATE_ENDPOINT", "https://cert.trustedform.com"
        ),
        "certificate_key": raw.get("CONSENTINEL_CERTIFICATE_KEY", ""),
        "certificate_leadid_endpoint": raw.get(
            "CONSENTINEL_CERTIFICATE_LEADID_ENDPOINT", "https://api.leadid.com"
        ),
        "certificate_leadid_account": raw.get("CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT", ""),
        "certificate_leadid_key": raw.get("CONSENTINEL_CERTIFICATE_LEADID_KEY", ""),
    }
    values["pepper"] = _secret(raw, "PEPPER", home, env, problems, notes, 32)
    values["token"] = _secret(raw, "TOKEN", home, env, problems, notes, 24)
    if problems:
        raise FatalConfigError(problems, "consentinel settings")
    for note in notes:
        print(f"consentinel: {note}", file=sys.stderr)
    return Settings(**values, announcements=tuple(notes))
