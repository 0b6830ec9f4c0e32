"""Prometheus' own PromQL parser as a tiny CLI, built from the Go module and cached.

The dashboard's queries must parse exactly as Prometheus parses them, so the
check uses ``github.com/prometheus/prometheus/promql/parser`` itself rather than
a re-implementation: ``promql_check/main.go`` (beside this file) reads one JSON
string per line and answers, per line, the parse error or the metric names the
expression selects. It is built once per Prometheus version and source hash into
the test-environment cache, like kube-apiserver and helm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.testenv import cache, errors, kube_build

PROMETHEUS_VERSION = "v0.316.0"  # the Go module version of Prometheus 3.x
SOURCE = Path(__file__).resolve().parent / "promql_check" / "main.go"


@dataclass(frozen=True)
class Parsed:
    expr: str
    error: str | None
    metrics: tuple[str, ...]


def _version() -> str:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:10]
    return f"{PROMETHEUS_VERSION}-{digest}"


def _prepare(src: Path, log: Path) -> None:
    shutil.copy(SOURCE, src / "main.go")
    cache.run(
        ["go", "get", f"github.com/prometheus/prometheus@{PROMETHEUS_VERSION}"],
        cwd=src,
        env={"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        log=log,
    )


def build() -> Path:
    """The ``promql-check`` binary, built on first use."""
    if not shutil.which("go"):
        raise errors.BuildError("go missing: apt-get install golang-go")
    os.environ.setdefault("GOTOOLCHAIN", "local")
    folder = kube_build.go_build(
        "promql-check", _version(), prepare=_prepare, package=".", binary="promql-check", ldflags=""
    )
    return folder / "bin" / "promql-check"


def parse(expressions: Sequence[str]) -> list[Parsed]:
    """Parse each expression with Prometheus' parser; one result per expression, in order."""
    stdin = "".join(json.dumps(e) + "\n" for e in expressions)
    done = subprocess.run([str(build())], input=stdin, capture_output=True, text=True, timeout=60, check=True)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    return [Parsed(a["expr"], a.get("error"), tuple(a["metrics"])) for a in answers]
