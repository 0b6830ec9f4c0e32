"""Command-line entry point: ``payscope-operator <command>``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print("payscope-operator: commands will land here", args)
    return 0
