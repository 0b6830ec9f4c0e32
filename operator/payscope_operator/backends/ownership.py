"""Who owns an external object: the mark a resource records on what it creates, and how it is read.

Why this module exists: two PayScopeDeployments may declare the same bucket, index,
constraint or policy, and an object may exist that no resource created. Each provisioner
records its resource's uid (and namespace/name, where the medium has room) on every object
it creates: S3 bucket tags, Pinecone index tags, a Postgres ``COMMENT``, a Neo4j marker
node (``neo4j.model``). :func:`judge` reads that mark against the resource, once per
object and pass, with one rule for every system:

- the mark names this resource's uid: **ours**, managed;
- it names another uid: **owned by another resource**, observed and never changed
  (``OwnedByAnotherResource``, naming that resource). ``adopt: true`` takes over only
  from a resource of the same namespace and name (a deleted earlier incarnation of this
  one); to move an object between live resources, remove the mark by hand first;
- no uid, but the mark of an earlier operator version (the ``managed-by`` tag, a
  ``payscope_`` name): **migrated**, the object is ours and the uid is recorded now;
- nothing at all: **foreign**, observed and audited, never changed or deleted, unless
  its spec entry says ``adopt: true`` (then the mark is recorded and it is ours).

What it must not do: talk to a server, or decide what to change on an object beyond
whether it may be changed at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

OWNER_UID_TAG = "payscope.io/owner-uid"
OWNER_TAG = "payscope.io/owner"
"""S3 bucket tags holding the owning resource's uid and namespace/name."""
ADOPT_HINT = "set adopt: true on its spec entry to take it over"


@dataclass(frozen=True)
class Owner:
    """The PayScopeDeployment a provisioner works for.

    An empty ``uid`` (the standalone ``audit``/``plan`` commands, which read a file and not
    the cluster) recognises its objects by namespace/name alone; it never writes a mark.
    """

    uid: str
    namespace: str
    name: str

    @property
    def resource(self) -> str:
        return f"{self.namespace}/{self.name}"

    def describe(self) -> str:
        return f"{self.resource} (uid {self.uid})"


@dataclass(frozen=True)
class Mark:
    """What an object records about its owner; ``legacy``: an earlier operator's mark without uid."""

    uid: str | None = None
    resource: str | None = None
    legacy: bool = False

    @classmethod
    def of(cls, owner: Owner) -> Mark:
        return cls(owner.uid, owner.resource)


class Standing(StrEnum):
    OURS = "Ours"
    MIGRATE = "Migrate"  # ours from now on: record the mark first (legacy, adopted, earlier incarnation)
    FOREIGN = "Foreign"
    OWNED_ELSEWHERE = "OwnedByAnotherResource"


@dataclass(frozen=True)
class Verdict:
    """Whether the resource may change an object, and what to say when it may not (or must mark it)."""

    standing: Standing
    message: str = ""
    owner: str = ""  # the other owner, for OWNED_ELSEWHERE

    @property
    def manage(self) -> bool:
        return self.standing in (Standing.OURS, Standing.MIGRATE)

    @property
    def mark(self) -> bool:
        """The resource's mark must be written before anything else is changed."""
        return self.standing is Standing.MIGRATE


def judge(owner: Owner, mark: Mark, *, adopt: bool) -> Verdict:
    """Ours, to migrate, foreign, or another resource's: see the module docstring for the rule."""
    if mark.uid is not None and (mark.uid == owner.uid or (not owner.uid and mark.resource == owner.resource)):
        return Verdict(Standing.OURS)
    if mark.uid is not None:
        other = mark.resource or f"uid {mark.uid}"
        if mark.resource == owner.resource:
            if adopt:
                return Verdict(Standing.MIGRATE, f"taken over from an earlier {owner.resource} (uid {mark.uid})")
            return Verdict(
                Standing.OWNED_ELSEWHERE,
                f"owned by an earlier {owner.resource} (uid {mark.uid}), not this one; {ADOPT_HINT}",
                other,
            )
        if mark.resource:
            other = f"{mark.resource} (uid {mark.uid})"
        return Verdict(
            Standing.OWNED_ELSEWHERE,
            f"owned by PayScopeDeployment {other}; observed, never changed by this resource",
            other,
        )
    if mark.legacy:
        return Verdict(Standing.MIGRATE, "created by an earlier operator version; recording this resource as owner")
    if adopt:
        return Verdict(Standing.MIGRATE, "adopted (adopt: true): recording this resource as owner")
    return Verdict(
        Standing.FOREIGN, f"not created by this resource: observed and audited, never changed or deleted; {ADOPT_HINT}"
    )


def why_kept(verdict: Verdict) -> str:
    """Why teardown keeps an object this resource does not own, in a few words."""
    if verdict.standing is Standing.OWNED_ELSEWHERE:
        return f"owned by PayScopeDeployment {verdict.owner}"
    if verdict.standing is Standing.MIGRATE:
        return "created by an earlier operator version and not yet recorded as this resource's"
    return "not created by this resource"


def comment_of(owner: Owner) -> str:
    """The text of a Postgres ``COMMENT`` recording ``owner`` (read back by :func:`parse_comment`)."""
    return f"payscope-operator owner-uid={owner.uid} owner={owner.resource}"


def parse_comment(text: str | None, *, legacy: bool) -> Mark:
    """The mark a comment records. No comment on a ``legacy`` object: an earlier operator's. A comment
    someone else wrote: no mark at all (they claimed the object), so it is foreign."""
    if not text:
        return Mark(legacy=legacy)
    words = text.split()
    if not words or words[0] != "payscope-operator":
        return Mark()
    fields = dict(word.partition("=")[::2] for word in words[1:])
    return Mark(fields.get("owner-uid") or None, fields.get("owner") or None)
