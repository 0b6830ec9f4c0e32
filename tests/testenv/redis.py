"""Redis from Debian, on a free loopback port, with a generated password.

Nothing is persisted: it is PayScope's Celery broker in tests, and a fresh
environment starts empty.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import redis as redis_client

from tests.testenv import errors, process


def obtain() -> Path:
    found = shutil.which("redis-server")
    if not found:
        raise errors.BuildError("redis-server missing: apt-get install redis-server")
    return Path(found)


def start(workdir: Path) -> process.Running:
    binary = obtain()
    workdir.mkdir(parents=True, exist_ok=True)
    port = process.free_port()
    password = secrets.token_hex(16)
    conf = workdir / "redis.conf"
    conf.write_text(
        f'port {port}\nbind 127.0.0.1\nprotected-mode yes\nsave ""\nappendonly no\n'
        f"dir {workdir}\nrequirepass {password}\n"
    )
    conf.chmod(0o600)
    log = workdir / "redis.log"
    pid = process.spawn([str(binary), str(conf)], log=log)
    url = f"redis://:{password}@127.0.0.1:{port}/0"

    def ready() -> bool:
        client = redis_client.Redis.from_url(url, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    process.wait_until(ready, what="redis", timeout=30, pid=pid, log=log)
    return process.Running(name="redis", pids=(pid,), address=f"127.0.0.1:{port}", env={"PAYSCOPE_REDIS_URL": url})
