"""``consentinel connectors``: list the connectors, dry-run a sample payload.

    consentinel connectors list [--config FILE]
    consentinel connectors test NAME SAMPLE [--config FILE --instance NAME]
                                [-H 'Header: value']... [--url URL] [--method POST]
                                [--content-type TYPE] [--rows]

``NAME`` is a connector name (``consentinel connectors list``) or a declarative mapping
file. ``test`` runs SAMPLE (the raw body, exactly as the platform sends it) through
``handshake``/``map_request`` (or every record of a CSV/JSONL file through ``map_row``
with ``--rows``) and prints the canonical events, addresses masked. Verification runs
only when headers are given and the instance's secrets are known (``--config`` and
``--instance``); otherwise it says that it was skipped.

Exit codes: 0 mapped, 1 refused as invalid input (would be dead-lettered), 2 not
authentic, 3 the connector failed (a bug), 64 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from consentinel.connectors import registry
from consentinel.connectors.contract import (
    AuthenticationFailed,
    Connector,
    Edge,
    Instance,
    Output,
    Request,
)
from consentinel.streams.events import codec
from consentinel.streams.events.errors import ConsentinelError, InvalidInput
from consentinel.streams.events.identity import Pseudonymizer

DRY_RUN_PEPPER = b"consentinel-dry-run-pepper-not-for-production"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="consentinel connectors", description="List connectors; dry-run a sample payload."
    )
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="every connector: name, produces, auth, title")
    ls.add_argument("--config", help="also load this instances file (declarative mappings)")
    sh = sub.add_parser("show", help="one connector: options, events, signature, event time")
    sh.add_argument("name", help="connector name or declarative mapping file (.yaml)")
    sub.add_parser("reference", help="print connectors/REFERENCE.md (every built-in)")
    t = sub.add_parser("test", help="map a sample payload and print the canonical events")
    t.add_argument("name", help="connector name or declarative mapping file (.yaml)")
    t.add_argument("sample", type=Path, help="raw body file (or CSV/JSONL with --rows)")
    t.add_argument("--config", help="instances file, for --instance")
    t.add_argument("--instance", help="use this configured instance (its secrets, options)")
    t.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        help="'Name: value' request header; given headers turn verification on",
    )
    t.add_argument("--url", default="", help="the URL the platform called (signed schemes)")
    t.add_argument("--method", default="POST")
    t.add_argument("--content-type", help="default: guessed from the sample")
    t.add_argument("--rows", action="store_true", help="SAMPLE is a CSV/JSONL import file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return cmd_list(args.config, sys.stdout)
    if args.command == "show":
        try:
            return cmd_show(args.name, sys.stdout)
        except registry.UnknownConnector as exc:
            print(f"consentinel connectors show: {exc}", file=sys.stderr)
            return 2
    if args.command == "reference":
        from consentinel.connectors.reference import reference

        sys.stdout.write(reference())
        return 0
    return cmd_test(args, sys.stdout)


# -- show ---------------------------------------------------------------------------------


def cmd_show(name: str, out: TextIO) -> int:
    """Print one connector's reference; raises ``UnknownConnector`` for a wrong name."""
    from consentinel.connectors.declarative import EXAMPLES, load_mapping
    from consentinel.connectors.reference import describe

    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        out.write(describe(load_mapping(name)))
        return 0
    shipped = EXAMPLES / f"{name}.yaml"
    if name not in registry.known_names() and shipped.is_file():
        out.write(describe(load_mapping(shipped)))  # a shipped declarative example, by name
        return 0
    out.write(describe(registry.get(name)))
    return 0


# -- list ------------------------------------------------------------------------------


def cmd_list(config_path: str | None, out: TextIO) -> int:
    if config_path:
        _load_config(config_path)
    from consentinel.connectors.declarative import EXAMPLES, load_mapping

    for f in sorted(EXAMPLES.glob("*.yaml")):  # registers the shipped examples
        try:
            load_mapping(f)
        except ConsentinelError as exc:
            out.write(f"example {f.name} does not load: {exc}\n")
    entries = registry.discover()
    rows = []
    broken = 0
    for e in entries:
        if e.cls is None:
            broken += 1
            rows.append((e.name, "-", "-", f"NOT LOADABLE ({e.origin}): {e.problem}"))
            continue
        origin = "" if e.origin == "builtin" else f" [{e.origin}]"
        rows.append((e.name, e.cls.produces, e.cls.auth, e.cls.title + origin))
    widths = [max(len(r[i]) for r in [("NAME", "PRODUCES", "AUTH", ""), *rows]) for i in (0, 1)]
    out.write(f"{'NAME':<{widths[0]}}  {'PRODUCES':<{widths[1]}}  TITLE / AUTH\n")
    for name, produces, auth, title in rows:
        out.write(f"{name:<{widths[0]}}  {produces:<{widths[1]}}  {title}\n")
        if auth != "-":
            out.write(f"{'':<{widths[0]}}  {'':<{widths[1]}}  auth: {auth}\n")
    out.write(
        f"\n{len(rows) - broken} connector(s) loadable"
        + (f", {broken} not loadable (see above)" if broken else "")
        + ". Declarative mappings: `type: declarative` + `mapping: FILE`; examples in "
        f"{EXAMPLES}\n"
    )
    return 0 if not broken else 1


# -- test ------------------------------------------------------------------------------


def _load_config(path: str) -> Any:
    from consentinel.connectors import config
    from consentinel.streams.events.settings import Settings

    settings = Settings.from_env()
    return config.load(path, settings), settings


def _instance_for(args: argparse.Namespace) -> tuple[Connector, str]:
    """The connector to dry-run, and a sentence about the keys it uses."""
    if args.instance:
        if not args.config:
            raise ConsentinelError("--instance needs --config FILE (the instances file)")
        cfg, settings = _load_config(args.config)
        inst = cfg.get(args.instance)
        edge = Edge(Pseudonymizer(settings.pepper.reveal()), inst.default_region)
        return cfg.classes[inst.name](inst, edge), "subject keys use the configured pepper"
    name = args.name
    options: dict[str, Any] = {}
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        from consentinel.connectors.declarative import load_mapping

        options["mapping"] = str(Path(name).resolve())
        cls: type[Connector] = load_mapping(name)
        ctype = registry.DECLARATIVE
    else:
        cls = registry.get(name)
        ctype = name
    for f in cls.config_schema:
        if not f.secret and f.default is not None:
            options.setdefault(f.name, f.default)
    inst = Instance(
        name=f"{cls.name}-dryrun", type=ctype, controller="dry-run-controller", options=options
    )
    edge = Edge(Pseudonymizer(DRY_RUN_PEPPER), inst.default_region)
    return cls(inst, edge), "subject keys use a dry-run pepper (they differ in production)"


def _request(args: argparse.Namespace, body: bytes) -> Request:
    headers: dict[str, str] = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep:
            raise ConsentinelError(f"--header {h!r}: expected 'Name: value'")
        headers[name.strip().lower()] = value.strip()
    if args.content_type:
        headers["content-type"] = args.content_type
    headers.setdefault(
        "content-type",
        "application/json"
        if body.lstrip()[:1] in (b"{", b"[")
        else "application/x-www-form-urlencoded",
    )
    url = args.url or "https://dry-run.invalid/hooks/dry-run"
    parts = urlsplit(url)
    return Request(
        method=args.method.upper(),
        url=url,
        path=parts.path or "/",
        query=parse_qs(parts.query, keep_blank_values=True),
        headers=headers,
        body=body,
        remote="127.0.0.1",
        received_at_ms=Edge.now_ms(),
    )


def _print_events(output: Output, out: TextIO) -> None:
    for kind, events in (("usage", output.usage), ("consent", output.consent)):
        for e in events:
            obj = codec.to_obj(e)
            obj["subject_key"] = obj["subject_key"][:12] + "..."
            out.write(f"{kind}: {codec.dumps(obj).decode('utf-8')}\n")


def cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    try:
        connector, keys_note = _instance_for(args)
        body = args.sample.read_bytes()
    except OSError as exc:
        print(f"consentinel connectors test: {args.sample}: {exc.strerror}", file=sys.stderr)
        return 64
    except ConsentinelError as exc:
        print(f"consentinel connectors test: {exc}", file=sys.stderr)
        return 64
    out.write(f"connector {connector.name} ({connector.instance.name}); {keys_note}\n")
    if args.rows:
        return _test_rows(connector, args.sample, out)
    try:
        req = _request(args, body)
    except ConsentinelError as exc:
        print(f"consentinel connectors test: {exc}", file=sys.stderr)
        return 64
    try:
        answer = connector.handshake(req)
        if answer is not None:
            out.write(f"handshake: answered {answer.status} directly; no event\n")
            return 0
        if args.header and connector.instance.secrets:
            connector.verify(req)
            out.write("verification: passed\n")
        elif args.header:
            out.write("verification: skipped (no secrets: use --config and --instance)\n")
        else:
            out.write("verification: skipped (no --header given)\n")
        output = connector.map_request(req)
    except AuthenticationFailed as exc:
        out.write(f"NOT AUTHENTIC: {exc.message} [{exc.reason}]: the server would answer 401\n")
        return 2
    except InvalidInput as exc:
        out.write(
            f"REFUSED: {exc.message} [{exc.code}]: the server would answer 4xx and seal the "
            f"payload to the dead-letter topic\n"
        )
        return 1
    except Exception as exc:
        out.write(f"CONNECTOR FAILED: {type(exc).__name__}: {exc} (a bug in the connector)\n")
        return 3
    _print_events(output, out)
    out.write(f"{len(output.usage)} usage and {len(output.consent)} consent event(s)\n")
    return 0


def _test_rows(connector: Connector, sample: Path, out: TextIO) -> int:
    from consentinel.connectors.runtime.rows import guess_format, read_records

    fmt = guess_format(sample)
    total = Output()
    refused = 0
    try:
        for rec in read_records(sample, fmt):
            try:
                if rec.error is not None:
                    raise rec.error
                assert rec.row is not None
                total.extend(connector.map_row(rec.row))
            except InvalidInput as exc:
                refused += 1
                out.write(f"line {rec.line}: REFUSED: {exc.message} [{exc.code}]\n")
    except InvalidInput as exc:
        out.write(f"REFUSED: {exc.message} [{exc.code}]\n")
        return 1
    _print_events(total, out)
    out.write(
        f"{len(total.usage)} usage and {len(total.consent)} consent event(s), "
        f"{refused} record(s) refused\n"
    )
    return 1 if refused else 0
