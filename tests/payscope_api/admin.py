"""The fixture's self-descriptions: health, readiness, pipeline and runtime documents.

Why it exists: several checklist items (worker and ingestion health, Celery
retries and time limits, the dead-letter queue, log format and level, key
rotation, the audit-log backend) are only observable because contract
version 1 makes PayScope describe itself. This module builds those bodies as
pure functions of the fixture's settings and active faults, so each
configuration fault changes exactly one field.

What it must not do: authorise (``auth``), speak HTTP (``app``) or describe the
agents (``intents`` owns them).
"""

from __future__ import annotations

from jwt.algorithms import RSAAlgorithm

from tests.payscope_api import contract
from tests.payscope_api.config import FixtureConfig
from tests.payscope_api.faults import FaultName, FaultSet

JWKS_PATH = "/.well-known/jwks.json"

#: Permissions of each role, as /admin/runtime reports them.
RBAC: dict[str, list[str]] = {
    contract.ROLE_ADMIN: ["chat:query", "admin:read"],
    contract.ROLE_ANALYST: ["chat:query"],
}


def health_body(faults: FaultSet) -> tuple[int, contract.HealthBody]:
    if FaultName.HEALTHZ_FAILS in faults:
        return 500, {"status": "fail", "contract_version": contract.CONTRACT_VERSION}
    return 200, {"status": "ok", "contract_version": contract.CONTRACT_VERSION}


def readiness_body(config: FixtureConfig, faults: FaultSet) -> tuple[int, contract.ReadyBody]:
    """One check per dependency in use (an unused one is not listed); any ``fail`` makes the whole degraded (503)."""
    omitted = faults.args(FaultName.READYZ_OMIT)
    listed = () if FaultName.READYZ_NO_CHECKS in faults else config.dependencies
    checks: dict[str, contract.CheckState] = {name: "ok" for name in listed if name not in omitted}
    if FaultName.READYZ_DEGRADED in faults:
        victim = "postgres" if "postgres" in checks else next(iter(checks), "postgres")
        checks[victim] = "fail"
    degraded = any(state == "fail" for state in checks.values())
    body: contract.ReadyBody = {"status": "degraded" if degraded else "ok", "checks": checks}
    return (503 if degraded else 200), body


def pipeline_body(faults: FaultSet, dead_letter_queue: str = "dlq") -> contract.PipelineBody:
    worker: contract.ComponentHealth = {"status": "ok", "online": 2}
    if FaultName.WORKER_DOWN in faults:
        worker = {"status": "fail", "online": 0}
    no_time_limit = FaultName.PIPELINE_NO_TIME_LIMIT in faults
    return {
        "max_retries": 0 if FaultName.PIPELINE_NO_RETRIES in faults else 5,
        "retry_backoff": FaultName.PIPELINE_NO_BACKOFF not in faults,
        "retry_backoff_max_s": 600.0,
        "task_time_limit_s": None if no_time_limit else 300.0,
        "task_soft_time_limit_s": None if no_time_limit else 270.0,
        "acks_late": FaultName.PIPELINE_NO_ACKS_LATE not in faults,
        "dead_letter_queue": None if FaultName.PIPELINE_NO_DLQ in faults else dead_letter_queue,
        "ingestion": {
            "validates_files": FaultName.INGESTION_NO_VALIDATION not in faults,
            "max_file_bytes": 50 * 1024 * 1024,
        },
        "health": {
            "worker": worker,
            "ingestion": {"status": "fail" if FaultName.INGESTION_DOWN in faults else "ok"},
        },
    }


def runtime_body(config: FixtureConfig, faults: FaultSet) -> contract.RuntimeBody:
    return {
        "version": config.version,
        "contract_version": contract.CONTRACT_VERSION,
        "logging": {
            "format": "text" if FaultName.UNSTRUCTURED_LOGS in faults else "json",
            "level": "DEBUG" if FaultName.LOG_LEVEL_DEBUG in faults else "INFO",
        },
        "auth": {
            "algorithm": config.algorithm,
            "issuer": config.issuer,
            "audience": config.audience,
            "leeway_s": config.leeway_s,
            "key_ids": None if FaultName.KEY_IDS_UNLISTED in faults else sorted(config.keys),
            "jwks_uri": JWKS_PATH if config.jwks_enabled else None,
        },
        "rbac": {role: list(permissions) for role, permissions in RBAC.items()},
        "audit_log": {"backend": "hash_log", "table": config.audit_table, "fabric_enabled": False},
        "shutdown": {"graceful_timeout_s": config.graceful_timeout_s},
    }


def jwks_body(config: FixtureConfig) -> contract.JwksBody:
    """The public keys in JWK form (RS256 only), each with its ``kid``."""
    keys: list[contract.Jwk] = []
    for kid, pem in sorted(config.keys.items()):
        jwk = RSAAlgorithm.to_jwk(RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(pem), as_dict=True)
        keys.append({"kty": "RSA", "n": str(jwk["n"]), "e": str(jwk["e"]), "kid": kid, "use": "sig", "alg": "RS256"})
    return {"keys": keys}
