"""Run the reference PayScope API as a real process.

Why it exists: end-to-end tests (the operator in a test control plane, the
Helm chart's probes) need the fixture at a real address, started and stopped
like the PayScope API it stands in for::

    python -m tests.payscope_api --port 8000 --jwt-secret S \\
        [--algorithm HS256|RS256 --public-key-file F] [--key-id primary] [--extra-key KID=VALUE|KID=@FILE] \\
        --issuer payscope --audience payscope-api [--faults-file F] [--fixture-token T] [--hang-seconds N]

The HS256 secret may come from the environment (PAYSCOPE_JWT_SECRET) so that it
stays out of the process list; the audit log's DSN comes only from it
(PAYSCOPE_AUDIT_DSN: without it no audit-log row is written). SIGTERM stops accepting connections, lets
in-flight requests finish within --graceful-timeout-s, and exits 0.

What it must not do: hold behaviour of its own (everything is in ``app``), bind
anywhere but the given host (127.0.0.1 by default), or print a secret.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from tests.payscope_api import contract
from tests.payscope_api.app import create_app
from tests.payscope_api.config import FixtureConfig

SECRET_ENV = "PAYSCOPE_JWT_SECRET"
AUDIT_DSN_ENV = "PAYSCOPE_AUDIT_DSN"
"""The audit log's Postgres DSN, from the environment only (it carries a password)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.payscope_api", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--algorithm", choices=("HS256", "RS256"), default="HS256")
    parser.add_argument("--jwt-secret", help=f"HS256 shared secret (default: ${SECRET_ENV})")
    parser.add_argument("--public-key-file", type=Path, help="RS256 public key (PEM)")
    parser.add_argument("--key-id", default="primary", help="kid of the main key")
    parser.add_argument(
        "--extra-key",
        action="append",
        default=[],
        metavar="KID=VALUE",
        help="another accepted key (key rotation); VALUE is a secret, or @FILE for a PEM file",
    )
    parser.add_argument("--issuer", default="payscope")
    parser.add_argument("--audience", default="payscope-api")
    parser.add_argument("--faults-file", type=Path, help="JSON array of fault strings, re-read when it changes")
    parser.add_argument("--fault", action="append", default=[], help="a fault active from the start (repeatable)")
    parser.add_argument("--fixture-token", help="enables /_faults, guarded by the X-Fixture-Token header")
    parser.add_argument("--hang-seconds", type=float, default=3600.0)
    parser.add_argument("--confidence-threshold", type=float, default=0.6)
    parser.add_argument("--fallback-intent", choices=[i.value for i in contract.INTENTS], default="DESCRIBE")
    parser.add_argument("--graceful-timeout-s", type=float, default=20.0)
    parser.add_argument("--audit-table", default="audit_log")
    parser.add_argument("--dead-letter-queue", default="dlq", help="the Redis key /admin/pipeline reports")
    return parser


def _key_value(value: str) -> str:
    return Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value


def config_from_args(argv: Sequence[str] | None = None) -> tuple[FixtureConfig, str, int]:
    """Parse the command line into a fixture configuration, host and port."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.algorithm == "HS256":
        secret = args.jwt_secret or os.environ.get(SECRET_ENV)
        if not secret:
            parser.error(f"HS256 needs --jwt-secret or ${SECRET_ENV}")
        main_key = secret
    else:
        if args.public_key_file is None:
            parser.error("RS256 needs --public-key-file")
        main_key = args.public_key_file.read_text(encoding="utf-8")
    keys = {args.key_id: main_key}
    for item in args.extra_key:
        kid, sep, value = item.partition("=")
        if not sep or not kid or not value:
            parser.error(f"--extra-key expects KID=VALUE, got {item!r}")
        keys[kid] = _key_value(value)
    config = FixtureConfig(
        algorithm=args.algorithm,
        keys=keys,
        issuer=args.issuer,
        audience=args.audience,
        fixture_token=args.fixture_token,
        faults=tuple(args.fault),
        faults_file=args.faults_file,
        hang_seconds=args.hang_seconds,
        confidence_threshold=args.confidence_threshold,
        fallback_intent=contract.Intent(args.fallback_intent),
        graceful_timeout_s=args.graceful_timeout_s,
        audit_table=args.audit_table,
        audit_dsn=os.environ.get(AUDIT_DSN_ENV) or None,
        dead_letter_queue=args.dead_letter_queue,
        log_stream=sys.stdout,
    )
    return config, args.host, args.port


def main(argv: Sequence[str] | None = None) -> int:
    config, host, port = config_from_args(argv)
    app = create_app(config)
    web.run_app(
        app,
        host=host,
        port=port,
        shutdown_timeout=config.graceful_timeout_s,
        access_log=None,
        print=lambda _: print(f'{{"event":"listening","host":"{host}","port":{port}}}', flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
