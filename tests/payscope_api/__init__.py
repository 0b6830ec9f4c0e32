"""A reference PayScope API that honours the PayScope HTTP contract, version 1, for tests.

Why it exists: the operator audits a PayScope installation largely over
HTTP (health, readiness, metrics, the chat endpoint, the admin endpoints, JWT
handling). Its tests need a real server that behaves exactly as
``docs/payscope-contract.md`` says, and that can be switched to break one
behaviour at a time. This package is that server:

- ``app.create_app(FixtureConfig(...))`` builds it in-process (aiohttp's test server);
- ``python -m tests.payscope_api --port N --jwt-secret S ...`` runs it as a process;
- ``harness`` starts it (in-process or as a process) and switches its faults;
- ``faults`` lists the behaviours it can break; ``tokens`` mints the JWTs to probe it;
- ``probing``, ``probes_api`` and ``probes_access`` are one HTTP probe per contract behaviour;
- ``contract`` names the routes, intents, metric families and bodies of the contract;
- ``auditlog`` is the reference implementation of the audit-log hash chain.

What it must not do: be imported by the operator package (test code only), or
grow behaviour the contract does not describe (the fault switch aside, which
lives under ``/_faults`` and is not part of the contract).
"""

from tests.payscope_api.app import create_app
from tests.payscope_api.config import FixtureConfig

__all__ = ["FixtureConfig", "create_app"]
