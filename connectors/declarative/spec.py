"""The declarative mapping file: read, validate (every problem with its line), compile.

See ``connectors/declarative/README.md`` for the format; ``examples/postmark.yaml`` is a
complete one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from consentinel.connectors import yamlfile
from consentinel.connectors.auth import AuthConfigError, HmacHeaderScheme
from consentinel.connectors.declarative.paths import FieldPath, compile_path
from consentinel.connectors.declarative.timefmt import TimeFormat
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

E = TypeVar("E", bound=Enum)

AUTH_SCHEMES = ("hmac_header", "basic", "url_token")
CONTENTS = ("json", "form", "auto")
SHAPES = ("auto", "array", "single")
FIELD_NAMES = (
    "type",
    "address",
    "occurred_at",
    "event_id",
    "campaign_id",
    "list_id",
    "form_id",
    "sender",
    "tags",
    "purpose",
    "scope",
    "is_test",
    "proof_ref",  # the platform's own record of a consent (CMP event / receipt id)
    "notice_version",  # the notice shown when the consent was given
    "source_named",  # the message names where the address came from (R15, R18)
)
REQUIRED_FIELDS = ("type", "address", "occurred_at", "event_id")
TOP_KEYS = (
    "name",
    "title",
    "description",
    "content",
    "auth",
    "events",
    "channel",
    "fields",
    "attributes",
    "time",
    "kinds",
    "ignore",
)
_NAME = re.compile(r"[a-z][a-z0-9_]{1,40}")


@dataclass(frozen=True, slots=True)
class KindRule:
    """What one vendor event type becomes (when its ``when`` conditions hold)."""

    when: tuple[tuple[FieldPath, Any], ...] = ()
    usage: UsageKind | None = None
    consent: ConsentAction | None = None

    def matches(self, obj: Any) -> bool:
        for path, expected in self.when:
            got = path.get(obj)
            if got != expected and str(got).lower() != str(expected).lower():
                return False
        return True


@dataclass(frozen=True, slots=True)
class AuthSpec:
    scheme: str
    hmac: HmacHeaderScheme | None = None
    param: str = "token"
    location: str = "query"  # url_token: query | path


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    file: str
    auth: AuthSpec
    content: str
    events_path: FieldPath
    shape: str
    events_json: bool  # the value at events.path is a JSON string to parse
    channel: Channel | None
    channel_path: FieldPath | None
    channel_map: dict[str, Channel]
    fields: dict[str, FieldPath]
    event_id: tuple[FieldPath, ...]
    attributes: dict[str, FieldPath]
    time: TimeFormat
    kinds: dict[str, tuple[KindRule, ...]]
    ignore: frozenset[str] = field(default_factory=frozenset)

    @property
    def produces(self) -> str:
        usage = any(r.usage for rules in self.kinds.values() for r in rules)
        consent = any(r.consent for rules in self.kinds.values() for r in rules)
        return "usage+consent" if usage and consent else "consent" if consent else "usage"

    @property
    def auth_words(self) -> str:
        if self.auth.scheme == "hmac_header" and self.auth.hmac is not None:
            h = self.auth.hmac
            return f"HMAC-{h.algorithm.upper()} of the body ({h.encoding}) in {h.header}"
        if self.auth.scheme == "basic":
            return "HTTP Basic credentials (user:password in the callback URL)"
        return f"shared token in the URL {self.auth.location} ({self.auth.param})"


def load_spec(text: str, name: str) -> Spec:
    """Parse and validate; ``FatalConfigError`` lists every problem with its line."""
    data = yamlfile.load(text, name)
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise FatalConfigError(
            [f"{name}: expected a mapping (name:, auth:, fields:, kinds:...)"],
            f"declarative mapping {name}",
        )
    spec = _Builder(data, name, problems).build()
    if problems or spec is None:
        raise FatalConfigError(problems, f"declarative mapping {name}")
    return spec


class _Builder:
    def __init__(self, data: Mapping[str, Any], file: str, problems: list[str]) -> None:
        self.data = data
        self.file = file
        self.problems = problems

    def at(self, node: Any, key: str | int | None = None) -> str:
        return f"{self.file}:{yamlfile.line_of(node, key)}"

    def fail(self, node: Any, key: str | int | None, message: str) -> None:
        self.problems.append(f"{self.at(node, key)}: {message}")

    def path(self, node: Any, key: str | int, value: Any) -> FieldPath | None:
        try:
            return compile_path(value)
        except ValueError as exc:
            self.fail(node, key, str(exc))
            return None

    def mapping(self, key: str, required: bool = False) -> Mapping[str, Any]:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(self.data, None, f"`{key}:` is required")
            return {}
        if not isinstance(value, Mapping):
            self.fail(self.data, key, f"`{key}` must be a mapping")
            return {}
        return value

    def build(self) -> Spec | None:
        d = self.data
        for key in d:
            if key not in TOP_KEYS:
                self.fail(d, key, f"unknown key `{key}` (known: {', '.join(TOP_KEYS)})")
        name = d.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.fail(
                d, "name", "`name` is required: lowercase letters, digits, '_' (e.g. postmark)"
            )
            name = ""
        title = d.get("title")
        if not isinstance(title, str) or not title.strip():
            self.fail(d, "title", "`title` is required: one line for `consentinel connectors list`")
            title = ""
        content = d.get("content", "auto")
        if content not in CONTENTS:
            self.fail(d, "content", f"`content` must be one of {', '.join(CONTENTS)}")
        auth = self.auth()
        events_path, shape, events_json = self.events()
        channel, channel_path, channel_map = self.channel()
        fields, event_id = self.fields()
        attributes = self.attributes()
        time = self.time()
        kinds, ignore = self.kinds()
        if self.problems or auth is None or time is None:
            return None
        return Spec(
            name=str(name),
            title=str(title).strip(),
            file=self.file,
            auth=auth,
            content=str(content),
            events_path=events_path,
            shape=shape,
            events_json=events_json,
            channel=channel,
            channel_path=channel_path,
            channel_map=channel_map,
            fields=fields,
            event_id=event_id,
            attributes=attributes,
            time=time,
            kinds=kinds,
            ignore=ignore,
        )

    def auth(self) -> AuthSpec | None:
        node = self.mapping("auth", required=True)
        if not node:
            return None
        scheme = node.get("scheme")
        if scheme not in AUTH_SCHEMES:
            self.fail(node, "scheme", f"`auth.scheme` must be one of {', '.join(AUTH_SCHEMES)}")
            return None
        rest = {k: v for k, v in node.items() if k != "scheme"}
        if scheme == "hmac_header":
            try:
                return AuthSpec("hmac_header", hmac=HmacHeaderScheme.from_mapping(rest))
            except AuthConfigError as exc:
                self.fail(node, "scheme", f"auth: {exc}")
                return None
        if scheme == "basic":
            for key in rest:
                self.fail(
                    node, key, f"auth.{key}: basic takes no settings (secrets: username, password)"
                )
            return AuthSpec("basic")
        allowed = {"param", "in"}
        for key in rest:
            if key not in allowed:
                self.fail(node, key, f"auth.{key}: url_token takes `param` and `in` (query|path)")
        param = rest.get("param", "token")
        location = rest.get("in", "query")
        if not isinstance(param, str) or not param:
            self.fail(node, "param", "auth.param must be a parameter name")
        if location not in ("query", "path"):
            self.fail(node, "in", "auth.in must be query or path")
        return AuthSpec("url_token", param=str(param), location=str(location))

    def events(self) -> tuple[FieldPath, str, bool]:
        node = self.mapping("events")
        for key in node:
            if key not in ("path", "shape", "decode"):
                self.fail(node, key, f"events.{key}: known keys are path, shape, decode")
        path = self.path(node, "path", node.get("path", "")) or compile_path("")
        shape = node.get("shape", "auto")
        if shape not in SHAPES:
            self.fail(node, "shape", f"events.shape must be one of {', '.join(SHAPES)}")
        decode = node.get("decode")
        if decode not in (None, "json"):
            self.fail(node, "decode", "events.decode can only be `json` (a JSON string inside)")
        return path, str(shape), decode == "json"

    def channel(self) -> tuple[Channel | None, FieldPath | None, dict[str, Channel]]:
        value = self.data.get("channel")
        known = ", ".join(c.value for c in Channel)
        if isinstance(value, str):
            try:
                return Channel(value), None, {}
            except ValueError:
                self.fail(self.data, "channel", f"channel {value!r} unknown (known: {known})")
                return None, None, {}
        if isinstance(value, Mapping):
            path = self.path(value, "path", value.get("path"))
            raw_map = value.get("map") or {}
            out: dict[str, Channel] = {}
            if not isinstance(raw_map, Mapping):
                self.fail(value, "map", "channel.map must map vendor values to channels")
            else:
                for k, v in raw_map.items():
                    try:
                        out[str(k)] = Channel(v)
                    except ValueError:
                        self.fail(raw_map, k, f"channel {v!r} unknown (known: {known})")
            return None, path, out
        self.fail(self.data, "channel", f"`channel` is required: one of {known}, or {{path, map}}")
        return None, None, {}

    def fields(self) -> tuple[dict[str, FieldPath], tuple[FieldPath, ...]]:
        node = self.mapping("fields", required=True)
        out: dict[str, FieldPath] = {}
        event_id: list[FieldPath] = []
        for key, value in node.items():
            if key not in FIELD_NAMES:
                self.fail(
                    node, key, f"fields.{key}: unknown field (known: {', '.join(FIELD_NAMES)})"
                )
                continue
            if key == "event_id":
                items = value if isinstance(value, list) else [value]
                for i, item in enumerate(items):
                    p = self.path(
                        items if isinstance(value, list) else node,
                        i if isinstance(value, list) else key,
                        item,
                    )
                    if p is not None:
                        event_id.append(p)
                continue
            p = self.path(node, key, value)
            if p is not None:
                out[key] = p
        for key in REQUIRED_FIELDS:
            if key not in node:
                why = {
                    "event_id": "the platform's dedupe key parts, so a redelivery keeps its id",
                    "type": "the vendor event type, looked up in kinds:",
                    "address": "where the e-mail or phone is",
                    "occurred_at": "the event time",
                }[key]
                self.fail(node, None, f"fields.{key} is required ({why})")
        return out, tuple(event_id)

    def attributes(self) -> dict[str, FieldPath]:
        node = self.mapping("attributes")
        out: dict[str, FieldPath] = {}
        for key, value in node.items():
            if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", key):
                self.fail(node, key, f"attribute name {key!r}: lowercase letters, digits, '_'")
                continue
            p = self.path(node, key, value)
            if p is not None:
                out[key] = p
        return out

    def time(self) -> TimeFormat | None:
        node = self.mapping("time")
        for key in node:
            if key not in ("format", "timezone"):
                self.fail(node, key, f"time.{key}: known keys are format, timezone")
        try:
            return TimeFormat(str(node.get("format", "rfc3339")), str(node.get("timezone", "UTC")))
        except ValueError as exc:
            self.fail(node, "format", str(exc))
            return None

    def kinds(self) -> tuple[dict[str, tuple[KindRule, ...]], frozenset[str]]:
        node = self.mapping("kinds", required=True)
        out: dict[str, tuple[KindRule, ...]] = {}
        for vendor, value in node.items():
            items = value if isinstance(value, list) else [value]
            rules: list[KindRule] = []
            for i, item in enumerate(items):
                where_node, where_key = (items, i) if isinstance(value, list) else (node, vendor)
                rule = self.rule(item, where_node, where_key, str(vendor))
                if rule is not None:
                    rules.append(rule)
            out[str(vendor)] = tuple(rules)
        ignore = self.data.get("ignore") or []
        if not isinstance(ignore, list):
            self.fail(self.data, "ignore", "`ignore` must be a list of vendor event types")
            ignore = []
        for i, vendor in enumerate(ignore):
            if str(vendor) in out:
                self.fail(ignore, i, f"{vendor!r} is both in kinds: and ignore:")
        return out, frozenset(str(v) for v in ignore)

    def member(self, enum: type[E], item: Mapping[str, Any], key: str, vendor: str) -> E | None:
        """``item[key]`` as a member of ``enum`` (None when absent; noted when unknown)."""
        if item.get(key) is None:
            return None
        try:
            return enum(item[key])
        except ValueError:
            known = ", ".join(str(m.value) for m in enum)
            self.fail(item, key, f"kinds.{vendor}.{key} {item[key]!r} unknown ({known})")
            return None

    def rule(self, item: Any, node: Any, key: str | int, vendor: str) -> KindRule | None:
        if item is None:
            item = {}
        if not isinstance(item, Mapping):
            self.fail(
                node, key, f"kinds.{vendor}: expected {{usage: KIND, consent: ACTION, when: ...}}"
            )
            return None
        for k in item:
            if k not in ("usage", "consent", "when"):
                self.fail(item, k, f"kinds.{vendor}.{k}: known keys are usage, consent, when")
        usage = self.member(UsageKind, item, "usage", vendor)
        consent = self.member(ConsentAction, item, "consent", vendor)
        when: list[tuple[FieldPath, Any]] = []
        raw_when = item.get("when") or {}
        if not isinstance(raw_when, Mapping):
            self.fail(item, "when", f"kinds.{vendor}.when must map paths to values")
        else:
            for path_text, expected in raw_when.items():
                p = self.path(raw_when, path_text, path_text)
                if p is not None:
                    when.append((p, expected))
        return KindRule(tuple(when), usage, consent)
