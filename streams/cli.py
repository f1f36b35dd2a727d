"""``consentinel``: the one console script, subcommands grouped by job.

This module is the composition root: it names each command's module by string and
imports it only when that command runs, so ``consentinel topics`` never loads Faust and
``consentinel ingest`` never loads the stream processors. Each command module exposes
``main(argv: list[str]) -> int`` and owns its own arguments.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "topics": ("consentinel.streams.topics_admin", "create or check the Kafka topics"),
    "settings": (
        "consentinel.streams.settings_cmd",
        "print the settings in force (secrets masked)",
    ),
    "worker": (
        "consentinel.streams.worker.command",
        "run the stream processors (consent ledger, usage checker)",
    ),
    "rules": ("consentinel.streams.registry.rules_cmd", "list the rules (id, severity, source)"),
    "registry": ("consentinel.streams.registry.command", "apply or show purpose declarations"),
    "ingest": ("consentinel.connectors.runtime.ingest_command", "run the webhook ingest server"),
    "import": (
        "consentinel.connectors.runtime.file_import",
        "import a CSV or JSONL file through a connector",
    ),
    "connectors": ("consentinel.connectors.cli", "list connectors, dry-run a sample payload"),
    "router": (
        "consentinel.streams.alerts.router",
        "run the alert router (incidents, notifications)",
    ),
    "console": ("consentinel.streams.alerts.console", "run the operator console"),
    "demo": ("consentinel.connectors.demo", "post the demo traffic through the real connectors"),
    "evidence": (
        "consentinel.streams.casework.evidence_cmd",
        "export or verify a signed evidence pack",
    ),
    "subject": ("consentinel.streams.casework.subject_lookup", "what is held about one address"),
    "certificates": (
        "consentinel.streams.certificates.command",
        "verify claimed lead certificates (R23)",
    ),
    "reference": ("consentinel.streams.reference_cmd", "print topics, records, settings"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: consentinel <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {doc}" for name, (_, doc) in COMMANDS.items()]
    lines += ["", "`consentinel <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"consentinel: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(
                f"consentinel: the {name!r} command is not available in this build", file=sys.stderr
            )
            return 2
        raise
    from consentinel.streams.events.errors import FatalConfigError

    try:
        return int(module.main(rest) or 0)
    except FatalConfigError as exc:
        print(f"consentinel {name}: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
