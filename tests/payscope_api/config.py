"""Settings of one reference PayScope fixture instance.

Why it exists: the in-process factory (``app.create_app``) and the command line
(``__main__``) build the same fixture; this frozen dataclass is the one shape
both fill, and the only thing ``admin``, ``auth`` and ``app`` read settings
from. Defaults are the values a healthy PayScope would report.

What it must not do: read the environment or files, or hold runtime state
(active faults, metrics): those live in the application's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from tests.payscope_api import contract

Algorithm = Literal["HS256", "RS256"]

DEFAULT_DEPENDENCIES: tuple[str, ...] = (
    "postgres",
    "redis",
    "neo4j",
    "neo4j_schema",
    "pinecone",
    "pinecone_index",
    "object_storage",
    "migrations",
)
"""Every store in use, so every readiness entry (contract section 2.2): an unused store is simply not listed."""


@dataclass(frozen=True)
class FixtureConfig:
    """What a fixture verifies tokens with and what it reports about itself."""

    algorithm: Algorithm
    #: Accepted verification keys by key id (``kid``): the HS256 shared secret or
    #: the RS256 public key in PEM. Several keys model a key rotation in progress.
    keys: Mapping[str, str]
    issuer: str = "payscope"
    audience: str = "payscope-api"
    leeway_s: float = 10.0
    #: Token expected in X-Fixture-Token by ``/_faults``; None disables that endpoint.
    fixture_token: str | None = None
    #: Fault specifications active from the start (``name`` or ``name:arg``).
    faults: tuple[str, ...] = ()
    faults_file: Path | None = None
    #: How long the ``hang`` fault sleeps before answering.
    hang_seconds: float = 3600.0
    confidence_threshold: float = 0.6
    fallback_intent: contract.Intent = contract.Intent.DESCRIBE
    #: The ``/readyz`` checks this installation reports (see contract.READINESS_CHECKS).
    dependencies: tuple[str, ...] = DEFAULT_DEPENDENCIES
    graceful_timeout_s: float = 20.0
    audit_table: str = "audit_log"
    #: Where the audit-log table lives (a Postgres DSN); None: no row is written (contract section 12.3).
    audit_dsn: str | None = field(default=None, repr=False)
    #: The Redis key /admin/pipeline names as PayScope's dead-letter queue.
    dead_letter_queue: str = "dlq"
    version: str = "1.0.0+fixture"
    #: Where JSON log lines go; None discards them.
    log_stream: TextIO | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one verification key is needed")
        unknown = set(self.dependencies) - set(contract.READINESS_CHECKS)
        if unknown:
            raise ValueError(f"unknown readiness checks: {sorted(unknown)}")
        if not 0.0 < self.confidence_threshold < 1.0:
            raise ValueError("confidence_threshold must lie strictly between 0 and 1")

    @property
    def jwks_enabled(self) -> bool:
        """Public keys can be published only for asymmetric algorithms."""
        return self.algorithm == "RS256"
