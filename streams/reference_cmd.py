"""The reference for topics, records and settings, generated from their definitions.

``events/REFERENCE.md`` is this module's output, checked in; a test
regenerates it and fails when it differs, so a record field, a topic or a setting added
without regenerating is caught. Regenerate with ``consentinel reference all --write``.

- Topics come from ``topics.topic_specs`` (names, partitions, configuration, purpose);
  what each one is keyed by and carries is ``TOPIC_RECORDS`` below.
- Records come from the dataclasses of ``records``: every field with its type, its
  default and the comment written beside it; enums with their values.
- Settings come from ``settings.Settings``: the defaults are those ``Settings.from_env``
  loads from an empty environment, and the accepted values are what it answers when given
  an invalid one, so the reference says what the loader does, not what someone remembered.

What blocks: ``render`` reads this package's source (for the field comments) and loads
settings from a synthetic environment; it writes nothing. ``main`` writes ``REFERENCE.md``
only with ``--write``. Nothing here raises for a well-formed tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import inspect
import io
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .events import records, topics
from .events.errors import FatalConfigError
from .events.settings import Secret, Settings

PATH = Path(__file__).parent / "events" / "REFERENCE.md"

#: What each topic is keyed by and what its values are.
TOPIC_RECORDS: dict[str, tuple[str, type[Any]]] = {
    topics.CONSENT: ("subject key (HMAC of the normalized address)", records.ConsentEvent),
    topics.USAGE: ("subject key (HMAC of the normalized address)", records.UsageEvent),
    topics.REGISTRY: ("declaration id", records.Declaration),
    topics.VERDICTS: ("subject key", records.Verdict),
    topics.ALERTS: ("incident key (controller, campaign, rule)", records.Alert),
    topics.DEADLETTER: ("source (connector instance)", records.DeadLetter),
    topics.AUDIT: ("subject key looked up", records.AuditEvent),
}

#: Records that appear inside others.
NESTED: tuple[type[Any], ...] = (records.Proof, records.ConsentSummary)


@dataclasses.dataclass(frozen=True)
class Variable:
    """One ``CONSENTINEL_*`` variable: the settings field it sets (``None``: read by one
    command outside ``Settings``), who reads it and what it means."""

    name: str
    field: str | None
    meaning: str
    read_by: str = "every command (Settings)"
    secret: bool = False
    unset: str = "unset"  # what applies when a variable outside Settings is not set


VARIABLES: tuple[Variable, ...] = (
    Variable("CONSENTINEL_ENV", "env", "development generates missing secrets under HOME "
             "and says so; production refuses to start without them; test is for tests"),
    Variable("CONSENTINEL_HOME", "home", "where state (incident store, spool) and "
             "development secrets live, outside the repository"),
    Variable("CONSENTINEL_SETTINGS_FILE", None, "a YAML file of settings (`name: value`, "
             "names without the CONSENTINEL_ prefix, lower case); the environment wins"),
    Variable("CONSENTINEL_BOOTSTRAP_SERVERS", "bootstrap_servers", "Kafka brokers, "
             "host:port[,host:port]"),
    Variable("CONSENTINEL_TOPIC_PREFIX", "topic_prefix", "prepended to every topic name "
             "(isolates tenants and tests)"),
    Variable("CONSENTINEL_APP_ID", "app_id", "Kafka consumer-group and Faust app id; the "
             "router's group is <app_id>-router"),
    Variable("CONSENTINEL_PARTITIONS", "partitions", "partitions of the co-partitioned "
             "topics when `topics create` makes them"),
    Variable("CONSENTINEL_REPLICATION_FACTOR", "replication_factor", "replicas of every "
             "topic and changelog consentinel creates: 3 on a production cluster (brokers "
             "with min.insync.replicas=2), 1 on the local single-node broker"),
    Variable("CONSENTINEL_DEFAULT_REGION", "default_region", "ISO country for phone "
             "numbers written without a country code"),
    Variable("CONSENTINEL_GRACE_SECONDS", "grace_seconds", "how long a use with no consent "
             "yet is held before it is decided"),
    Variable("CONSENTINEL_CERTIFICATE_WAIT_SECONDS", "certificate_wait_seconds", "how long "
             "a use of a purchased lead whose certificate is only claimed is held, waiting "
             "for its verification, before it raises R23"),
    Variable("CONSENTINEL_WITHDRAWAL_ALLOWANCE", "withdrawal_allowance_s", "seconds a "
             "controller has to act on a withdrawal, per channel: `email=172800,sms=0`"),
    Variable("CONSENTINEL_R13_STRENGTH", "r13_strength", "what rule R13 raises"),
    Variable("CONSENTINEL_R3_STRENGTH", "r3_strength", "what rule R3 raises"),
    Variable("CONSENTINEL_RETENTION_DAYS", "retention_days", "how long consent history is "
             "kept per subject"),
    Variable("CONSENTINEL_LEDGER_MAX_VERSIONS", "ledger_max_versions", "consent versions "
             "kept per subject and controller"),
    Variable("CONSENTINEL_WEB_HOST", "web_host", "address the console and the ingest "
             "server bind (loopback by default)"),
    Variable("CONSENTINEL_WORKER_PORT", "worker_port", "the worker's Faust web port (no "
             "table endpoints)"),
    Variable("CONSENTINEL_INGEST_PORT", "ingest_port", "the ingest server's port (webhooks "
             "and its /metrics)"),
    Variable("CONSENTINEL_CONSOLE_PORT", "console_port", "the operator console's port"),
    Variable("CONSENTINEL_METRICS_PORT", "metrics_port", "the worker's /metrics; the "
             "router's is this + 2, the certificate service's this + 3"),
    Variable("CONSENTINEL_LOG_LEVEL", "log_level", "log level of every command"),
    Variable("CONSENTINEL_GC_THRESHOLD", "gc_threshold", "the worker's garbage collector "
             "after start-up: what start-up allocated is frozen, the youngest generation "
             "is collected after this many allocations, and every 0.1 s it is frozen, "
             "after a collection as often as collections find garbage (every 0.1 s to "
             "every 6.4 s; worker/gctune.py); 0: Python's defaults", read_by="worker"),
    Variable("CONSENTINEL_BATCH_LINGER_MS", "batch_linger_ms", "how long the worker "
             "waits for more records when fewer than 500 are buffered, so that it judges "
             "them in fewer, larger batches (each batch costs produce requests and "
             "acknowledgements of its own); 0: it takes them at once", read_by="worker"),
    Variable("CONSENTINEL_PEPPER", "pepper", "the HMAC key of subject keys (at least 16 "
             "bytes); or CONSENTINEL_PEPPER_FILE, a file holding it", secret=True),
    Variable("CONSENTINEL_TOKEN", "token", "the console's token (at least 16 bytes); or "
             "CONSENTINEL_TOKEN_FILE, a file holding it", secret=True),
    Variable("CONSENTINEL_CERTIFICATE_ENDPOINT", "certificate_endpoint", "the "
             "TrustedForm-style certificate API `certificates verify` calls (the API key "
             "is only ever sent there, never to a URL a lead carries)", "certificates verify"),
    Variable("CONSENTINEL_CERTIFICATE_KEY", "certificate_key", "its API key, as a "
             "reference: `env:NAME` or `file:PATH`", "certificates verify"),
    Variable("CONSENTINEL_CERTIFICATE_LEADID_ENDPOINT", "certificate_leadid_endpoint", "the "
             "Jornaya LeadiD API `certificates verify` calls for LeadiD tokens "
             "(`GET …/Authenticate?lac=&id=`)", "certificates verify"),
    Variable("CONSENTINEL_CERTIFICATE_LEADID_ACCOUNT", "certificate_leadid_account", "the "
             "LeadiD account code (`lac`); unset: LeadiD tokens stay claimed",
             "certificates verify"),
    Variable("CONSENTINEL_CERTIFICATE_LEADID_KEY", "certificate_leadid_key", "an optional "
             "LeadiD bearer key, as a reference: `env:NAME` or `file:PATH`",
             "certificates verify"),
    Variable("CONSENTINEL_EVIDENCE_KEY", "evidence_key", "the Ed25519 key that signs "
             "evidence packs: env:NAME or file:PATH (make one with `consentinel evidence "
             "keygen`); unset, `evidence export` refuses", "evidence export"),
    Variable("CONSENTINEL_METRICS_HOST", None, "address the worker's, the router's and "
             "the certificate service's /metrics and /healthz bind",
             "router, console, certificates verify (ops_endpoints); worker",
             unset="`127.0.0.1`"),
    Variable("CONSENTINEL_METRICS_TOKEN", None, "when set, /metrics and /healthz of the "
             "router, the certificate service and the worker need `Authorization: Bearer "
             "<it>`; or CONSENTINEL_METRICS_TOKEN_FILE",
             "router, console, certificates verify (ops_endpoints); worker",
             secret=True),
    Variable("CONSENTINEL_SINKS_FILE", None, "the router's sinks file (YAML)", "router"),
    Variable("CONSENTINEL_CONNECTORS_FILE", None, "the ingest server's connectors file "
             "(YAML)", "ingest, import, demo"),
)  # fmt: skip

#: Names that are forms of a variable above, not variables of their own.
FORMS: dict[str, str] = {
    "CONSENTINEL_PEPPER_FILE": "CONSENTINEL_PEPPER",
    "CONSENTINEL_TOKEN_FILE": "CONSENTINEL_TOKEN",
    "CONSENTINEL_METRICS_TOKEN_FILE": "CONSENTINEL_METRICS_TOKEN",
}

_BASE_ENV = {
    "CONSENTINEL_PEPPER": "reference-pepper-0123456789",
    "CONSENTINEL_TOKEN": "reference-token-0123456789",
}


# -- records --------------------------------------------------------------------------------


def type_name(tp: Any) -> str:
    """An annotation as a reader writes it: ``str | None``, ``list[Channel]``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(map(type_name, args))}]"
    if tp is type(None):
        return "None"
    return str(getattr(tp, "__name__", tp))


def field_comments(cls: type[Any]) -> dict[str, str]:
    """The comment written on (or just above) each field of ``cls``'s source."""
    source = inspect.getsource(cls)
    out: dict[str, str] = {}
    pending: list[str] = []
    line_field: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.start[0] not in line_field:
            line_field[tok.start[0]] = tok.string
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            name = line_field.get(tok.start[0])
            if name is not None and tok.start[1] > 4:
                out[name] = " ".join([*pending, text]) if pending else text
                pending = []
            elif tok.start[1] == 4:
                pending.append(text)
        elif tok.type == tokenize.NEWLINE and pending and tok.start[0] in line_field:
            out.setdefault(line_field[tok.start[0]], " ".join(pending))
            pending = []
    return out


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
        return f"`{value.value}`" if isinstance(value, enum.Enum) else f"`{value!r}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{f.default_factory()!r}`"
    return "required"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def record_section(cls: type[Any]) -> Iterator[str]:
    doc = " ".join((cls.__doc__ or "").split())
    version = getattr(cls, "SCHEMA_VERSION", None)
    yield f"### {cls.__name__}"
    yield ""
    yield doc + (f" Schema version {version} (field `v`)." if version is not None else "")
    yield ""
    yield "| field | type | default | notes |"
    yield "|---|---|---|---|"
    hints = typing.get_type_hints(cls)
    notes = field_comments(cls)
    for f in dataclasses.fields(cls):
        yield (
            f"| `{f.name}` | {_cell(type_name(hints[f.name]))} | {_cell(_default(f))} "
            f"| {_cell(notes.get(f.name, ''))} |"
        )
    yield ""


def enums() -> list[type[enum.Enum]]:
    return [
        v
        for v in vars(records).values()
        if isinstance(v, type) and issubclass(v, enum.Enum) and v.__module__ == records.__name__
    ]


def topics_reference() -> str:
    lines = [
        "## Topics",
        "",
        "Names below are without `CONSENTINEL_TOPIC_PREFIX`; `P` is `CONSENTINEL_PARTITIONS`. "
        "Consent and usage are co-partitioned: equal partition counts, the same key bytes, the "
        "murmur2 partitioner. Values are JSON (`codec`), one record per message.",
        "",
        "| topic | key | value | partitions | configuration | purpose |",
        "|---|---|---|---|---|---|",
    ]
    for spec in topics.topic_specs(partitions=0):
        key, record = TOPIC_RECORDS[spec.name]
        parts = "1" if spec.partitions == 1 else "P"
        config = ", ".join(f"`{k}={v}`" for k, v in sorted(spec.config.items()))
        lines.append(
            f"| `{spec.name}` | {key} | [{record.__name__}](#{record.__name__.lower()}) "
            f"| {parts} | {config} | {spec.purpose} |"
        )
    lines += ["", "## Records", ""]
    for _, record in TOPIC_RECORDS.values():
        lines += record_section(record)
    for nested in NESTED:
        lines += record_section(nested)
    lines += ["### Enumerations", "", "| name | values |", "|---|---|"]
    for e in enums():
        lines.append(f"| {e.__name__} | {', '.join(f'`{m.value}`' for m in e)} |")
    return "\n".join(lines) + "\n"


# -- settings -------------------------------------------------------------------------------


def _load(extra: dict[str, str]) -> tuple[Settings | None, list[str]]:
    try:
        return Settings.from_env({**_BASE_ENV, **extra}), []
    except FatalConfigError as exc:
        return None, list(exc.problems)


def accepted(var: Variable) -> str:
    """What the loader says when ``var`` holds something invalid (empty: free text)."""
    if var.field is None or var.secret:
        return ""
    found: list[str] = []
    for probe in ("not-valid", "-1e300", "1e300", "99999999999"):
        _, problems = _load({var.name: probe, "CONSENTINEL_HOME": "/nonexistent/home"})
        for p in problems:
            if p.startswith(var.name):
                said = p.split(": ", 1)[-1].replace(repr(probe), "…").replace(probe, "…")
                if said not in found:
                    found.append(said)
    return "; ".join(found)


def _shown(value: Any) -> str:
    if isinstance(value, Secret):
        return "generated in development"
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        return "`~" + text[len(home) :] + "`" if text.startswith(home) else f"`{text}`"
    if isinstance(value, dict):
        return "`" + ",".join(f"{k}={v:g}" for k, v in value.items()) + "`"
    return f"`{value}`"


def settings_reference() -> str:
    defaults, problems = _load({})
    assert defaults is not None, problems
    lines = [
        "## Settings",
        "",
        "Every setting is an environment variable, or `name: value` in the YAML file named by "
        "`CONSENTINEL_SETTINGS_FILE` (the environment wins). `consentinel settings` prints "
        "those in force, secrets masked. A secret is given as a value (`CONSENTINEL_X`) or as "
        "a file holding it (`CONSENTINEL_X_FILE`, which wins); in development a missing pepper "
        "or token is generated once under `CONSENTINEL_HOME/secrets/` and announced, in "
        "production it stops the process. Every invalid setting is listed at once.",
        "",
        "| variable | forms | default | accepted | meaning | read by |",
        "|---|---|---|---|---|---|",
    ]
    for var in VARIABLES:
        forms = ", ".join(["value", *("file (`_FILE`)" for f in FORMS.values() if f == var.name)])
        default = _shown(getattr(defaults, var.field)) if var.field else var.unset
        lines.append(
            f"| `{var.name}` | {forms} | {default} | {_cell(accepted(var))} "
            f"| {_cell(var.meaning)} | {var.read_by} |"
        )
    mp, cp, ip = defaults.metrics_port, defaults.console_port, defaults.ingest_port
    lines += [
        "",
        "### Derived ports and addresses",
        "",
        "| what | where (defaults) |",
        "|---|---|",
        f"| operator console | `http://WEB_HOST:CONSOLE_PORT/` ({defaults.web_host}:{cp}) |",
        f"| ingest server, its /metrics | `http://WEB_HOST:INGEST_PORT/` ({ip}) |",
        f"| worker /metrics | `http://METRICS_HOST:METRICS_PORT/metrics` ({mp}; WEB_HOST for a "
        "worker that does not serve it through `ops_endpoints` yet) |",
        f"| worker Faust web | `http://WEB_HOST:WORKER_PORT/` ({defaults.worker_port}) |",
        f"| router /metrics, /healthz, /openapi.json | `http://METRICS_HOST:METRICS_PORT+2/` "
        f"({mp + 2}; `consentinel router --metrics-port` overrides) |",
        f"| certificate service /metrics, /healthz | `http://METRICS_HOST:METRICS_PORT+3/` "
        f"({mp + 3}; `consentinel certificates verify --metrics-port` overrides) |",
        "| router consumer group | `<APP_ID>-router` |",
        "| incident store | `HOME/state/incidents.db` |",
        "",
    ]
    return "\n".join(lines)


def render() -> str:
    """The whole ``REFERENCE.md``."""
    head = (
        "# consentinel reference: topics, records, settings\n\n"
        "Generated by `consentinel reference all --write` from `streams/events/records.py`, "
        "`topics.py` and `settings.py`; do not edit by hand (a test compares).\n\n"
    )
    return head + topics_reference() + "\n" + settings_reference()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="consentinel reference",
        description="Print the reference for topics and records, or for settings, generated "
        "from their definitions.",
    )
    p.add_argument("what", choices=("topics", "settings", "all"))
    p.add_argument("--write", action="store_true", help=f"write {PATH.name} (with `all`)")
    args = p.parse_args(argv)
    if args.write and args.what != "all":
        p.error("--write writes the whole reference: use `reference all --write`")
    text = {"topics": topics_reference, "settings": settings_reference, "all": render}[args.what]()
    if args.write:
        PATH.write_text(text, encoding="utf-8")
        print(f"wrote {PATH}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
