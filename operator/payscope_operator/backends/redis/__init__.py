"""Redis: PayScope's Celery broker and its dead-letter queue, as the audit sees them (never provisioned).

``client`` builds a client with explicit timeouts and names the server without its
credentials; ``evidence`` reads what dimension C checks, in one round of commands.
"""

from payscope_operator.backends.redis import client, evidence

__all__ = ["client", "evidence"]
