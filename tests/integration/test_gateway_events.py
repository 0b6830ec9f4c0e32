"""Events go out as plain bodies with their answers drained, and the calls after them still work.

Why it exists: ``Gateway.post_event`` sends a plain body and leaves the answer
unparsed (the client's models deep-copy their configuration on every
construction), then reads the answer's bytes before handing the connection back.
On one thread, a dozen Events alternate with Secret reads against the real API
server: every Event must be there, addressed to the resource, and every read must
succeed.

What it must not do: count on timing, or leave Events behind outside its namespace.
"""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from payscope_operator.kube import gateway
from tests.e2e import cluster

EVENTS = 12


async def test_events_and_reads_share_one_connection(testenv: dict[str, str], namespace: str) -> None:
    api = k8s_config.new_client_from_config(config_file=testenv["KUBECONFIG"])
    kube = gateway.Gateway(api, threads=1)
    cluster.create_secret(api, namespace, "pg", {"dsn": "host=db"})
    try:
        ref = gateway.ObjectRef(namespace, "psd", "0c1d2a54-6a3a-4f0e-9d1e-1b7f3c9e2a10")
        for n in range(EVENTS):
            await kube.post_event(ref, kind="Normal", reason="Probe", message=f"event {n}")
            secret = await kube.read_secret(namespace, "pg")
            assert secret is not None
            assert secret["dsn"].get_secret_value() == "host=db"
        assert kube.writes == EVENTS
    finally:
        kube.close()
    events = k8s.CoreV1Api(api).list_namespaced_event(namespace).items
    assert sorted(e.message for e in events) == sorted(f"event {n}" for n in range(EVENTS))
    assert {(e.involved_object.kind, e.involved_object.name, e.reason) for e in events} == {
        ("PayScopeDeployment", "psd", "Probe")
    }
