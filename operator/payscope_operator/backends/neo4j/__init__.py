"""Neo4j: constraints and indexes of one database."""

from payscope_operator.backends.neo4j import plan, provisioner

__all__ = ["plan", "provisioner"]
