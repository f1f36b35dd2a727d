"""The connector instances file (``connectors.yaml``), validated at load.

    instances:
      - name: mandrill-eu              # [a-z0-9][a-z0-9_-]*: source, URL part, metric label
        type: mandrill                 # a registry name (`consentinel connectors list`)
        controller: acme-sas           # who uses the addresses (legal entity)
        tenant: acme                   # optional
        default_region: FR             # optional, for national phone numbers (settings default)
        public_url: https://hooks.acme.example/mandrill   # optional: the URL registered at the
                                       #   platform; the server rebuilds the signed URL from it
        purpose_map: {receipt: transactional}             # vendor purpose -> canonical
        options: {}                    # the connector's non-secret settings (config_schema)
        secrets:                       # by reference only: env:NAME or file:PATH
          webhook_key: env:MANDRILL_WEBHOOK_KEY
      - name: postmark-main
        type: declarative              # a declarative mapping (connectors/declarative)
        mapping: postmark.yaml         #   its file, relative to this file
        ...

A top-level list of instances is accepted too. Plain secret values are refused outside
``CONSENTINEL_ENV=development``. Every problem (with its line and instance name) is
collected and raised at once as ``FatalConfigError``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consentinel.connectors import registry, yamlfile
from consentinel.connectors.contract import Connector, Instance
from consentinel.streams.events import secrets
from consentinel.streams.events.errors import ConsentinelError, FatalConfigError
from consentinel.streams.events.settings import Secret, Settings

#: Where the instances file is looked for when ``--config`` is not given.
CONFIG_ENV = "CONSENTINEL_CONNECTORS_FILE"
DEFAULT_FILE = "connectors.yaml"

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_KEYS = {
    "name",
    "type",
    "controller",
    "tenant",
    "default_region",
    "public_url",
    "purpose_map",
    "options",
    "secrets",
    "mapping",
}


@dataclass(frozen=True)
class ConnectorsConfig:
    """The loaded instances, by name, with the classes they resolved to."""

    path: str
    instances: dict[str, Instance]
    classes: dict[str, type[Connector]] = field(default_factory=dict)

    def get(self, name: str) -> Instance:
        try:
            return self.instances[name]
        except KeyError:
            known = ", ".join(sorted(self.instances)) or "(none)"
            raise ConsentinelError(
                f"no connector instance named {name!r} in {self.path}; instances: {known}"
            ) from None


def default_path(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_FILE)


def load(
    path: str | Path, settings: Settings, environ: Mapping[str, str] | None = None
) -> ConnectorsConfig:
    """Read and validate the instances file; ``FatalConfigError`` lists every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FatalConfigError(
            [
                f"{p}: cannot read it ({exc.strerror}); pass --config FILE or set {CONFIG_ENV} "
                f"(deploy/connectors.example.yaml shows the format)"
            ],
            "connector configuration",
        ) from None
    return load_text(text, settings, name=str(p), base_dir=p.parent, environ=environ)


def load_text(
    text: str,
    settings: Settings,
    *,
    name: str = "<connectors>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectorsConfig:
    env = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    data = yamlfile.load(text, name)
    problems: list[str] = []
    if isinstance(data, Mapping) and "instances" in data:
        unknown = sorted(set(data) - {"instances"})
        if unknown:
            problems.append(f"{name}:{yamlfile.line_of(data)}: unknown top-level keys {unknown}")
        items = data["instances"]
    else:
        items = data
    if items is None:
        items = []
    if not isinstance(items, list):
        raise FatalConfigError(
            [f"{name}: expected a list of instances (or `instances:` holding one)"],
            "connector configuration",
        )
    instances: dict[str, Instance] = {}
    classes: dict[str, type[Connector]] = {}
    for i, item in enumerate(items):
        where = f"{name}:{yamlfile.line_of(items, i)}"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: instance #{i + 1} is not a mapping")
            continue
        found = _instance(item, where, name, settings, env, base, problems)
        if found is None:
            continue
        inst, cls = found
        if inst.name in instances:
            problems.append(f"{where}: instance {inst.name!r} is defined twice")
            continue
        instances[inst.name] = inst
        classes[inst.name] = cls
    if problems:
        raise FatalConfigError(problems, f"connector configuration {name}")
    return ConnectorsConfig(name, instances, classes)


def _str(
    item: Mapping[str, Any],
    key: str,
    where: str,
    label: str,
    problems: list[str],
    default: str = "",
) -> str:
    value = item.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str | int) or isinstance(value, bool):
        problems.append(f"{where} ({label}): `{key}` must be a string")
        return default
    return str(value)


def _instance(
    item: Mapping[str, Any],
    where0: str,
    file: str,
    settings: Settings,
    env: Mapping[str, str],
    base: Path,
    problems: list[str],
) -> tuple[Instance, type[Connector]] | None:
    start = len(problems)

    def at(key: str) -> str:
        return f"{file}:{yamlfile.line_of(item, key)}"

    name = _str(item, "name", where0, "instance", problems)
    label = f"instance {name!r}" if name else "instance without a name"
    if not name:
        problems.append(f"{where0} ({label}): `name` is required")
    elif not _NAME.fullmatch(name):
        problems.append(
            f"{at('name')} ({label}): the name must be lowercase letters, digits, '-' or '_' "
            f"(it is a URL part and a metric label)"
        )
    for key in sorted(set(item) - _KEYS):
        problems.append(
            f"{at(key)} ({label}): unknown key `{key}` (known: {', '.join(sorted(_KEYS))}; "
            f"connector settings go under `options:`)"
        )
    ctype = _str(item, "type", where0, label, problems)
    controller = _str(item, "controller", where0, label, problems)
    if not ctype:
        problems.append(
            f"{where0} ({label}): `type` is required (see `consentinel connectors list`)"
        )
    if not controller:
        problems.append(f"{where0} ({label}): `controller` is required (who uses the addresses)")
    region = _str(item, "default_region", where0, label, problems, settings.default_region).upper()
    if not (len(region) == 2 and region.isalpha()):
        problems.append(f"{at('default_region')} ({label}): `default_region` must be like FR")
    public_url = _str(item, "public_url", where0, label, problems)
    if public_url and not re.match(r"https?://[^/\s]+", public_url):
        problems.append(f"{at('public_url')} ({label}): `public_url` must be an http(s) URL")
    if "?" in public_url or "#" in public_url:
        problems.append(
            f"{at('public_url')} ({label}): `public_url` must not carry a query; the query "
            f"the platform sends is appended"
        )
    purpose_map = _str_map(
        item.get("purpose_map"), at("purpose_map"), label, "purpose_map", problems
    )
    options_raw = item.get("options") or {}
    if not isinstance(options_raw, Mapping):
        problems.append(f"{at('options')} ({label}): `options` must be a mapping")
        options_raw = {}
    options = dict(options_raw)
    if "mapping" in item:
        mapping = _str(item, "mapping", where0, label, problems)
        if ctype != registry.DECLARATIVE:
            problems.append(f"{at('mapping')} ({label}): `mapping` is only for type declarative")
        options["mapping"] = str((base / mapping).resolve()) if mapping else ""
    elif ctype == registry.DECLARATIVE:
        problems.append(f"{where0} ({label}): type declarative needs `mapping: FILE`")
    secrets = _secrets(item.get("secrets"), item, file, label, settings, env, base, problems)

    cls: type[Connector] | None = None
    if ctype and (ctype != registry.DECLARATIVE or options.get("mapping")):
        probe = Instance(name=name or "?", type=ctype, controller=controller, options=options)
        try:
            cls = registry.connector_class(probe)
        except FatalConfigError as exc:
            problems.extend(f"{at('mapping')} ({label}): {p}" for p in exc.problems)
        except ConsentinelError as exc:
            problems.append(f"{at('type')} ({label}): {exc}")
    if cls is not None:
        _check_schema(cls, options, secrets, item, file, label, problems)
        for f in cls.config_schema:
            if not f.secret and f.name not in options and f.default is not None:
                options[f.name] = f.default
    if len(problems) > start or cls is None:
        return None
    inst = Instance(
        name=name,
        type=ctype,
        controller=controller,
        tenant=_str(item, "tenant", where0, label, problems),
        default_region=region,
        purpose_map=purpose_map,
        secrets=secrets,
        options=options,
        public_url=public_url.rstrip("/") if public_url.endswith("/") else public_url,
    )
    return inst, cls


def _str_map(value: Any, where: str, label: str, key: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value.values()
    ):
        problems.append(f"{where} ({label}): `{key}` must map strings to strings")
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _secrets(
    value: Any,
    item: Mapping[str, Any],
    file: str,
    label: str,
    settings: Settings,
    env: Mapping[str, str],
    base: Path,
    problems: list[str],
) -> dict[str, Secret]:
    if value is None:
        return {}
    where = f"{file}:{yamlfile.line_of(item, 'secrets')}"
    if not isinstance(value, Mapping):
        problems.append(f"{where} ({label}): `secrets` must map names to env:NAME or file:PATH")
        return {}
    out: dict[str, Secret] = {}
    for key, ref in value.items():
        at = f"{file}:{yamlfile.line_of(value, key)}"
        if not isinstance(ref, str) or not ref:
            problems.append(f"{at} ({label}): secret `{key}` must be env:NAME or file:PATH")
            continue
        if secrets.is_reference(ref):
            try:
                out[key] = secrets.resolve(ref, environ=env, base_dir=base)
            except secrets.UnresolvedSecret as exc:
                problems.append(f"{at} ({label}): secret `{key}`: {exc.problem}")
        elif settings.env == "development":
            print(
                f"consentinel: {at} ({label}): secret `{key}` is written in the file; "
                f"allowed in development only, use env:NAME or file:PATH",
                file=sys.stderr,
            )
            out[key] = Secret(ref.encode("utf-8"))
        else:
            problems.append(
                f"{at} ({label}): secret `{key}` is written in plain text; give it as "
                f"env:NAME or file:PATH (plain values are for CONSENTINEL_ENV=development only)"
            )
    return out


def _check_schema(
    cls: type[Connector],
    options: Mapping[str, Any],
    secrets: Mapping[str, Secret],
    item: Mapping[str, Any],
    file: str,
    label: str,
    problems: list[str],
) -> None:
    schema = {f.name: f for f in cls.config_schema}
    opts: Mapping[str, Any] = item["options"] if isinstance(item.get("options"), Mapping) else {}
    secret_node: Mapping[str, Any] = (
        item["secrets"] if isinstance(item.get("secrets"), Mapping) else {}
    )
    known_opts = sorted(n for n, f in schema.items() if not f.secret)
    known_secrets = sorted(n for n, f in schema.items() if f.secret)
    for key in options:
        if key == "mapping" and cls.__dict__.get("mapping_file"):
            continue
        f = schema.get(key)
        if f is None or f.secret:
            line = yamlfile.line_of(opts, key) or yamlfile.line_of(item, "options")
            hint = " (it is a secret: put it under `secrets:`)" if f is not None else ""
            problems.append(
                f"{file}:{line} ({label}): unknown option `{key}` for {cls.name}{hint}; "
                f"known options: {', '.join(known_opts) or '(none)'}"
            )
    for key in secrets:
        f = schema.get(key)
        if f is None or not f.secret:
            line = yamlfile.line_of(secret_node, key) or yamlfile.line_of(item, "secrets")
            problems.append(
                f"{file}:{line} ({label}): unknown secret `{key}` for {cls.name}; "
                f"known secrets: {', '.join(known_secrets) or '(none)'}"
            )
    where = f"{file}:{yamlfile.line_of(item)}"
    for f in cls.config_schema:
        if not f.required:
            continue
        if f.secret and f.name not in secrets and f.name not in secret_node:
            problems.append(
                f"{where} ({label}): {cls.name} needs secret `{f.name}` ({f.doc}); "
                f"add `secrets: {{{f.name}: env:NAME}}`"
            )
        elif not f.secret and f.name not in options and f.default is None:
            problems.append(f"{where} ({label}): {cls.name} needs option `{f.name}` ({f.doc})")
