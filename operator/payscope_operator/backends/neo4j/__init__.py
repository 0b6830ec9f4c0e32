"""Neo4j: constraints and indexes of one database.

``model`` (declared objects, observed schema, actions) ← ``cypher`` (statement text,
record mapping) ← ``plan`` (pure) ← ``provisioner`` (observe, apply, teardown);
``client`` builds the driver and runs one statement at a time with timeouts;
``evidence`` holds the audit's read-only count of untenanted nodes.
"""

from payscope_operator.backends.neo4j import client, cypher, evidence, model, plan, provisioner

__all__ = ["client", "cypher", "evidence", "model", "plan", "provisioner"]
