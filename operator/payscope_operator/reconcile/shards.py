"""Which PayScopeDeployments this operator process owns when several shards share the work.

Why this module exists: one replica reconciles a bounded number of resources (see
README, "Scale"); past that the work is split the way kube-state-metrics
(``--shard``/``--total-shards``) and Argo CD's controller shards split theirs. Every
process sees every resource through its watch, and owns exactly those whose
``metadata.uid`` hashes to its shard: ``sha256(uid) mod total``. Shards never talk
to each other, need no lease and no coordination: the hash alone decides, the same in
every process and every version of Python.

Why the uid: it is fixed for the object's whole life and never reused, it is on every
watch event (also the DELETED one) and it does not depend on the namespace, so a
namespace with many resources spreads over every shard. A name or namespace hash
would put all of a namespace's resources (or a recreated one under an old name) on
one shard. Why sha256 and not ``hash()``: Python salts ``hash`` per process, so two
shards would disagree about the same uid.

Changing the number of shards moves resources between shards; each new owner starts
from the resource's status (a status write needs the resourceVersion it read, so a
departing shard's late write fails instead of overwriting the new owner's).

What it must not do: read the cluster, remember anything, or decide anything but
ownership (what an owner does with a resource is the scheduler's business).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_ORDINAL = re.compile(r"-(\d+)$")


def shard_of(uid: str, total: int) -> int:
    """The shard, in ``[0, total)``, that owns the resource with this ``metadata.uid``."""
    if total < 1:
        raise ValueError(f"the number of shards must be 1 or more, not {total}")
    digest = hashlib.sha256(uid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total


def ordinal_of(hostname: str) -> int | None:
    """A StatefulSet Pod's ordinal, from its hostname (``payscope-operator-2`` -> 2); None without one."""
    found = _ORDINAL.search(hostname.strip())
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Shard:
    """This process's shard: ``index`` of ``total``; ``Shard()`` is the whole (one shard owns everything)."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"--total-shards must be 1 or more, not {self.total}")
        if not 0 <= self.index < self.total:
            raise ValueError(f"--shard must lie in [0, {self.total}), not {self.index}")

    def owns(self, uid: str) -> bool:
        """Whether this shard reconciles the resource with this uid."""
        return self.total == 1 or shard_of(uid, self.total) == self.index

    def describe(self) -> str:
        return "one shard (every resource)" if self.total == 1 else f"shard {self.index} of {self.total}"


def resolve(index: int | None, total: int, hostname: str) -> Shard:
    """The shard from the flags, or from the hostname's ordinal (a StatefulSet Pod) when ``--shard`` is absent.

    ValueError (the message says what to set) when several shards are asked for and
    neither the flag nor the hostname says which one this process is.
    """
    if total == 1 and index is None:
        return Shard()
    if index is None:
        index = ordinal_of(hostname)
        if index is None:
            raise ValueError(
                f"--total-shards {total} needs --shard (env PAYSCOPE_SHARD) or a hostname ending in the shard's"
                f" ordinal, as a StatefulSet Pod's does; the hostname is {hostname!r}"
            )
    return Shard(index, total)
