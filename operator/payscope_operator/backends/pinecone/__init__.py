"""Pinecone: the declared indexes of one project (control-plane API 2025-10).

``model`` (observed indexes, stats, actions) ← ``plan`` (pure) ← ``provisioner``
(observe, apply, teardown; wire shapes to model and back); ``client`` sends requests
with timeouts, retries, error mapping and redaction; ``evidence`` holds the audit's
read-only index statistics.
"""

from payscope_operator.backends.pinecone import client, evidence, model, plan, provisioner

__all__ = ["client", "evidence", "model", "plan", "provisioner"]
