"""Pinecone: the declared indexes of one project (control-plane API 2025-10).

``model`` (observed indexes, stats, actions) ← ``plan`` (pure) ← ``provisioner``
(observe, apply, teardown; wire shapes to model and back); ``client`` sends requests
with timeouts, retries, error mapping and redaction.
"""

from payscope_operator.backends.pinecone import client, model, plan, provisioner

__all__ = ["client", "model", "plan", "provisioner"]
