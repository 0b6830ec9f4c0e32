"""Neo4j: constraints and indexes of one database.

``model`` (declared objects, observed schema, actions) ← ``cypher`` (statement text,
record mapping) ← ``plan`` (pure) ← ``provisioner`` (observe, apply, teardown);
``client`` builds the driver and runs one statement at a time with timeouts.
"""

from payscope_operator.backends.neo4j import client, cypher, model, plan, provisioner

__all__ = ["client", "cypher", "model", "plan", "provisioner"]
