"""``payscope-operator``: run the operator, print the CRD, audit or plan without a cluster.

Subcommands:
  run    start the operator (kopf) against the current cluster
  crd    print the CRD generated from the API models
  audit  run the audit of a PayScopeDeployment file without a cluster (see ``standalone``)
  plan   print the actions Full management would take, changing nothing
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import socket
import sys
from collections.abc import Sequence

from payscope_operator import __version__, logs
from payscope_operator.egress import policy as egress_policy

TRUE = ("1", "true", "yes", "on")


def _run(args: argparse.Namespace) -> int:
    from payscope_operator import main  # kopf is imported only when running the operator

    namespaces = tuple(n for n in (args.namespaces or "").split(",") if n)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf's login reads it too
    from payscope_operator.reconcile import shards

    try:
        shard = shards.resolve(args.shard, args.total_shards, os.environ.get("POD_ID") or socket.gethostname())
    except ValueError as exc:
        raise SystemExit(f"payscope-operator run: {exc}") from None
    config = main.Config(
        namespaces=namespaces,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        peering=args.peering or None,
        priority=args.priority if args.priority is not None else secrets.randbelow(2**31 - 1) + 1,
        concurrency=args.concurrency,
        kubeconfig=args.kubeconfig,
        watch_check_interval=args.watch_check_interval,
        pass_deadline=args.pass_deadline,
        watch_timeout=args.watch_timeout,
        peering_lifetime=args.peering_lifetime,
        watch_stale_after=args.watch_stale_after,
        allowed_egress=args.allowed_egress,
        allow_ambient_credentials=args.allow_ambient_credentials,
        max_response_bytes=args.max_response_bytes,
        shard=shard,
    )
    try:
        egress_policy.Policy.from_settings(args.allowed_egress, max_response_bytes=args.max_response_bytes)
    except ValueError as exc:
        raise SystemExit(f"payscope-operator run: {exc}") from None
    if args.log_format not in logs.FORMATS:  # from PAYSCOPE_LOG_FORMAT: argparse checks only flags
        raise SystemExit(f"payscope-operator run: log format must be one of {', '.join(logs.FORMATS)}")
    logs.configure(args.log_level, args.log_format)
    if args.log_level.lower() != "debug":
        # kopf says "Handler 'on_event' succeeded" for every watch event; our own logs say what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(main.run(config))
    return 0


def _seconds(value: str) -> float:
    """A non-negative number of seconds (argparse applies it to defaults from the environment too)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {value!r}")
    return seconds


def _period(value: str) -> float:
    """A positive number of seconds: how often something repeats (0 would spin)."""
    seconds = _seconds(value)
    if seconds == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def _size(value: str) -> int:
    """A positive number of bytes."""
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {value!r}") from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"must be 1 byte or more: {value!r}")
    return size


def _count(value: str) -> int:
    """A whole number, 0 or more (a shard index; the total is checked against 1 by ``shards``)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {value!r}")
    return number


def _crd(_: argparse.Namespace) -> int:
    from payscope_operator.api import crd

    sys.stdout.write(crd.render_crd_yaml())
    return 0


def _standalone(args: argparse.Namespace) -> int:
    from payscope_operator import standalone

    logs.configure("warning", "text")  # stderr; resolved secret values are masked here too
    return standalone.main(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="payscope-operator", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"payscope-operator {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the operator")
    run.add_argument(
        "--namespaces",
        default=os.environ.get("PAYSCOPE_WATCH_NAMESPACES", ""),
        help="comma-separated namespaces to watch (default: all; env PAYSCOPE_WATCH_NAMESPACES)",
    )
    run.add_argument("--metrics-host", default=os.environ.get("PAYSCOPE_METRICS_HOST", "0.0.0.0"))  # noqa: S104
    run.add_argument("--metrics-port", type=int, default=int(os.environ.get("PAYSCOPE_METRICS_PORT", "8080")))
    run.add_argument(
        "--peering",
        default=os.environ.get("PAYSCOPE_PEERING", ""),
        help="KopfPeering name for HA (default: standalone; env PAYSCOPE_PEERING)",
    )
    run.add_argument(
        "--priority",
        type=int,
        default=int(os.environ["PAYSCOPE_PEERING_PRIORITY"]) if os.environ.get("PAYSCOPE_PEERING_PRIORITY") else None,
        help="peering priority (default: random per process, so exactly one replica works and the others stand by)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(os.environ.get("PAYSCOPE_PEERING_LIFETIME", "15")),
        metavar="SECONDS",
        help="how long a peer's keep-alive stays valid: a standby takes over this long after the active "
        "replica dies (default 15; env PAYSCOPE_PEERING_LIFETIME)",
    )
    run.add_argument("--concurrency", type=int, default=int(os.environ.get("PAYSCOPE_CONCURRENCY", "4")))
    run.add_argument(
        "--pass-deadline",
        type=_period,
        default=os.environ.get("PAYSCOPE_PASS_DEADLINE", "60"),
        metavar="SECONDS",
        help="a reconcile pass is cancelled after this long, and retried with backoff "
        "(at least 3 probe timeouts; default 60; env PAYSCOPE_PASS_DEADLINE)",
    )
    run.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument(
        "--watch-check-interval",
        type=_period,
        default=os.environ.get("PAYSCOPE_WATCH_CHECK_INTERVAL", "60"),
        metavar="SECONDS",
        help="how often the watch is compared with the API server (default 60; env PAYSCOPE_WATCH_CHECK_INTERVAL)",
    )
    run.add_argument(
        "--watch-timeout",
        type=int,
        default=int(os.environ.get("PAYSCOPE_WATCH_TIMEOUT", "50")),
        metavar="SECONDS",
        help="each watch request ends after this long and is resumed; a silent stream is given up 10 s later "
        "(default 50; env PAYSCOPE_WATCH_TIMEOUT)",
    )
    run.add_argument(
        "--watch-stale-after",
        type=_seconds,
        default=os.environ.get("PAYSCOPE_WATCH_STALE_AFTER", "120"),
        metavar="SECONDS",
        help="/healthz fails once the watch has missed changes for longer than this "
        "(default 120; env PAYSCOPE_WATCH_STALE_AFTER)",
    )
    run.add_argument(
        "--allowed-egress",
        default=os.environ.get(egress_policy.ENV_ALLOWED, ""),
        metavar="LIST",
        help="comma-separated CIDRs, host names and *.domain patterns the endpoints of a spec may resolve to"
        " (default: anything but link-local, metadata, loopback and the API server; env PAYSCOPE_ALLOWED_EGRESS)."
        " A CIDR inside 127.0.0.0/8 or ::1 opens that part of loopback",
    )
    run.add_argument(
        "--allow-ambient-credentials",
        action="store_true",
        default=os.environ.get("PAYSCOPE_ALLOW_AMBIENT_CREDENTIALS", "").lower() in TRUE,
        help="let sections without a credentials Secret (objectStorage) act with the operator's own cloud identity:"
        " every PayScopeDeployment then acts with it (env PAYSCOPE_ALLOW_AMBIENT_CREDENTIALS=true)",
    )
    run.add_argument(
        "--max-response-bytes",
        type=_size,
        default=os.environ.get(egress_policy.ENV_MAX_RESPONSE_BYTES, str(egress_policy.DEFAULT_MAX_RESPONSE_BYTES)),
        metavar="BYTES",
        help="HTTP bodies (PayScope's API, Pinecone) larger than this are not read"
        " (default 1048576; env PAYSCOPE_MAX_RESPONSE_BYTES)",
    )
    run.add_argument(
        "--shard",
        type=_count,
        default=os.environ.get("PAYSCOPE_SHARD") or None,
        metavar="N",
        help="this process's shard, 0 to total-1: it reconciles only the resources whose uid hashes to it"
        " (default: the ordinal ending the Pod's name, POD_ID or the hostname, as a StatefulSet's; env PAYSCOPE_SHARD)",
    )
    run.add_argument(
        "--total-shards",
        type=_count,
        default=os.environ.get("PAYSCOPE_TOTAL_SHARDS", "1"),
        metavar="M",
        help="how many shards share the resources, each run as its own process (default 1: this process owns"
        " every resource; env PAYSCOPE_TOTAL_SHARDS)",
    )
    run.add_argument("--log-level", default=os.environ.get("PAYSCOPE_LOG_LEVEL", "info"))
    run.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=os.environ.get("PAYSCOPE_LOG_FORMAT", "text"),
        help="text (default) or json: one object per line (env PAYSCOPE_LOG_FORMAT)",
    )
    run.set_defaults(func=_run)

    crd = sub.add_parser("crd", help="print the CRD generated from the API models")
    crd.set_defaults(func=_crd)

    for name, help_text in (
        (
            "audit",
            "audit a PayScopeDeployment file without a cluster; exit 1 when a non-waived check fails, 3 when a"
            " dimension was not audited and not waived",
        ),
        ("plan", "print the provisioning actions Full management would take, changing nothing"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-f", "--filename", required=True, help="PayScopeDeployment YAML")
        source = cmd.add_mutually_exclusive_group()
        source.add_argument("--secrets-from-env", action="store_true", help="read SECRET_<NAME>_<KEY> variables")
        source.add_argument("--secrets-file", help="a YAML file of Secret manifests")
        if name == "audit":
            cmd.add_argument(
                "--output",
                choices=("table", "json", "junit", "markdown"),
                default="table",
                help="markdown: the readiness report in the checklist's shape (what kubectl payscope report prints)",
            )
        cmd.set_defaults(func=_standalone)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
