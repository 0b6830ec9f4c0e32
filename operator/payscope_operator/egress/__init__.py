"""Where the operator may connect, and how much it reads back: the egress policy.

``policy`` decides, for every endpoint a spec names, whether the operator may
connect to what it resolves to (pure, with a resolver seam); ``transport`` applies
the policy and the response-size cap to HTTP clients. Every client the operator
builds for a resource passes through one of them before its first connection.
"""

from payscope_operator.egress import policy, transport

__all__ = ["policy", "transport"]
