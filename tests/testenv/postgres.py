"""PostgreSQL 15 from Debian, in a cluster of its own made with initdb.

Never the system service: each environment gets a fresh cluster in a private
folder, listening on 127.0.0.1 only, with a generated superuser password and
password authentication for TCP. PostgreSQL refuses to run as root, so when
the environment is started as root the server runs as the ``postgres`` user
that Debian's package creates, in a folder under /tmp that user can reach
(the clone itself may sit under a root-only home). ``pg_stat_statements`` is
preloaded and created in the admin database, so a test can count server-side the
statements a pass sends to a database (``meter.py``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import tempfile
from pathlib import Path

import psycopg

from tests.testenv import errors, process

VERSION = "15"
BIN_DIR = Path(f"/usr/lib/postgresql/{VERSION}/bin")


def obtain() -> Path:
    """Debian's postgresql-15 is installed by .ci/run; only check it is there."""
    if not (BIN_DIR / "postgres").exists():
        raise errors.BuildError(f"PostgreSQL {VERSION} missing: apt-get install postgresql-{VERSION}")
    return BIN_DIR


def _run_as() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def start(workdir: Path) -> process.Running:
    obtain()
    workdir.mkdir(parents=True, exist_ok=True)
    owner = _run_as()
    data_root = Path(tempfile.mkdtemp(prefix="payscope-pg-"))
    (workdir / "data-root").write_text(str(data_root))
    data = data_root / "data"
    password = secrets.token_hex(16)
    pwfile = data_root / "pwfile"
    pwfile.write_text(password + "\n")
    if owner:
        os.chown(data_root, *owner)
        os.chown(pwfile, *owner)
    user_env = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    process.run_as(
        [
            str(BIN_DIR / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        owner=owner,
        env=user_env,
        log=workdir / "initdb.log",
    )
    pwfile.unlink()
    port = process.free_port()
    log = data_root / "postgres.log"
    pid = process.spawn(
        [
            str(BIN_DIR / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={data_root}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=64MB",
            # Counts every statement per database, read by tests/testenv/meter.py; large enough
            # that a whole test session evicts no entry (meter.py checks pg_stat_statements_info).
            "-c",
            "shared_preload_libraries=pg_stat_statements",
            "-c",
            "pg_stat_statements.max=20000",
            "-c",
            "pg_stat_statements.track_utility=on",
        ],
        log=log,
        env=user_env,
        owner=owner,
    )
    dsn = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres?sslmode=disable"

    def ready() -> bool:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    process.wait_until(ready, what="postgres", timeout=60, pid=pid, log=log)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")  # its view, in the admin database
    return process.Running(name="postgres", pids=(pid,), address=f"127.0.0.1:{port}", env={"PAYSCOPE_PG_DSN": dsn})


def cleanup(workdir: Path) -> None:
    """Remove the cluster's private folder after the server stopped."""
    marker = workdir / "data-root"
    if marker.exists():
        shutil.rmtree(marker.read_text().strip(), ignore_errors=True)
