"""``python -m tests.testenv up | down | status | env | check``: the real-server test environment.

``up`` obtains every component (cached outside the clone), starts each server
on free 127.0.0.1 ports, waits until each answers, and writes
``.testenv/env.sh`` and ``.testenv/env.json``. On a running environment it is a
no-op. ``down`` stops exactly the pids it started. ``status`` prints each
server's state and address. ``env`` prints the export lines. ``check [PATTERN]`` proves
each server real (``check``; the checks matching PATTERN only), starting the
environment for it when it is down.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.testenv import check, environment, smoke_kube, smoke_stores, smoke_timescale

CHECKS = (*smoke_stores.CHECKS, *smoke_timescale.CHECKS, *smoke_kube.CHECKS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testenv", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env", "obtain", "check"])
    parser.add_argument("pattern", nargs="?", help="check: run only the checks whose name matches")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check.main(CHECKS, args.pattern)
    if args.command == "obtain":
        started = time.monotonic()
        environment.obtain_all()
        print(f"obtained every component in {time.monotonic() - started:.1f}s")
        return 0
    if args.command == "up":
        started = time.monotonic()
        state = environment.up()
        print(environment.describe(state))
        print(f"environment ready in {time.monotonic() - started:.1f}s; source {environment.env_sh_path()}")
        return 0
    if args.command == "down":
        environment.down()
        print("environment stopped")
        return 0
    current = environment.load()
    if args.command == "status":
        if current is None:
            print("environment is down")
            return 1
        print(environment.describe(current))
        return 0 if environment.healthy(current) else 1
    if current is None:
        print("environment is down", file=sys.stderr)
        return 1
    print(environment.env_sh_path().read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
