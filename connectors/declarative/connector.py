"""The connector a declarative mapping becomes: verify by its auth, map by its paths."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors.auth import (
    verify_basic_auth,
    verify_hmac_header,
    verify_shared_token,
    verify_url_token,
)
from consentinel.connectors.contract import (
    ConfigField,
    Connector,
    Output,
    Request,
    sending_domain,
)
from consentinel.connectors.declarative.paths import MISSING
from consentinel.connectors.declarative.spec import KindRule, Spec
from consentinel.connectors.toolkit.batch import map_items
from consentinel.streams.events import codec, ids
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Proof,
    Scalar,
    UsageEvent,
)

_SAFE = re.compile(r"[A-Za-z0-9_.:\- ]{1,40}")
_ADDRESS_LIKE = re.compile(r"@|^\s*\+?\d[\d\s().-]{6,}\d\s*$")
_MAX_EVENTS = 10_000


def schema_for(spec: Spec) -> tuple[ConfigField, ...]:
    """Options and secrets an instance of this mapping needs."""
    out = [ConfigField("mapping", "the declarative mapping file", required=True, kind="text")]
    if spec.auth.scheme == "basic":
        out += [
            ConfigField("username", "Basic user name in the callback URL", True, secret=True),
            ConfigField("password", "Basic password in the callback URL", True, secret=True),
        ]
    elif spec.auth.scheme == "hmac_header":
        out.append(ConfigField("secret", "the platform's signing secret", True, secret=True))
    else:
        out.append(ConfigField("token", f"the shared token ({spec.auth.param})", True, secret=True))
    return tuple(out)


def _label(value: Any) -> str:
    """A vendor value safe to repeat in a message (short, no address-like content)."""
    text = str(value)
    if _SAFE.fullmatch(text) and not _ADDRESS_LIKE.search(text):
        return repr(text)
    return "(a value not shown)"


class DeclarativeConnector(Connector):
    """Base of the classes ``load_mapping`` builds; ``spec`` holds the compiled mapping."""

    spec: ClassVar[Spec]
    mapping_file: ClassVar[str]

    # -- verify --------------------------------------------------------------------------
    def verify(self, request: Request) -> None:
        auth = self.spec.auth
        if auth.scheme == "hmac_header":
            assert auth.hmac is not None
            verify_hmac_header(
                auth.hmac, self.instance.secret("secret"), request.body, request.headers
            )
        elif auth.scheme == "basic":
            verify_basic_auth(
                self.instance.secret("username").decode("utf-8", "replace"),
                self.instance.secret("password"),
                request.headers,
            )
        elif auth.location == "path":
            segment = request.path.rstrip("/").rpartition("/")[2]
            verify_shared_token(
                self.instance.secret("token"), segment or None, name="token in the URL path"
            )
        else:
            verify_url_token(self.instance.secret("token"), request.url, param=auth.param)

    # -- map -----------------------------------------------------------------------------
    def map_request(self, request: Request) -> Output:
        body = self._parse(request)
        received = request.received_at_ms or self.edge.now_ms()
        events = self._events(body)
        if len(events) == 1:  # one event: refused whole, as before
            out = Output()
            self._map_event(events[0], received, out)
            return out
        out = map_items(events, lambda i, event: self._one(event, received, i))
        if out.rejected and len(out.rejected) == len(events):  # nothing good: refuse whole
            raise InvalidInput(out.rejected[0].code, out.rejected[0].message)
        return out

    def _one(self, event: Any, received: int, index: int) -> Output:
        """One event of a batch; its refusal names its position (``event #N``)."""
        out = Output()
        try:
            self._map_event(event, received, out)
        except InvalidInput as exc:
            raise InvalidInput(exc.code, f"event #{index + 1}: {exc.message}") from None
        return out

    def map_row(self, row: Mapping[str, Any]) -> Output:
        out = Output()
        self._map_event(dict(row), self.edge.now_ms(), out)
        return out

    def _parse(self, request: Request) -> Any:
        content = self.spec.content
        if content == "auto":
            ctype = (request.header("content-type") or "").lower()
            content = "form" if "form-urlencoded" in ctype else "json"
        if not request.body.strip():
            raise InvalidInput("empty_body", "the request has no body")
        if content == "json":
            return codec.loads(request.body)
        return {k: v[0] for k, v in request.form().items()}

    def _events(self, body: Any) -> list[Any]:
        value = self.spec.events_path.get(body)
        if value is MISSING:
            raise InvalidInput("no_events", f"no events at `{self.spec.events_path.text}`")
        if self.spec.events_json and isinstance(value, str):
            value = codec.loads(value)
        shape = self.spec.shape
        if isinstance(value, list) and shape in ("auto", "array"):
            if len(value) > _MAX_EVENTS:
                raise InvalidInput(
                    "too_many_events", f"more than {_MAX_EVENTS} events in one request"
                )
            items = value
        elif isinstance(value, dict) and shape in ("auto", "single"):
            items = [value]
        else:
            expected = {"auto": "an object or an array", "array": "an array", "single": "an object"}
            raise InvalidInput("bad_events", f"events should be {expected[shape]} of objects")
        for item in items:
            if not isinstance(item, dict):
                raise InvalidInput("bad_event", "an event is not an object")
        return items

    def _get(self, event: Any, name: str) -> Any:
        path = self.spec.fields.get(name)
        return MISSING if path is None else path.get(event)

    def _text(self, event: Any, name: str) -> str | None:
        value = self._get(event, name)
        if value is MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidInput(f"bad_{name}", f"`{name}` should be a text or number")
        return str(value)[:200]

    def _rule(self, event: Any) -> KindRule | None:
        vtype = self._get(event, "type")
        if vtype is MISSING or isinstance(vtype, dict | list):
            raise InvalidInput(
                "missing_type", f"no event type at `{self.spec.fields['type'].text}`"
            )
        key = str(vtype)
        if key in self.spec.ignore:
            return None
        rules = self.spec.kinds.get(key)
        if rules is None:
            raise InvalidInput(
                "unknown_event_type",
                f"event type {_label(key)} is not in the mapping {self.spec.name}; add it under "
                f"kinds: or ignore:",
            )
        for rule in rules:
            if rule.matches(event):
                return rule
        return None

    def _channel(self, event: Any) -> Channel:
        if self.spec.channel is not None:
            return self.spec.channel
        assert self.spec.channel_path is not None
        value = self.spec.channel_path.get(event)
        found = self.spec.channel_map.get(str(value)) if value is not MISSING else None
        if found is None:
            raise InvalidInput("unknown_channel", "the event's channel is not in channel.map")
        return found

    def _map_event(self, event: Any, received: int, out: Output) -> None:
        rule = self._rule(event)
        if rule is None or (rule.usage is None and rule.consent is None):
            return
        channel = self._channel(event)
        raw = self._get(event, "address")
        if raw is MISSING:
            raise InvalidInput(
                "missing_address", f"no address at `{self.spec.fields['address'].text}`"
            )
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            raise InvalidInput("bad_address", "the address is not a text")
        addr = self.edge.address(raw, channel.value)
        when = self._get(event, "occurred_at")
        if when is MISSING:
            raise InvalidInput(
                "missing_time", f"no event time at `{self.spec.fields['occurred_at'].text}`"
            )
        occurred = self.spec.time.to_ms(when)
        parts = [p.get(event) for p in self.spec.event_id]
        if all(p is MISSING for p in parts):
            raise InvalidInput("missing_id", "none of the fields.event_id parts is present")
        parts = [None if p is MISSING else codec.dumps(p).decode("utf-8") for p in parts]
        eid = ids.event_id(self.instance.name, self.spec.name, *parts)
        vendor_type = str(self._get(event, "type"))[:80]
        vendor_purpose = self._text(event, "purpose")
        purpose = self.purpose(vendor_purpose) if vendor_purpose else None
        attributes = self._attributes(event)
        common: dict[str, Any] = {
            "event_id": eid,
            "occurred_at_ms": occurred,
            "received_at_ms": received,
            "source": self.instance.name,
            "processor": self.spec.name,
            "subject_key": addr.key,
            "hint": addr.hint,
            "controller": self.instance.controller,
            "attributes": attributes,
        }
        if rule.usage is not None:
            tags_value = self._get(event, "tags")
            tags: list[str] = []
            if isinstance(tags_value, str):
                tags = [tags_value[:100]]
            elif isinstance(tags_value, list):
                tags = [str(t)[:100] for t in tags_value if isinstance(t, str | int)][:50]
            is_test = self._get(event, "is_test")
            out.usage.append(
                UsageEvent(
                    **common,
                    channel=channel,
                    kind=rule.usage,
                    campaign_id=self._text(event, "campaign_id"),
                    list_id=self._text(event, "list_id"),
                    form_id=self._text(event, "form_id"),
                    sender=sending_domain(self._text(event, "sender")),
                    tags=tags,
                    declared_purpose=purpose,
                    source_event_type=vendor_type,
                    is_test=is_test is True or str(is_test).lower() in ("true", "1", "yes"),
                    source_named=_flag(self._get(event, "source_named")),
                )
            )
        if rule.consent is not None:
            purposes: list[str] = [purpose] if purpose else []
            unmapped: list[str] = []
            if vendor_purpose and not purpose:
                unmapped = [vendor_purpose]
            elif not vendor_purpose and rule.consent is ConsentAction.GRANT:
                unmapped = [f"{self.spec.name}:unspecified"]  # a grant never means "all"
            out.consent.append(
                ConsentEvent(
                    **common,
                    action=rule.consent,
                    purposes=purposes,
                    channels=[channel],
                    scope=self._text(event, "scope") or self._text(event, "list_id"),
                    unmapped_purposes=unmapped,
                    proof=self._proof(event, occurred),
                )
            )

    def _proof(self, event: Any, occurred: int) -> Proof | None:
        """Proof by reference: the platform's record of the consent (``proof_ref``) and the
        notice (``notice_version``), collected at the event's time; None without either."""
        ref, notice = self._text(event, "proof_ref"), self._text(event, "notice_version")
        ref = None if ref and _ADDRESS_LIKE.search(ref) else ref  # never an address
        notice = None if notice and _ADDRESS_LIKE.search(notice) else notice
        if ref is None and notice is None:
            return None
        return Proof(
            method="platform_record",
            collected_at_ms=occurred,
            notice_version=notice[:200] if notice else None,
            vendor_receipt=ref[:200] if ref else None,
            record_ref=ref[:200] if ref else None,
        )

    def _attributes(self, event: Any) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {}
        for name, path in self.spec.attributes.items():
            value = path.get(event)
            if value is MISSING or isinstance(value, dict | list) or value is None:
                continue
            if isinstance(value, str):
                if _ADDRESS_LIKE.search(value):
                    continue  # never let an address through an attribute
                value = value[:200]
            out[name] = value
        return out


def _flag(value: Any) -> bool | None:
    """A yes/no the platform reports (true, "yes", 1...), else None (not reported)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return None
