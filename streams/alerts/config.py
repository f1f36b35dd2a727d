"""The router's configuration file: which sinks to notify, grouping, retry policy.

YAML, named by ``consentinel router --sinks FILE`` or ``CONSENTINEL_SINKS_FILE``; none
means console only. Secrets are given by reference, never inline::

    console_url: https://consentinel.example.org   # links in notifications
    incidents: {window_hours: 24, sample_alert_ids: 20, group_by: [controller, campaign]}
    retry: {initial_seconds: 1, max_seconds: 300}    # default for every sink
    sinks:
      - {name: oncall, type: alertmanager, url: http://127.0.0.1:9093}
      - {name: soc, type: webhook, url: https://soc.example/hook, secret: env:SOC_SECRET}
      - {name: chat, type: slack, url: file:/run/secrets/slack-webhook-url}
      - name: dpo-mail
        type: email
        host: smtp.example.org
        port: 587
        security: starttls          # none | starttls | tls
        username: consentinel
        password: env:SMTP_PASSWORD
        sender: consentinel@example.org
        to: [dpo@example.org]

``incidents.group_by`` chooses what one incident is (``grouping``): any of controller,
campaign, rule, channel, purpose; the default, controller and campaign, lists every rule
broken in one incident with per-rule counts.

A reference is ``env:NAME`` (an environment variable) or ``file:/path`` (the file's
content, stripped). Every problem in the file is listed at once (``FatalConfigError``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from consentinel.streams.events import secrets
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.settings import Secret, Settings

from .delivery import Backoff
from .grouping import DEFAULT_GROUP_BY, parse_group_by
from .model import IncidentError
from .sinks.base import Sink

_MISSING: Any = object()


@dataclass(frozen=True)
class SinkSpec:
    sink: Sink
    backoff: Backoff


@dataclass(frozen=True)
class RouterConfig:
    console_url: str
    window_hours: float = 24.0
    sample_alert_ids: int = 20
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    sinks: list[SinkSpec] = field(default_factory=list)
    source: str = "(no sinks file: console only)"


class Options:
    """One mapping of the file, read key by key; problems are collected, not raised."""

    def __init__(self, where: str, raw: Mapping[str, Any], problems: list[str]) -> None:
        self.where = where
        self.raw = raw
        self.problems = problems
        self.read: set[str] = set()

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.where}: {text}")

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        if key not in self.raw or self.raw[key] is None:
            if default is _MISSING:
                self.problem(f"'{key}' is required")
            return default
        return self.raw[key]

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if value is default:
            return "" if value is _MISSING else str(value)
        if not isinstance(value, str | int) or isinstance(value, bool):
            self.problem(f"'{key}' should be text")
            return ""
        return str(value)

    def url(self, key: str, secret_ok: bool = False) -> str:
        """A URL, inline or (``secret_ok``) by reference; http(s) only."""
        value = self.text(key)
        if secret_ok and secrets.is_reference(value):
            value = self._resolve(key, value).reveal().decode()
        if value and not value.startswith(("http://", "https://")):
            self.problem(f"'{key}' should be an http:// or https:// URL")
        return value

    def secret(self, key: str, required: bool = True) -> Secret | None:
        value = self._get(key, _MISSING if required else None)
        if value is None or value is _MISSING:
            return None
        if not isinstance(value, str) or not secrets.is_reference(value):
            self.problem(
                f"'{key}' must be a reference, not the secret itself: write env:VARIABLE or "
                f"file:/path/to/secret"
            )
            return None
        return self._resolve(key, value)

    def _resolve(self, key: str, ref: str) -> Secret:
        try:
            return secrets.resolve(ref, environ=os.environ)
        except secrets.UnresolvedSecret as exc:
            self.problem(f"'{key}' refers to {exc.shown}, which {exc.reason}")
            return Secret(b"")

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"'{key}' should be a number between {low} and {high}")
            return default
        if not low <= value <= high:
            self.problem(f"'{key}' = {value}: expected between {low} and {high}")
            return default
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.problem(f"'{key}' should be true or false")
            return default
        return value

    def text_list(self, key: str) -> list[str]:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            self.problem(f"'{key}' should be a list of text")
            return []
        return list(items)

    def mapping(self, key: str) -> dict[str, str]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            self.problem(f"'{key}' should be a mapping of names to text")
            return {}
        return {str(k): str(v) for k, v in value.items()}

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in allowed:
            self.problem(f"'{key}' = {value!r}: expected one of {', '.join(allowed)}")
            return default
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.read)
        if unknown:
            self.problem(
                f"unknown option(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(self.read))})"
            )


def _backoff(opts: Options, default: Backoff) -> Backoff:
    raw = opts._get("retry", None)
    if raw is None:
        return default
    if not isinstance(raw, dict):
        opts.problem("'retry' should be a mapping (initial_seconds, max_seconds)")
        return default
    sub = Options(f"{opts.where} retry", raw, opts.problems)
    out = Backoff(
        initial_s=sub.number("initial_seconds", default.initial_s, 0.01, 3600),
        max_s=sub.number("max_seconds", default.max_s, 0.1, 86_400),
    )
    sub.finish()
    return out


def _builders() -> dict[str, Callable[[str, Options], Sink]]:
    from .sinks import alertmanager, slack, smtp, webhook

    return {
        "alertmanager": alertmanager.from_options,
        "webhook": webhook.from_options,
        "slack": slack.from_options,
        "email": smtp.from_options,
    }


def load(path: str | Path | None, settings: Settings) -> RouterConfig:
    """The configuration in ``path`` (None: console only); FatalConfigError lists problems."""
    default_url = f"http://{settings.web_host}:{settings.console_port}"
    if path is None:
        return RouterConfig(console_url=default_url)
    problems: list[str] = []
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise FatalConfigError([f"cannot read {path} ({exc.strerror})"], "sinks file") from None
    except yaml.YAMLError as exc:
        raise FatalConfigError([f"{path} is not valid YAML ({exc})"], "sinks file") from None
    if not isinstance(data, dict):
        raise FatalConfigError([f"{path}: expected a mapping with 'sinks:'"], "sinks file")
    top = Options(str(path), data, problems)
    console_url = top.text("console_url", default_url)
    window, samples, group_by = 24.0, 20, DEFAULT_GROUP_BY
    incidents = top._get("incidents", None)
    if isinstance(incidents, dict):
        sub = Options(f"{path} incidents", incidents, problems)
        window = sub.number("window_hours", 24.0, 0.01, 24 * 365)
        samples = int(sub.number("sample_alert_ids", 20, 1, 1000))
        if "group_by" in incidents:
            try:
                group_by = parse_group_by(sub.text_list("group_by"))
            except IncidentError as exc:
                sub.problem(str(exc))
        sub.finish()
    elif incidents is not None:
        top.problem("'incidents' should be a mapping (window_hours, sample_alert_ids, group_by)")
    default_backoff = _backoff(top, Backoff())
    raw_sinks = top._get("sinks", [])
    top.finish()
    if not isinstance(raw_sinks, list):
        problems.append(f"{path}: 'sinks' should be a list of sinks")
        raw_sinks = []
    builders = _builders()
    specs: list[SinkSpec] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_sinks):
        if not isinstance(raw, dict):
            problems.append(f"{path}: sinks[{i}] should be a mapping with name and type")
            continue
        name = str(raw.get("name") or f"sinks[{i}]")
        opts = Options(f"{path}: sink {name!r}", raw, problems)
        opts.text("name")
        if name in names:
            opts.problem("another sink has the same name; names must be unique")
        names.add(name)
        kind = opts.text("type")
        builder = builders.get(kind)
        if builder is None:
            if kind:
                opts.problem(f"unknown type {kind!r}: expected one of {', '.join(builders)}")
            continue
        backoff = _backoff(opts, default_backoff)
        sink = builder(name, opts)
        opts.finish()
        specs.append(SinkSpec(sink, backoff))
    if problems:
        raise FatalConfigError(problems, f"sinks file {path}")
    return RouterConfig(
        console_url=console_url,
        window_hours=window,
        sample_alert_ids=samples,
        group_by=group_by,
        sinks=specs,
        source=str(path),
    )
