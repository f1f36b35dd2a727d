"""The conformance suite: one pytest class per connector case, every check of the
contract (declarations, mapping, privacy, ids, redelivery, tampering, malformed input,
address hygiene, file rows)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import (
    quote,
    quote_plus,
)

from consentinel.connectors.contract import (
    AuthenticationFailed,
    Output,
)
from consentinel.connectors.testkit.case import (
    ConnectorCase,
    RecordingEdge,
    Sample,
    all_events,
    build_connector,
    make_edge,
    with_body,
)
from consentinel.connectors.testkit.malformed import (
    _ODD,
    _looks_like_address,
    _outcome,
    malformed_bodies,
)
from consentinel.connectors.testkit.privacy import (
    _CODE_RE,
    assert_no_raw_address,
    assert_valid_events,
    raw_addresses,
)
from consentinel.connectors.testkit.tamper import (
    locate_signature,
    tamper,
)
from consentinel.streams.events.errors import InvalidInput

# -- the suite ---------------------------------------------------------------------------


#: one character of every class an address never holds, with the class for test ids
ODD_CHARACTERS: dict[str, str] = {
    "\x00": "Cc-nul",
    "\u200b": "Cf-zero-width-space",
    "\u202e": "Cf-rtl-override",
    "\ud800": "Cs-surrogate",
    "\ue000": "Co-private-use",
    "\u0378": "Cn-unassigned",
    "\ufffd": "replacement-character",  # noqa: F601 (not the same key as U+D800)
}


def inject(body: bytes, raw: str, char: str) -> bytes | None:
    """``body`` with ``char`` put after the first character of the address ``raw``, escaped
    as the body's format needs (JSON ``\\uXXXX`` or a form's percent escapes); None when
    the address is not found as written."""
    text = body.decode("utf-8", "replace")
    if raw in text and text.lstrip()[:1] in ("{", "["):
        escaped = "".join(f"\\u{u:04x}" for u in _utf16(char))
        return text.replace(raw, raw[:1] + escaped + raw[1:], 1).encode("utf-8")
    for encoded in (quote_plus(raw), quote(raw, safe="")):
        if encoded and encoded in text:
            try:
                extra = quote(char, safe="")
            except UnicodeEncodeError:
                extra = "%ED%A0%80"  # a surrogate as (invalid) UTF-8 bytes
            first = quote_plus(raw[:1]) if encoded == quote_plus(raw) else quote(raw[:1], safe="")
            altered = first + extra + encoded[len(first) :]
            return text.replace(encoded, altered, 1).encode("utf-8")
    return None


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def conformance_suite(case: ConnectorCase) -> type:
    """A pytest test class checking ``case`` against the connector contract."""
    import pytest

    if not case.samples:
        raise ValueError(f"ConnectorCase {case.connector!r}: give at least one sample")
    inst = case.instance
    region = inst.default_region
    samples = {s.name: s for s in case.samples}
    if len(samples) != len(case.samples):
        raise ValueError(f"ConnectorCase {case.connector!r}: sample names must be unique")
    first = case.samples[0]
    sig_part = case.signature or locate_signature(first.request)
    tamper_parts = [(p, False) for p in case.signed_parts]
    if sig_part is not None:
        tamper_parts += [(sig_part, False), (sig_part, True)]
    malformed = [
        (s.name, name, body, strict)
        for s in case.samples[:2]
        for name, body, strict in malformed_bodies(s.request, case.malformed if s is first else ())
    ]

    def mapped(sample: Sample) -> tuple[Output, RecordingEdge]:
        edge = make_edge(region)
        connector = build_connector(case, edge)
        assert connector.handshake(sample.request) is None, (
            f"handshake() answered the ordinary sample {sample.name!r}; return None for it"
        )
        connector.verify(sample.request)
        return connector.map_request(sample.request), edge

    class Suite:
        conformance_case = case

        def test_declares_itself(self) -> None:
            from consentinel.connectors import registry

            cls = registry.connector_class(inst)
            assert cls.name == case.connector, (
                f"registry gave {cls.__name__} named {cls.name!r}, expected {case.connector!r}"
            )
            assert getattr(cls, "title", ""), "declare a one-line `title`"
            assert cls.produces in ("usage", "consent", "usage+consent"), (
                "`produces` must be usage, consent or usage+consent"
            )
            assert getattr(cls, "auth", ""), "declare `auth`: the scheme in words"
            for f in cls.config_schema:
                if f.required and f.secret:
                    assert f.name in inst.secrets, f"the case instance lacks secret {f.name!r}"
                elif f.required:
                    assert f.name in inst.options, f"the case instance lacks option {f.name!r}"

        @pytest.mark.parametrize("name", list(samples))
        def test_sample_maps_to_expected_events(self, name: str) -> None:
            sample = samples[name]
            output, _ = mapped(sample)
            assert_valid_events(output, inst)
            assert (len(output.usage), len(output.consent)) == (sample.usage, sample.consent), (
                f"sample {name!r}: got {len(output.usage)} usage / {len(output.consent)} "
                f"consent events, expected {sample.usage} / {sample.consent}"
            )

        @pytest.mark.parametrize("name", list(samples))
        def test_no_raw_address_in_events(self, name: str) -> None:
            sample = samples[name]
            output, edge = mapped(sample)
            found = raw_addresses(
                sample.request.body + b"\n" + sample.request.url.encode("utf-8"), edge.seen
            )
            assert_no_raw_address(all_events(output), found, region, set(edge.seen))

        @pytest.mark.parametrize("name", list(samples))
        def test_redelivery_gives_same_ids(self, name: str) -> None:
            sample = samples[name]
            one, _ = mapped(sample)
            two, _ = mapped(sample)
            assert [e.event_id for e in all_events(one)] == [e.event_id for e in all_events(two)]

        @pytest.mark.parametrize("name", list(samples))
        def test_redelivery_with_a_new_signature_gives_same_ids(self, name: str) -> None:
            # a platform's retry: the same event, delivered later, signed again
            sample = samples[name]
            one, _ = mapped(sample)
            later = dataclasses.replace(
                sample.request, received_at_ms=(sample.request.received_at_ms or 0) + 61_000
            )
            two, _ = mapped(Sample(name, case.sign(later, inst)))
            assert [e.event_id for e in all_events(one)] == [e.event_id for e in all_events(two)], (
                f"sample {name!r}: a redelivery got other event ids; build ids from the "
                f"platform's own event identity only, never from delivery time or headers"
            )

        @pytest.mark.parametrize("char", list(ODD_CHARACTERS), ids=list(ODD_CHARACTERS.values()))
        def test_address_with_an_invisible_character_is_refused(self, char: str) -> None:
            injected = 0
            for sample in case.samples:
                _, edge = mapped(sample)
                for raw in dict.fromkeys(edge.seen):
                    body = inject(sample.request.body, raw, char)
                    if body is None:
                        continue
                    injected += 1
                    request = case.sign(with_body(sample.request, body), inst)
                    connector = build_connector(case, make_edge(region))
                    try:
                        connector.verify(request)
                        output = connector.map_request(request)
                    except InvalidInput:
                        continue
                    except AuthenticationFailed:
                        # a lone surrogate is not Unicode: a body holding one cannot be
                        # parsed, so a signature inside it cannot be found either
                        assert char == "\ud800", "re-signed request failed verification"
                        continue
                    assert output.rejected, (
                        f"sample {sample.name!r}: an address holding {ODD_CHARACTERS[char]} "
                        f"was taken; it must be refused (InvalidInput bad_email/bad_phone)"
                    )
            if not injected:  # only a connector that keys no address of the request
                for sample in case.samples:  # (one-click: a signed token) may pass so
                    _, edge = mapped(sample)
                    assert not edge.seen, (
                        f"sample {sample.name!r}: the kit could not find the addresses the "
                        f"connector keyed in the request; write them plainly in the sample"
                    )

        def test_ids_distinct_between_events(self) -> None:
            for kind in ("usage", "consent"):
                seen: dict[str, str] = {}
                for sample in case.samples:
                    output, _ = mapped(sample)
                    for event in getattr(output, kind):
                        assert event.event_id not in seen, (
                            f"{kind} event id repeats: sample {sample.name!r} and "
                            f"{seen[event.event_id]!r} (ids must differ between events)"
                        )
                        seen[event.event_id] = sample.name

        @pytest.mark.parametrize(
            ("part", "remove"),
            tamper_parts,
            ids=[f"{'missing' if r else 'changed'}-{p}" for p, r in tamper_parts],
        )
        def test_tampering_fails_verification(self, part: str, remove: bool) -> None:
            connector = build_connector(case)
            for sample in case.samples:
                forged = tamper(sample.request, part, remove=remove)
                with pytest.raises(AuthenticationFailed):
                    connector.verify(forged)

        def test_signature_is_found(self) -> None:
            assert sig_part is not None, (
                "the kit cannot tell where this connector's signature or secret is; "
                "set ConnectorCase.signature (e.g. 'header:x-mandrill-signature', "
                "'query:token', 'form:sig')"
            )

        @pytest.mark.parametrize(
            ("sample_name", "name", "body", "strict"),
            malformed,
            ids=[f"{s}-{n}" for s, n, _, _ in malformed],
        )
        def test_malformed_input_is_refused_cleanly(
            self, sample_name: str, name: str, body: bytes, strict: bool
        ) -> None:
            sample = samples[sample_name]
            request = case.sign(with_body(sample.request, body), inst)
            edge = make_edge(region)
            connector = build_connector(case, edge)
            found = raw_addresses(body, []) | raw_addresses(sample.request.body, [])
            _outcome(connector, request, strict, found, inst)

        def test_case_malformed_are_invalid(self) -> None:
            for i, body in enumerate(case.malformed):
                request = case.sign(with_body(first.request, body), inst)
                connector = build_connector(case)
                with pytest.raises(InvalidInput):
                    connector.verify(request)
                    connector.map_request(request)
                    raise AssertionError(f"case.malformed[{i}] was taken; expected InvalidInput")

        def test_empty_row_is_refused(self) -> None:
            connector = build_connector(case)
            for row in ({}, {k: "" for r in case.rows[:1] for k in r}):
                try:
                    output = connector.map_row(row)
                except InvalidInput as exc:
                    assert _CODE_RE.fullmatch(exc.code), f"bad code {exc.code!r}"
                    continue
                assert len(output) == 0, "an empty row produced events"

    if case.rows:

        def test_rows_map_to_valid_events(self: Any) -> None:
            ids: set[tuple[str, str]] = set()
            for i, row in enumerate(case.rows):
                edge = make_edge(region)
                connector = build_connector(case, edge)
                output = connector.map_row(row)
                assert len(output) > 0, f"row {i} produced no event"
                assert_valid_events(output, inst)
                again = build_connector(case).map_row(row)
                assert [e.event_id for e in all_events(output)] == [
                    e.event_id for e in all_events(again)
                ], f"row {i}: ids differ when mapped twice"
                values = [str(v) for v in row.values() if isinstance(v, str | int)]
                found = raw_addresses("\n".join(values), edge.seen)
                assert_no_raw_address(all_events(output), found, region, set(edge.seen))
                for e in all_events(output):
                    key = (type(e).__name__, e.event_id)
                    assert key not in ids, f"row {i}: event id repeats another row's"
                    ids.add(key)

        def test_rows_malformed_never_crash(self: Any) -> None:
            template = case.rows[0]
            variants: list[Mapping[str, Any]] = [
                {k: _ODD for k in template},
                {k: "x" * 100_000 for k in template},
                {k: None for k in template},
                {
                    k: ("not-an-address" if _looks_like_address(str(v)) else v)
                    for k, v in template.items()
                },
            ]
            for row in variants:
                connector = build_connector(case)
                try:
                    output = connector.map_row(row)
                except InvalidInput as exc:
                    assert _CODE_RE.fullmatch(exc.code), f"bad code {exc.code!r}"
                    continue
                assert_valid_events(output, inst)

        Suite.test_rows_map_to_valid_events = test_rows_map_to_valid_events  # type: ignore[attr-defined]
        Suite.test_rows_malformed_never_crash = test_rows_malformed_never_crash  # type: ignore[attr-defined]

    Suite.__name__ = Suite.__qualname__ = f"Conformance_{case.connector}"
    return Suite
