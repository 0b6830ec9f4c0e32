"""Benchmark (not a timed test): how long an HA takeover takes, from a SIGKILL to a change reconciled.

Two replicas of the operator run with kopf peering as the chart renders them
(``tests.e2e.faults.peers``: namespaced mode, a KopfPeering in the watched
namespace, the chart's ServiceAccount and RBAC for each). In every round the
working replica (the higher priority) is SIGKILLed, the resource's spec is
changed at once, and the time until the standby has reconciled that change is
measured; then the standby is stopped too and a fresh pair starts the next round.
Prints every round and the median, with the peering lifetime it ran with (the
operator's default unless ``--lifetime`` says otherwise).

    PYTHONPATH=. .venv/bin/python benchmarks/takeover.py [--rounds 5] [--lifetime 15]

Needs the test environment (``python -m tests.testenv up``, or PAYSCOPE_TESTENV_DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.conftest import unique
from tests.e2e import cluster
from tests.e2e.faults import peers, status
from tests.testenv import environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lifetime", type=int, default=None, help="PAYSCOPE_PEERING_LIFETIME for both replicas")
    args = parser.parse_args()
    os.environ.update(json.loads(environment.env_json_path().read_text()))
    if args.lifetime is not None:
        os.environ["PAYSCOPE_PEERING_LIFETIME"] = str(args.lifetime)
    api = k8s_config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    namespace = unique("takeover-")
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    took: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        ids = peers.install(api, namespace, folder)
        for round_ in range(args.rounds):
            name = f"psd-{round_}"
            first, second = peers.pair(api, namespace, ids, folder)
            try:
                cluster.create_psd(api, namespace, name, peers.SPEC)
                status.wait_reflects(api, namespace, name, 1, timeout=60)
                took.append(peers.take_over(api, namespace, name, first))
            finally:
                first.stop()
                second.stop()
                cluster.delete_psd(api, namespace, name)
            print(f"round {round_ + 1}: a change made at the SIGKILL reconciled by the standby after {took[-1]:.1f}s")
    k8s.CoreV1Api(api).delete_namespace(namespace)
    lifetime = os.environ.get("PAYSCOPE_PEERING_LIFETIME", "the default")
    print(f"peering lifetime {lifetime}: median {statistics.median(took):.1f}s over {len(took)} rounds,"
          f" min {min(took):.1f}s, max {max(took):.1f}s")  # fmt: skip


if __name__ == "__main__":
    main()
