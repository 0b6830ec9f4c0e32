"""Pinecone: the declared indexes of one project (control-plane API 2025-10)."""

from payscope_operator.backends.pinecone import client, provisioner

__all__ = ["client", "provisioner"]
