"""A real Kubernetes control plane for tests: etcd plus kube-apiserver.

Started the way controller-runtime's envtest starts it, with RBAC on, an admin
token in the kubeconfig, a CA of our own so clients verify the serving
certificate, service-account signing keys so TokenRequest works (a test can run
the operator as a ServiceAccount bound to the chart's role), and an audit log
of every write so a test can count what the operator sends to the API server.
A second admin user, ``payscope-metered`` (kubeconfig ``PAYSCOPE_KUBE_METERED_KUBECONFIG``),
has every request logged, reads included, so a test can count the reads and
writes of one reconcile pass it drives as that user (``meter.py``).

There is no kube-controller-manager: no garbage collection, namespaces stay
Terminating after deletion, and Deployments get no Pods; tests write a
Deployment's status through the status subresource to simulate availability.
This module starts servers (and starts kube-apiserver again, on the same port and
etcd, for the fault tests); building them is ``kube_build.py``'s job.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import ssl
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.testenv import kube_build, process

METERED_USER = "payscope-metered"
APISERVER_LAUNCH = "kube-apiserver.launch.json"  # argv and readiness probe, for restart_apiserver
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "users": [METERED_USER]},
        {"level": "None", "verbs": ["get", "list", "watch"]},
        {"level": "None", "nonResourceURLs": ["/*"]},
        {"level": "None", "resources": [{"group": "coordination.k8s.io"}]},
        {"level": "Metadata"},
    ],
}


def obtain() -> dict[str, Path]:
    """Build (or find cached) etcd, kube-apiserver and helm."""
    return kube_build.build_all()


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_pki(pki: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1, and service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "payscope-testenv-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = _key()
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = _key()
    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.key").write_bytes(_pem_key(serving_key))
    (pki / "sa.key").write_bytes(_pem_key(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, token: str, user: str = "admin") -> None:
    """A kubeconfig with one cluster, one token user and one current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": user}}],
        "current-context": "testenv",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _start_etcd(workdir: Path, etcd_bin: Path) -> tuple[int, int]:
    client_port, peer_port = process.free_port(), process.free_port()
    log = workdir / "etcd.log"
    pid = process.spawn(
        [
            str(etcd_bin),
            "--name=testenv",
            f"--data-dir={workdir / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{client_port}",
            f"--advertise-client-urls=http://127.0.0.1:{client_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=testenv=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        log=log,
    )
    process.wait_until(
        lambda: _http_ok(f"http://127.0.0.1:{client_port}/health"), what="etcd", timeout=30, pid=pid, log=log
    )
    return pid, client_port


def _http_ok(url: str, *, ca: Path | None = None, token: str | None = None) -> bool:
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    request = urllib.request.Request(url)  # noqa: S310 - loopback URLs built here
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
        return bool(response.status == 200)


def _launch_apiserver(launch: dict[str, Any]) -> int:
    """Spawn kube-apiserver as recorded in ``launch`` and wait until it is ready; return its pid."""
    log = Path(launch["log"])
    pid = process.spawn(launch["argv"], log=log)
    process.wait_until(
        lambda: _http_ok(f"{launch['server']}/readyz", ca=Path(launch["ca"]), token=launch["token"]),
        what="kube-apiserver",
        timeout=120,
        pid=pid,
        log=log,
    )
    return pid


def restart_apiserver(workdir: Path) -> int:
    """Start kube-apiserver again exactly as before (same port, etcd, keys, audit log); return its pid.

    For fault tests that kill it: clients keep their kubeconfigs and tokens.
    """
    return _launch_apiserver(json.loads((workdir / APISERVER_LAUNCH).read_text()))


def start(workdir: Path) -> process.Running:
    """Start etcd and kube-apiserver; return the admin kubeconfig in env."""
    folders = obtain()
    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    _write_pki(pki)
    etcd_pid, etcd_port = _start_etcd(workdir, folders["etcd"] / "bin" / "etcd")

    token, metered_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    (pki / "tokens.csv").write_text(
        f'{token},admin,admin,"system:masters"\n{metered_token},{METERED_USER},{METERED_USER},"system:masters"\n'
    )
    (workdir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
    port = process.free_port()
    log = workdir / "kube-apiserver.log"
    apiserver = folders["kubernetes"] / "bin" / "kube-apiserver"
    argv = [
        str(apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--token-auth-file={pki / 'tokens.csv'}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--allow-privileged=true",
        "--disable-admission-plugins=ServiceAccount",
        "--authorization-mode=RBAC",
        f"--service-account-issuer=https://127.0.0.1:{port}/",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--audit-policy-file={workdir / 'audit-policy.yaml'}",
        f"--audit-log-path={workdir / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
        "--profiling=false",
        "--v=0",
    ]
    server = f"https://127.0.0.1:{port}"
    launch = {"argv": argv, "log": str(log), "server": server, "ca": str(pki / "ca.crt"), "token": token}
    (workdir / APISERVER_LAUNCH).write_text(json.dumps(launch))
    (workdir / APISERVER_LAUNCH).chmod(0o600)
    pid = _launch_apiserver(launch)
    kubeconfig = workdir / "kubeconfig"
    write_kubeconfig(kubeconfig, server=server, ca_file=pki / "ca.crt", token=token)
    metered = workdir / "kubeconfig-metered"
    write_kubeconfig(metered, server=server, ca_file=pki / "ca.crt", token=metered_token, user=METERED_USER)
    helm_bin = folders["helm"] / "bin"
    return process.Running(
        name="kubernetes",
        pids=(pid, etcd_pid),
        address=server,
        env={
            "KUBECONFIG": str(kubeconfig),
            "PAYSCOPE_KUBE_SERVER": server,
            "PAYSCOPE_KUBE_CA_FILE": str(pki / "ca.crt"),
            "PAYSCOPE_KUBE_AUDIT_LOG": str(workdir / "audit.log"),
            "PAYSCOPE_KUBE_METERED_KUBECONFIG": str(metered),
        },
        path=(str(helm_bin),),
    )
