"""Benchmark (not a timed test): where a running operator's memory goes, per resource, by the line that holds it.

Why it exists: RSS per resource is a figure (``benchmarks/scale.py``); what to do
about it needs the holders. This script runs the operator under tracemalloc
(``benchmarks/traced_operator.py``) in a fresh namespace, takes a snapshot once it
is idle, applies ``--count`` resources (ObserveOnly, one Postgres table each, over
10 databases), waits until every status is complete and the operator is idle
(what a pass keeps for the next one is there after the first), takes a second
snapshot and prints the growth per resource: RSS, what tracemalloc traced, and the
largest holders. An allocation is charged to the innermost frame of the operator's
own code on its stack (else of kopf, else of prometheus_client, else its own line),
because that is the line a change would touch.

    PYTHONPATH=. .venv/bin/python benchmarks/memory.py [--count 200]

Needs the test environment (``python -m tests.testenv up``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from benchmarks import fleet
from tests.e2e import cluster

TRACED = Path(__file__).resolve().parent / "traced_operator.py"
OWNERS = ("/payscope_operator/", "/kopf/", "/prometheus_client/")


def snapshot(operator: cluster.OperatorProcess, out: Path) -> tracemalloc.Snapshot:
    before = out.stat().st_mtime_ns if out.exists() else 0
    os.kill(operator.pid, signal.SIGUSR1)
    cluster.wait_for(
        lambda: out.exists() and out.stat().st_mtime_ns != before, what="a tracemalloc snapshot", timeout=300
    )
    return tracemalloc.Snapshot.load(str(out))


def settle(operator: cluster.OperatorProcess, seconds: float) -> None:
    """Let the last passes' Events and kopf's per-resource workers finish (no scrape: under tracemalloc
    one blocks the operator for many seconds): until its CPU time stops growing, at most ``seconds``."""
    ends = time.monotonic() + seconds
    last = fleet.read(operator.pid).cpu_s
    while time.monotonic() < ends:
        time.sleep(2.0)
        now = fleet.read(operator.pid).cpu_s
        if now - last < 0.2:
            return
        last = now


def holder(trace: tracemalloc.Trace) -> str:
    frames = list(reversed(trace.traceback))  # tracemalloc lists the oldest first: the innermost first here
    for marker in OWNERS:
        for frame in frames:
            if marker in frame.filename:
                return f"{frame.filename.split(marker, 1)[1]}:{frame.lineno} ({marker.strip('/')})"
    frame = frames[0]
    return f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}"


def held(shot: tracemalloc.Snapshot) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for trace in shot.traces:
        key = holder(trace)
        sizes[key] = sizes.get(key, 0) + trace.size
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--databases", type=int, default=10)
    parser.add_argument("--interval", type=int, default=600, help="spec.audit.interval in seconds")
    parser.add_argument("--settle", type=float, default=60.0, help="at most this long for the operator to go idle")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    api = fleet.connect()
    dbs = fleet.Databases(os.environ["PAYSCOPE_PG_DSN"])
    dbs.create(args.databases)
    print(f"machine: {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}; {args.count} resources",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        place = fleet.Place.create(api, "memory", folder)
        dbs.secrets(api, place.namespace)
        out = folder / "operator.snapshot"
        operator = cluster.start_operator(
            place.who.kubeconfig, folder / "operator.log", namespaces=(place.namespace,),
            extra_env=fleet.PRODUCTION_ENV,
            extra_args=("--log-level", "warning"), command=(sys.executable, str(TRACED), str(out), "run"),
        )  # fmt: skip
        try:
            idle_rss = fleet.read(operator.pid).rss_mb
            idle = held(snapshot(operator, out))
            specs = {f"mem-{i:04d}": fleet.spec_for(i, args.databases, f"{args.interval}s") for i in range(args.count)}
            watcher = fleet.Completion(place.api, place.namespace)
            try:
                fleet.create_many(place.api, place.namespace, specs)
                if not watcher.wait_done(specs, timeout=120 + 2.0 * args.count):
                    raise SystemExit("not every resource got a complete status")
            finally:
                watcher.stop()
            settle(operator, args.settle)
            busy_rss = fleet.read(operator.pid).rss_mb
            busy = held(snapshot(operator, out))
        finally:
            operator.stop()
            place.delete()
            dbs.drop()
    grown = {key: busy.get(key, 0) - idle.get(key, 0) for key in set(busy) | set(idle)}
    traced = sum(grown.values())
    n = args.count
    per = 1024 * (busy_rss - idle_rss) / n
    print(f"RSS: {idle_rss:.0f} MB idle -> {busy_rss:.0f} MB with {n} resources"
          f" ({per:.0f} KB per resource, tracemalloc's own overhead included)")  # fmt: skip
    print(f"traced by tracemalloc: +{traced / 2**20:.1f} MB ({traced / n / 1024:.0f} KB per resource)")
    print("largest holders (KB per resource, share of the traced growth):")
    for key, size in sorted(grown.items(), key=lambda item: -item[1])[: args.top]:
        print(f"  {size / n / 1024:8.1f} KB  {100 * size / traced:5.1f}%  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
