"""``consentinel settings``: print the settings in force, secrets masked."""

from __future__ import annotations

import argparse

from consentinel.streams.events.settings import Settings


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="consentinel settings", description=__doc__).parse_args(argv)
    for name, value in Settings.from_env().describe().items():
        print(f"{name} = {value}")
    return 0
