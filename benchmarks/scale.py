"""Benchmark (not a timed test): many PayScopeDeployments on one replica, then on two shards, and the kopf floor.

Every resource is ObserveOnly with a Postgres section (one table), spread over 10
databases of the test Postgres, audited every ``--interval`` (60 s). The phases,
each in a fresh namespace with the chart's RBAC for the operator:

1. ``floor``: ``--floor-count`` resources (50) applied at once under a bare kopf
   operator that only writes one status (``benchmarks/bare_kopf.py``), then under
   the operator, then under the operator profiled (``benchmarks/profiled_operator.py``): p50/p95
   apply-to-status for each, and where the profiled operator's time went
   (``benchmarks/breakdown.py``);
2. ``one``: ``--count`` resources (1000) applied at once on one replica: time until
   all have a complete status, p50/p95 apply-to-status, RSS; then one audit cycle
   (``--interval`` seconds) watched: CPU seconds, passes, requests to the API server
   and writes (the kube-apiserver's audit log; this replica runs as the test
   environment's metered user, whose reads are recorded too), Postgres connections held
   (``pg_stat_activity``, sampled every second: the most at once), RSS;
3. ``two``: the same on two shards (``--shard 0|1 --total-shards 2``).

"Complete status": ``observedGeneration`` equals the generation and ``Reconciling``
is False at it (what ``kubectl wait``/kstatus wait for). Apply-to-status is measured
from the moment the create request returned. The machine may be shared: compare
the ratios of one run rather than absolute seconds across runs.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py [--count 1000] [--phases floor,one,two]

Needs the test environment (``python -m tests.testenv up``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kubernetes import client as k8s

from benchmarks import breakdown, fleet
from tests.e2e import cluster
from tests.testenv import faults, process

BIN = Path(sys.executable).parent
BARE = Path(__file__).resolve().parent / "bare_kopf.py"
PROFILED = Path(__file__).resolve().parent / "profiled_operator.py"
METERED_USER = "payscope-metered"
PASSES = re.compile(r"^payscope_reconcile_duration_seconds_count\{.*\} (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Apply:
    """One apply of many resources at once."""

    count: int
    all_s: float  # from the first create until every status was complete
    p50: float
    p95: float
    cpu: Mapping[str, float] = field(default_factory=dict)  # CPU seconds each process group spent meanwhile

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.count:>5} resources: all complete after {self.all_s:6.1f}s;"
            f" apply-to-status p50 {self.p50:5.2f}s p95 {self.p95:5.2f}s"
        )

    def cpu_line(self) -> str:
        """Who used the machine's cores while the resources were applied (all of them: the machine is the limit)."""
        cores = os.cpu_count() or 1
        used = sum(self.cpu.values())
        parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.cpu.items())
        return (
            f"  CPU while applying ({self.all_s:.1f}s x {cores} cores = {self.all_s * cores:.1f}s):"
            f" {parts}; {100 * used / (self.all_s * cores):.0f}% of the machine"
        )


@dataclass
class Settings:
    count: int
    floor_count: int
    databases: int
    interval: int
    concurrency: int | None
    folder: Path


def apply(
    settings: Settings, place: fleet.Place, count: int, prefix: str = "psd", groups: Mapping[str, Sequence[int]] = {}
) -> Apply:
    """Create ``count`` resources at once in ``place`` and wait until each has a complete status.

    ``groups``: process groups (name -> leaders) whose CPU seconds during the apply are reported.
    """
    specs = {f"{prefix}-{i:04d}": fleet.spec_for(i, settings.databases, f"{settings.interval}s") for i in range(count)}
    watcher = fleet.Completion(place.api, place.namespace)
    try:
        cpu_before = {name: fleet.group_cpu(leaders) for name, leaders in groups.items()}
        started = time.monotonic()
        applied = fleet.create_many(place.api, place.namespace, specs)
        if not watcher.wait_done(specs, timeout=120 + 2.0 * count):
            missing = sorted(set(specs) - set(watcher.done))
            raise SystemExit(f"{len(missing)} resources never got a complete status, e.g. {missing[:3]}")
        cpu = {name: fleet.group_cpu(leaders) - cpu_before[name] for name, leaders in groups.items()}
        took = [watcher.done[name] - applied[name] for name in specs]
        finished = max(watcher.done[name] for name in specs)
    finally:
        watcher.stop()
    return Apply(count, finished - started, statistics.median(took), fleet.percentile(took, 0.95), cpu)


def servers() -> dict[str, tuple[int, ...]]:
    """The test environment's servers a pass of these resources keeps busy."""
    return {"kube-apiserver+etcd": faults.pids("kubernetes"), "postgres": faults.pids("postgres")}


def operator(
    settings: Settings,
    place: fleet.Place,
    log: Path,
    *,
    shard: tuple[int, int] | None = None,
    profile: Path | None = None,
    kubeconfig: Path | None = None,
) -> cluster.OperatorProcess:
    command: tuple[str, ...] = (str(BIN / "payscope-operator"), "run")
    if profile is not None:
        command = (sys.executable, str(PROFILED), str(profile), "run")
    args: tuple[str, ...] = ("--log-level", "warning")
    if shard is not None:
        args += ("--shard", str(shard[0]), "--total-shards", str(shard[1]))
    if settings.concurrency is not None:
        args += ("--concurrency", str(settings.concurrency))
    return cluster.start_operator(
        kubeconfig or place.who.kubeconfig,
        log,
        namespaces=(place.namespace,),
        extra_args=args,
        command=command,
        extra_env=fleet.PRODUCTION_ENV,
    )


def bare_kopf(place: fleet.Place, log: Path) -> int:
    port = process.free_port()
    argv = [str(BIN / "kopf"), "run", "--standalone", "--namespace", place.namespace,
            "--liveness", f"http://127.0.0.1:{port}/healthz", str(BARE)]  # fmt: skip
    pid = process.spawn(argv, log=log, env={"KUBECONFIG": str(place.who.kubeconfig)})

    def alive() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    process.wait_until(alive, what="bare kopf's liveness endpoint", timeout=30, pid=pid, log=log)
    return pid


def passes(operators: Sequence[cluster.OperatorProcess]) -> float:
    return sum(float(v) for op in operators for v in PASSES.findall(op.metrics()))


def cycle(
    settings: Settings, user: str, dbs: fleet.Databases, operators: Sequence[cluster.OperatorProcess]
) -> list[str]:
    """One audit interval of an applied fleet, watched from outside, once the first passes' writes are over."""
    audit = fleet.AuditLog()
    audit.settle([user], quiet=3.0, timeout=120.0)
    before = [fleet.read(op.pid) for op in operators]
    passes_before = passes(operators)
    held: list[int] = []
    ends = time.monotonic() + settings.interval
    while time.monotonic() < ends:
        held.append(dbs.connections())
        time.sleep(1.0)
    after = [fleet.read(op.pid) for op in operators]
    done = passes(operators) - passes_before
    requests, writes = audit.count([user])
    cpu = sum(a.cpu_s - b.cpu_s for a, b in zip(after, before, strict=True))
    return [
        f"  one audit cycle ({settings.interval}s): {done:.0f} passes, {cpu:.1f} CPU seconds"
        f" ({100 * cpu / settings.interval:.0f}% of one core), {requests} requests to the API server,"
        f" {writes} writes",
        f"  Postgres connections held: at most {max(held)}, median {statistics.median(held):.0f}"
        f" (sampled every second, {len(held)} samples)",
        "  RSS: "
        + ", ".join(f"{r.rss_mb:.0f} MB" for r in after)
        + "; open fds: "
        + ", ".join(str(r.fds) for r in after),
    ]


def phase_floor(settings: Settings, api: k8s.ApiClient, dbs: fleet.Databases) -> None:
    n = settings.floor_count
    place = fleet.Place.create(api, "floor-bare", settings.folder)
    dbs.secrets(api, place.namespace)
    pid = bare_kopf(place, settings.folder / "bare.log")
    try:
        bare = apply(settings, place, n, groups={"bare kopf": (pid,), **servers()})
    finally:
        process.stop(pid)
        place.delete()
    print(bare.line("bare kopf (one status write)"), flush=True)
    print(bare.cpu_line(), flush=True)

    place = fleet.Place.create(api, "floor-op", settings.folder)
    dbs.secrets(api, place.namespace)
    op = operator(settings, place, settings.folder / "floor.log")
    try:
        ours = apply(settings, place, n, groups={"operator": (op.pid,), **servers()})
        rss = fleet.read(op.pid).rss_mb
    finally:
        op.stop()
        place.delete()
    print(ours.line("payscope-operator"), f"RSS {rss:.0f} MB", flush=True)
    print(ours.cpu_line(), flush=True)
    print(f"  ratio to the floor: p50 {ours.p50 / bare.p50:.1f}x, p95 {ours.p95 / bare.p95:.1f}x", flush=True)

    place = fleet.Place.create(api, "floor-prof", settings.folder)
    dbs.secrets(api, place.namespace)
    profile = settings.folder / "operator.prof"
    op = operator(settings, place, settings.folder / "profiled.log", profile=profile)
    try:
        profiled = apply(settings, place, n)
    finally:
        op.stop()
        place.delete()
    print(profiled.line("payscope-operator under cProfile"), flush=True)
    if profile.exists():
        print("\n".join(breakdown.render(profile)), flush=True)
    else:
        print("  (no profile written: the operator did not exit cleanly)")


def phase_fleet(settings: Settings, api: k8s.ApiClient, dbs: fleet.Databases, total: int) -> None:
    place = fleet.Place.create(api, f"scale-{total}", settings.folder)
    dbs.secrets(api, place.namespace)
    shards = [None] if total == 1 else [(i, total) for i in range(total)]
    # One replica runs as the test environment's metered user, whose reads the audit log records too
    # (of the chart's ServiceAccount, the audit policy records only the writes).
    metered = Path(os.environ["PAYSCOPE_KUBE_METERED_KUBECONFIG"]) if total == 1 else None
    running = [
        operator(settings, place, settings.folder / f"fleet-{total}-{i}.log", shard=s, kubeconfig=metered)
        for i, s in enumerate(shards)
    ]
    try:
        result = apply(settings, place, settings.count)
        print(result.line(f"{total} shard(s)"), flush=True)
        print(
            "  RSS after the apply: " + ", ".join(f"{fleet.read(op.pid).rss_mb:.0f} MB" for op in running), flush=True
        )
        if total == 1:
            print("\n".join(cycle(settings, METERED_USER, dbs, running)), flush=True)
    finally:
        for op in running:
            op.stop()
        place.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--floor-count", type=int, default=50)
    parser.add_argument("--databases", type=int, default=10)
    parser.add_argument("--interval", type=int, default=60, help="spec.audit.interval in seconds")
    parser.add_argument("--concurrency", type=int, default=None, help="the operator's --concurrency (its default)")
    parser.add_argument("--phases", default="floor,one,two")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    api = fleet.connect()
    dbs = fleet.Databases(os.environ["PAYSCOPE_PG_DSN"])
    dbs.create(args.databases)
    print(f"machine: {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            args.count, args.floor_count, args.databases, args.interval, args.concurrency, Path(scratch)
        )
        try:
            if "floor" in phases:
                phase_floor(settings, api, dbs)
            if "one" in phases:
                phase_fleet(settings, api, dbs, 1)
            if "two" in phases:
                phase_fleet(settings, api, dbs, 2)
        finally:
            dbs.drop()


if __name__ == "__main__":
    main()
