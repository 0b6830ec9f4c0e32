"""Which provisioners exist, in the order a pass runs them.

Postgres work comes first and shares one connection (see ``session``);
each factory returns None when its section is absent from the spec.
"""

from __future__ import annotations

from payscope_operator.reconcile import provision

PROVISIONERS: tuple[provision.Factory, ...] = ()
