"""Many PayScopeDeployments on the test control plane, and what the scale and churn benchmarks read off them.

Why it exists: ``benchmarks/scale.py`` and ``benchmarks/churn.py`` both need a
namespace with the chart's RBAC for the operator, Postgres databases the resources
point at, many resources created at once, the moment each one's status becomes
complete (a watch, not polling: a list of a thousand statuses every second would
load the shared machine more than the operator does), and readings of the operator
process (RSS, CPU seconds, open file descriptors, from ``/proc``), of its requests
to the API server (the kube-apiserver's audit log) and of Postgres connections
(``pg_stat_activity``).

What it must not do: time anything itself (the benchmarks decide what a figure
is), assert, or touch anything outside the namespaces and databases it created.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from psycopg import sql
from psycopg.conninfo import make_conninfo

from payscope_operator.api import crd
from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.identity import Identity, install_identity
from tests.testenv import environment

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PRODUCTION_ENV = {"PAYSCOPE_WATCH_CHECK_INTERVAL": "60"}
"""The operator as deployed: the tests' harness lists every 2 s to exercise the watch check; a fleet that listed
a thousand resources that often would measure the list, not the operator."""


def connect() -> k8s.ApiClient:
    """The test environment's variables in ``os.environ`` and an admin client of its API server."""
    os.environ.update(json.loads(environment.env_json_path().read_text()))
    return k8s_config.new_client_from_config(config_file=os.environ["KUBECONFIG"])


@dataclass
class Databases:
    """``count`` databases on the test Postgres, each with one tenant table and a Secret ``pg-<i>`` per namespace."""

    admin_dsn: str
    names: list[str] = field(default_factory=list)

    def create(self, count: int) -> None:
        suffix = uuid.uuid4().hex[:6]
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            for i in range(count):
                name = f"scale_{suffix}_{i}"
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                self.names.append(name)
        for name in self.names:
            with psycopg.connect(self.dsn(name), autocommit=True) as db:
                db.execute("CREATE TABLE transactions (id bigserial PRIMARY KEY, bank_id text NOT NULL)")

    def dsn(self, name: str) -> str:
        return make_conninfo(self.admin_dsn, dbname=name)

    def secrets(self, api: k8s.ApiClient, namespace: str) -> None:
        for i, name in enumerate(self.names):
            cluster.create_secret(api, namespace, f"pg-{i}", {"dsn": self.dsn(name)})

    def connections(self) -> int:
        """Backends connected to these databases now."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)", (self.names,)
            ).fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            for name in self.names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.names.clear()


def spec_for(index: int, databases: int, interval: str) -> dict[str, Any]:
    """ObserveOnly, one Postgres table, the database ``index mod databases``."""
    return {
        "managementPolicy": "ObserveOnly",
        "tenancy": {},
        "postgres": {
            "connection": {"secretRef": {"name": f"pg-{index % databases}", "key": "dsn"}},
            "tables": [{"name": "transactions", "rowLevelSecurity": {"enabled": True, "force": True},
                        "tenantIndex": True}],
        },
        "audit": {"interval": interval, "probeTimeout": "10s"},
    }  # fmt: skip


@dataclass
class Place:
    """A namespace with the chart's RBAC (namespaced mode) and a kubeconfig for the operator's ServiceAccount."""

    api: k8s.ApiClient
    namespace: str
    who: Identity

    @classmethod
    def create(cls, api: k8s.ApiClient, prefix: str, folder: Path) -> Place:
        namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
        k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        who = install_identity(
            api, folder, f"watchNamespaces={{{namespace}}}", f"fullnameOverride=payscope-{namespace}"
        )
        return cls(api, namespace, who)

    def delete(self) -> None:
        """Every resource first: without a controller-manager a deleted namespace keeps its objects."""
        cluster.remove_resources(self.api, self.namespace)
        core = k8s.CoreV1Api(self.api)
        for ns in (self.namespace, self.who.namespace):
            core.delete_namespace(ns)


def create_many(api: k8s.ApiClient, namespace: str, specs: Mapping[str, dict[str, Any]]) -> dict[str, float]:
    """Create every resource, 8 requests at a time; name -> monotonic time its create returned."""
    applied: dict[str, float] = {}

    def one(name: str) -> None:
        cluster.create_psd(api, namespace, name, specs[name])
        applied[name] = time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, specs))
    return applied


def delete_many(api: k8s.ApiClient, namespace: str, names: Iterable[str]) -> None:
    custom = k8s.CustomObjectsApi(api)

    def one(name: str) -> None:
        custom.delete_namespaced_custom_object(crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))


class Completion:
    """Watches a namespace's PayScopeDeployments; remembers when each first had a complete status."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.done: dict[str, float] = {}
        self.present: set[str] = set()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        custom = k8s.CustomObjectsApi(self.api)
        version = ""
        while not self._stop.is_set():
            stream = k8s_watch.Watch()
            try:
                for event in stream.stream(
                    custom.list_namespaced_custom_object, crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL,
                    resource_version=version, timeout_seconds=30, allow_watch_bookmarks=True,
                ):  # fmt: skip
                    obj: dict[str, Any] = event["object"]
                    meta = obj.get("metadata", {})
                    version = meta.get("resourceVersion", version)
                    self._record(event["type"], meta.get("name", ""), obj)
                    if self._stop.is_set():
                        break
            except k8s.ApiException as exc:
                if exc.status == 410:
                    version = ""  # expired: start from a fresh list
            finally:
                stream.stop()

    def _record(self, kind: str, name: str, obj: dict[str, Any]) -> None:
        with self._lock:
            if kind == "DELETED":
                self.present.discard(name)
            elif kind != "BOOKMARK":
                self.present.add(name)
                generation = obj.get("metadata", {}).get("generation")
                if name not in self.done and status.reflects(obj, generation):
                    self.done[name] = time.monotonic()
            self._lock.notify_all()

    def wait_done(self, names: Iterable[str], timeout: float) -> bool:
        wanted = set(names)
        with self._lock:
            return self._lock.wait_for(lambda: wanted <= set(self.done), timeout=timeout)

    def wait_absent(self, names: Iterable[str], timeout: float) -> bool:
        wanted = set(names)
        with self._lock:
            return self._lock.wait_for(lambda: not wanted & self.present, timeout=timeout)

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class Reading:
    """One look at an operator process."""

    rss_mb: float
    cpu_s: float
    fds: int


def read(pid: int) -> Reading:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime of every thread
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return Reading(rss, cpu, len(os.listdir(f"/proc/{pid}/fd")))


class AuditLog:
    """The kube-apiserver's audit log from a mark on: requests and writes by one user."""

    def __init__(self) -> None:
        self.path = Path(os.environ["PAYSCOPE_KUBE_AUDIT_LOG"])
        self.offset = self.path.stat().st_size

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def settle(self, users: Iterable[str], *, quiet: float, timeout: float) -> None:
        """Wait until ``users`` have written nothing for ``quiet`` seconds (or ``timeout``), then mark."""
        wanted = list(users)
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            self.mark()
            time.sleep(quiet)
            if self.count(wanted)[1] == 0:
                break
        self.mark()

    def count(self, users: Iterable[str]) -> tuple[int, int]:
        """(requests, writes) completed since the mark by ``users``; watches are counted when they end."""
        wanted, requests, writes = set(users), 0, 0
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("stage") != "ResponseComplete" or entry.get("user", {}).get("username") not in wanted:
                    continue
                requests += 1
                writes += entry.get("verb") not in ("get", "list", "watch")
        return requests, writes


def group_cpu(leaders: Iterable[int]) -> float:
    """CPU seconds of every process in the process groups ``leaders`` lead (children they reaped included).

    The test environment starts each server in a session of its own, so a group is a whole server: the
    kube-apiserver and etcd, or Postgres with every backend it forked.
    """
    groups, total = set(leaders), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) in groups:  # pgrp
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]
