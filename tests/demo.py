"""``make demo``: the operator's main job, end to end, on a local control plane.

1. Brings up the real-server test environment (or reuses a running one).
2. Installs the CRD and the chart's RBAC; the operator runs as that ServiceAccount.
3. Builds a PayScope installation on the local servers (Postgres, Neo4j, Redis,
   S3, the Pinecone emulator, the reference PayScope API, three Deployments)
   and applies a PayScopeDeployment declaring all of it.
4. Prints ``kubectl get psd -o wide`` as the conditions settle, then every
   condition and the checks that are not passing, then ``kubectl payscope
   status`` (the plugin) and writes the readiness report (``kubectl payscope
   report``, Markdown and HTML) to the demo's working folder. One dimension fails on
   purpose: the reference API runs without the agent metric families, so
   ObservabilityReady is False and F.metrics.agents says why.
5. Stops what it started (``--keep`` leaves the environment and operator up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests import installation
from tests.conftest import unique
from tests.e2e import cluster
from tests.testenv import environment

FAULT = "drop_metric:payscope_agent_requests_total"
SETTLE_SECONDS = 90


def _kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False).stdout


def _settled(api: k8s.ApiClient, namespace: str, name: str) -> bool:
    obj = cluster.psd(api, namespace, name)
    state = obj.get("status") or {}
    conds = cluster.conditions(obj)
    return (
        state.get("observedGeneration") == obj["metadata"]["generation"]
        and len(conds) == 11
        and conds["Reconciling"]["status"] == "False"
        and all(c["reason"] != "AuditPending" for c in conds.values())
    )


def run(keep: bool) -> int:
    started = time.monotonic()
    print("== bringing up the test environment (real kube-apiserver, Postgres, Neo4j, Redis, S3, Pinecone emulator)")
    started_env = environment.ensure_up()
    env: dict[str, str] = json.loads(environment.env_json_path().read_text())
    os.environ.update(env)
    api = k8s_config.new_client_from_config(config_file=env["KUBECONFIG"])
    workdir = Path(tempfile.mkdtemp(prefix="payscope-demo-"))
    operator: cluster.OperatorProcess | None = None
    inst: installation.Installation | None = None
    try:
        print("== installing the CRD and the chart's RBAC; the operator runs as its ServiceAccount")
        cluster.install_crd(api)
        system_ns, namespace = unique("payscope-system-"), unique("payscope-demo-")
        for ns in (system_ns, namespace):
            k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
        account = cluster.install_rbac(system_ns)
        kubeconfig = cluster.service_account_kubeconfig(
            api, system_ns, account["metadata"]["name"], workdir / "kubeconfig"
        )
        operator = cluster.start_operator(kubeconfig, workdir / "operator.log", namespaces=(namespace,))
        print(f"   operator pid {operator.pid}, metrics on {operator.metrics_url}/metrics, log {operator.log}")

        print(f"== building a PayScope installation in namespace {namespace} (reference API fault: {FAULT})")
        inst = installation.build(api, namespace, env, workdir, FAULT)
        cluster.create_psd(api, namespace, inst.name, inst.spec)
        print(f"== applied PayScopeDeployment {namespace}/{inst.name}; watching it settle\n")
        last = ""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            table = _kubectl("get", "psd", "-n", namespace, "-o", "wide")
            if table != last:
                print(f"[{time.monotonic() - started:5.1f}s]\n{table}")
                last = table
            if _settled(api, namespace, inst.name):
                break
            time.sleep(1)
        obj = cluster.psd(api, namespace, inst.name)
        _report(obj)
        _plugin(namespace, inst.name, workdir)
        print(f"== done in {time.monotonic() - started:.0f}s")
        return 0
    finally:
        if not keep:
            if operator is not None:
                operator.stop()
            if inst is not None:
                inst.stop()
            if started_env:
                environment.down()
        else:
            print(f"== left running (--keep): source {environment.env_sh_path()}")


def _report(obj: dict[str, Any]) -> None:
    print("== conditions")
    for cond in obj["status"]["conditions"]:
        print(f"   {cond['type']:<20} {cond['status']:<8} {cond['reason']}: {cond['message'][:140]}")
    print("\n== checks that do not pass (status.checks lists failing first)")
    for check in obj["status"]["checks"]:
        if check["status"] != "Pass":
            print(f"   {check['id']:<36} {check['status']:<14} {check['message'][:120]}")
    provisioned = obj["status"].get("provisioned") or {}
    print("\n== provisioned objects")
    for system, items in provisioned.items():
        for item in items:
            print(f"   {system:<14} {item['kind']:<18} {item['name']:<48} {item['state']}")


def _plugin(namespace: str, name: str, workdir: Path) -> None:
    """What the kubectl plugin shows of the installation, and its readiness report written to files."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"\n== kubectl payscope status {name} -n {namespace}")
    shown = subprocess.run(
        ["kubectl", "payscope", "status", name, "-n", namespace], capture_output=True, text=True, check=False, env=env
    )
    print(shown.stdout + shown.stderr)
    for fmt, suffix in (("markdown", "md"), ("html", "html")):
        path = workdir / f"readiness-report.{suffix}"
        argv = ["kubectl", "payscope", "report", name, "-n", namespace, "--format", fmt, "-o", str(path)]
        subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        print(f"== readiness report ({fmt}): {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the environment and the operator running")
    return run(parser.parse_args(argv).keep)


if __name__ == "__main__":
    sys.exit(main())
