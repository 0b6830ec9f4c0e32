"""PayScope's own HTTP API (contract version 1), as the audit observes it (never provisioned).

``client`` sends requests, each under its own timeout, and keeps the replies;
``model`` turns replies into typed facts the checks evaluate.
"""

from payscope_operator.backends.payscope_api import client, model

__all__ = ["client", "model"]
