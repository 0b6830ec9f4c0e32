"""Neo4j 5.26 LTS community for the tests, from Maven Central's jars, run on Java 17.

There is no Neo4j package in Debian or PyPI, and no Docker here; Maven serves the
community server as ``org.neo4j:neo4j``. ``obtain`` writes a one-dependency pom
into the cache and copies its runtime jars there; ``start`` runs
``org.neo4j.server.CommunityEntryPoint`` from them with a home folder of its own
under the workdir. 5.26 is the last line that runs on Java 17 (2025.x needs 21).

The server is a test double and must stay one: Bolt alone, on a free port of
127.0.0.1 (HTTP and HTTPS off; every other listener defaults to 127.0.0.1 too),
auth on with a password generated per environment and set with
``neo4j-admin dbms set-initial-password`` before the first start (the password
is kept beside the data, so a restart of the same environment reuses both), a
512 MiB heap and a 64 MiB page cache, usage reports off. Community has only
uniqueness constraints. This module never writes to the database itself.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from neo4j import GraphDatabase

from tests.testenv import cache, errors, process

NEO4J_VERSION = "5.26.30"  # newest 5.26.x (LTS) served in November 2026
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
SERVER_CLASS = "org.neo4j.server.CommunityEntryPoint"
ADMIN_CLASS = "org.neo4j.server.startup.Neo4jAdminCommand"
HEAP = "512m"
ADMIN_HEAP = "256m"
PAGECACHE = "64m"
USER = "neo4j"
START_TIMEOUT = 120.0

# Without the java.nio opening Neo4j dies with a LinkageError on DirectByteBuffer.
JVM_FLAGS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-XX:+ExitOnOutOfMemoryError",
    "-Dfile.encoding=UTF-8",
    "-Djava.net.preferIPv4Stack=true",  # Bolt on 127.0.0.1 itself, not on an IPv4-mapped IPv6 socket
)

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>payscope.testenv</groupId>
  <artifactId>neo4j-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.neo4j</groupId>
      <artifactId>neo4j</artifactId>
      <version>{NEO4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise errors.BuildError(f"{name} not found on PATH: Neo4j {NEO4J_VERSION} needs Java 17 or 21 and Maven")
    return found


def obtain() -> Path:
    """Copy Neo4j's runtime jars into the cache once; return the folder holding ``lib/``."""
    out = cache.artifact_dir("neo4j", NEO4J_VERSION)
    if cache.is_complete(out):
        return out
    mvn = _tool("mvn")
    _tool("java")
    cache.reset(out)
    (out / "pom.xml").write_text(_POM)
    cache.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            "pom.xml",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DoutputDirectory=lib",
            "-DincludeScope=runtime",
        ],
        cwd=out,
        log=out / "build.log",
    )
    if not (out / "lib" / f"neo4j-{NEO4J_VERSION}.jar").exists():
        raise errors.BuildError(f"copy-dependencies left no neo4j-{NEO4J_VERSION}.jar in {out / 'lib'}")
    cache.mark_complete(out)
    return out


def _config(home: Path, port: int) -> str:
    address = f"{process.HOST}:{port}"
    settings = {
        "server.default_listen_address": process.HOST,
        "server.default_advertised_address": process.HOST,
        "server.bolt.enabled": "true",
        "server.bolt.listen_address": address,
        "server.bolt.advertised_address": address,
        "server.http.enabled": "false",
        "server.https.enabled": "false",
        "server.directories.data": str(home / "data"),
        "server.directories.logs": str(home / "logs"),
        "server.directories.run": str(home / "run"),
        "server.directories.import": str(home / "import"),
        "server.memory.pagecache.size": PAGECACHE,
        "dbms.usage_report.enabled": "false",
        "dbms.security.auth_enabled": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _java(lib: Path, heap: str, main_class: str, *args: str) -> list[str]:
    return [_tool("java"), f"-Xmx{heap}", *JVM_FLAGS, "-cp", f"{lib}/*", main_class, *args]


def _password(home: Path, lib: Path) -> str:
    """The environment's password: set before the first start, then read back."""
    stored = home / "password"
    if stored.exists():
        return stored.read_text().strip()
    if (home / "data" / "databases").exists():
        raise errors.StartError(f"{home} holds a started database but no password file: remove the folder")
    password = secrets.token_hex(16)  # hex: never starts with "-", which the admin CLI would read as an option
    cache.run(  # no log file: it would record the password from the command line
        _java(lib, ADMIN_HEAP, ADMIN_CLASS, "dbms", "set-initial-password", password),
        env={"NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")},
    )
    stored.touch(mode=0o600)
    stored.write_text(password + "\n")
    return password


def start(workdir: Path) -> process.Running:
    """Start Neo4j on a free Bolt port; return once ``RETURN 1`` answers with auth."""
    lib = obtain() / "lib"
    home = workdir
    for folder in ("conf", "data", "logs", "run", "import"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    port = process.free_port()
    (home / "conf" / "neo4j.conf").write_text(_config(home, port))
    password = _password(home, lib)
    log = home / "logs" / "console.log"
    pid = process.spawn(
        _java(lib, HEAP, SERVER_CLASS, f"--home-dir={home}", f"--config-dir={home / 'conf'}", "--console-mode"),
        log=log,
        cwd=home,
    )
    uri = f"bolt://{process.HOST}:{port}"

    def ready() -> bool:
        if not process.tcp_open(port):  # spares the driver's connection-refused warnings
            return False
        # A plain session: execute_query would retry with back-off for up to 30 s.
        with (
            GraphDatabase.driver(uri, auth=(USER, password), connection_timeout=3) as driver,
            driver.session(database="neo4j") as session,
        ):
            return bool(session.run("RETURN 1 AS one").single(strict=True)["one"] == 1)

    try:
        process.wait_until(ready, what="neo4j", timeout=START_TIMEOUT, pid=pid, log=log)
    except errors.StartError:
        process.stop(pid)
        raise
    return process.Running(
        name="neo4j",
        pids=(pid,),
        address=uri,
        env={"PAYSCOPE_NEO4J_URI": uri, "PAYSCOPE_NEO4J_USER": USER, "PAYSCOPE_NEO4J_PASSWORD": password},
    )
