"""Run the operator's image with podman exactly as the chart's Deployment would run it.

``run_flags`` reads the Deployment the chart renders and turns its pod and
container security context, its /tmp volume and its environment into
``podman run`` flags; a field it does not know how to honour fails the test
instead of being silently dropped, so the container under test cannot be
laxer than the Pod a cluster would start. On top of those flags, the test
control plane is reached over the host's network (every test server listens
on 127.0.0.1), the kubeconfig comes from a read-only file mount (a cluster
would mount the ServiceAccount token), and ``POD_ID`` is the container's name.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e import cluster
from tests.testenv import image

KUBECONFIG_IN_CONTAINER = "/etc/payscope/kubeconfig"
_SIZE = re.compile(r"^(\d+)(Ki|Mi|Gi)?$")
_KNOWN_POD_KEYS = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
_KNOWN_CONTAINER_KEYS = {
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "runAsNonRoot",
    "privileged",
    "capabilities",
    "seccompProfile",
}


def chart_deployment(namespace: str, *values: str) -> dict[str, Any]:
    (deployment,) = [d for d in cluster.render_chart(namespace, *values) if d["kind"] == "Deployment"]
    return deployment


def _tmpfs_size(quantity: str) -> str:
    match = _SIZE.match(quantity)
    assert match, f"emptyDir sizeLimit {quantity!r} not understood"
    unit = {"Ki": "k", "Mi": "m", "Gi": "g", None: ""}[match.group(2)]
    return f"{match.group(1)}{unit}"


def run_flags(deployment: Mapping[str, Any]) -> list[str]:
    """The chart's security context, volumes and environment as ``podman run`` flags."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_ctx, ctx = pod.get("securityContext", {}), container.get("securityContext", {})
    assert set(pod_ctx) <= _KNOWN_POD_KEYS, f"pod securityContext fields not honoured: {set(pod_ctx) - _KNOWN_POD_KEYS}"
    assert set(ctx) <= _KNOWN_CONTAINER_KEYS, f"securityContext fields not honoured: {set(ctx) - _KNOWN_CONTAINER_KEYS}"
    assert pod_ctx.get("runAsNonRoot"), "the chart runs the operator as non-root"
    assert ctx.get("runAsNonRoot"), "the chart runs the operator as non-root"
    assert int(pod_ctx["runAsUser"]) != 0
    flags = [f"--user={pod_ctx['runAsUser']}:{pod_ctx['runAsGroup']}", f"--group-add={pod_ctx['fsGroup']}"]
    if ctx.get("readOnlyRootFilesystem"):
        flags += ["--read-only", "--read-only-tmpfs=false"]  # only the volumes the chart mounts are writable
    if ctx.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    assert ctx.get("privileged") is False
    caps = ctx.get("capabilities", {})
    flags += [f"--cap-drop={cap}" for cap in caps.get("drop", [])]
    flags += [f"--cap-add={cap}" for cap in caps.get("add", [])]
    for profile in (pod_ctx.get("seccompProfile"), ctx.get("seccompProfile")):
        assert profile in (None, {"type": "RuntimeDefault"}), profile  # podman applies its default profile
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        assert set(volume) == {"name", "emptyDir"}, f"volume kind not honoured: {volume}"
        size = volume["emptyDir"].get("sizeLimit")
        options = "rw,mode=1777" + (f",size={_tmpfs_size(size)}" if size else "")
        flags.append(f"--tmpfs={mount['mountPath']}:{options}")
    for var in container.get("env", []):
        if "value" in var:
            flags.append(f"--env={var['name']}={var['value']}")
    return flags


def portable_kubeconfig(source: Path, target: Path) -> Path:
    """The kubeconfig with its CA inlined, readable by the container's non-root user."""
    config = yaml.safe_load(source.read_text())
    for entry in config["clusters"]:
        ca = entry["cluster"].pop("certificate-authority", None)
        if ca:
            entry["cluster"]["certificate-authority-data"] = base64.b64encode(Path(ca).read_bytes()).decode()
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    target.chmod(0o644)  # a throwaway token for the test control plane, read by uid 65532 through a mount
    return target


@dataclass
class Container:
    name: str
    metrics_url: str

    def pid(self) -> int:
        out = _podman("inspect", "--format", "{{.State.Pid}}", self.name)
        return int(out.strip())

    def logs(self) -> str:
        done = subprocess.run(
            [image.podman(), "logs", self.name], capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout + done.stderr

    def running(self) -> bool:
        return _podman("inspect", "--format", "{{.State.Running}}", self.name).strip() == "true"

    def stop(self) -> None:
        subprocess.run([image.podman(), "stop", "--time", "10", self.name], capture_output=True, timeout=60)
        subprocess.run([image.podman(), "rm", "--force", self.name], capture_output=True, timeout=60)


def _podman(*args: str) -> str:
    done = subprocess.run([image.podman(), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"podman {' '.join(args[:2])} failed: {done.stderr}"
    return done.stdout


def start(
    image_id: str, deployment: Mapping[str, Any], kubeconfig: Path, port: int, env: Mapping[str, str]
) -> Container:
    """Start the image detached on the host network, under the chart's security context."""
    name = f"payscope-e2e-{uuid.uuid4().hex[:8]}"
    overrides = {"POD_ID": name, "PAYSCOPE_METRICS_PORT": str(port), "PAYSCOPE_METRICS_HOST": "127.0.0.1", **env}
    argv = [
        "run",
        "--detach",
        f"--name={name}",
        *image.podman_args(),
        "--network=host",
        *run_flags(deployment),
        *(f"--env={k}={v}" for k, v in overrides.items()),
        f"--env=KUBECONFIG={KUBECONFIG_IN_CONTAINER}",
        f"--volume={kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
        image_id,
        f"--kubeconfig={KUBECONFIG_IN_CONTAINER}",
    ]
    _podman(*argv)
    return Container(name=name, metrics_url=f"http://127.0.0.1:{port}")


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` of the container's main process, as the host sees it."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def root_is_read_only(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return "ro" in fields[5].split(",")
    return False


def runtime_problem() -> str | None:
    """Why no container can run here (None: one can): podman missing, or a trivial container failing.

    Only these skip: a base that cannot be bootstrapped or an image that does not build
    is a failure of the project's own files, and fails the test.
    """
    if shutil.which("podman") is None:
        return "no container runtime: podman is not installed (run `make system-packages` as root)"
    base = image.base()
    done = subprocess.run(
        [image.podman(), "run", "--rm", *image.podman_args(), "--network=none", base, "true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        return f"podman cannot run a container here: {done.stderr.strip()[-500:]}"
    return None
