"""The pure planner of Pinecone: which declared indexes to create or patch, and which are stuck.

Why this module exists: deciding what an index needs is a pure function of
``spec.pinecone`` and of what ``provisioner`` observed, so it is table-tested without a
server. Its policies:

- Tags: declared tags are enforced (a changed or removed declared tag is drift and is
  set again); tags nobody declared are left alone (other tools, billing for one, tag
  indexes too), and a tag removed from the spec stays on the index. Pinecone's PATCH
  merges tags, so the plan sends only the declared tags that differ and never an
  empty value (which would delete a tag).
- An existing index that differs in dimension, metric, vector type, serverless/pod,
  cloud, region, pod environment, shards or a pod type not reachable by scaling up is
  Failed with ``IndexSpecImmutable`` and a permanent blocker naming the fields. Pod
  replicas and a larger pod type of the same family are patched (drift).
- ``deletion_protection`` follows the spec in both directions while the resource lives.
- Ownership: an index is changed only when its tags record this resource (or it is
  migrated from an earlier operator version's ``managed-by`` tag, or adopted with
  ``adopt: true``: then the owner tags are set first). Any other existing index is
  Foreign; one another resource owns also blocks with ``OwnedByAnotherResource``.

What it must not do: talk to Pinecone, plan a deletion or a re-creation of an index, or
look at an index the spec does not declare.
"""

from __future__ import annotations

import re

from payscope_operator.api import conditions, fields, status, stores_spec
from payscope_operator.backends import base, ownership, planning
from payscope_operator.backends.pinecone import model

TAG_VALUE_PATTERN = r"^[A-Za-z0-9;@_\-.+ ]{1,120}$"
"""A tag value Pinecone accepts (an empty value would delete the tag, so it is refused too)."""

_BROKEN = frozenset({"InitializationFailed", "Disabled"})
_State = status.ProvisionState


def _on_off(enabled: bool) -> str:
    return "on" if enabled else "off"


def _placement(index: stores_spec.PineconeIndex) -> str:
    if index.serverless is not None:
        return f"serverless {index.serverless.cloud}/{index.serverless.region}"
    assert index.pod is not None
    pod = index.pod
    return f"pod {pod.environment} {pod.pod_type} x{pod.shards} shards x{pod.replicas} replicas"


def _pod_size(pod_type: str) -> tuple[str, int]:
    family, _, size = pod_type.partition(".x")
    return family, int(size) if size.isdigit() else 0


def _immutable_differences(want: stores_spec.PineconeIndex, have: model.ObservedIndex) -> list[str]:
    """Fields Pinecone cannot change on an existing index, with both values."""
    found: list[str] = []

    def differs(name: str, actual: object, declared: object) -> None:
        if actual != declared:
            found.append(f"{name} is {actual}, spec says {declared}")

    differs("vector_type", have.vector_type, "dense")
    differs("dimension", have.dimension, want.dimension)
    differs("metric", have.metric, want.metric.value)
    if want.serverless is not None:
        if have.pod is not None:
            found.append("placement is pod, spec says serverless")
        else:
            differs("cloud", have.cloud, want.serverless.cloud.value)
            differs("region", have.region, want.serverless.region)
    elif want.pod is not None:
        if have.pod is None:
            found.append("placement is serverless, spec says pod")
        else:
            differs("environment", have.pod.environment, want.pod.environment)
            differs("shards", have.pod.shards, want.pod.shards)
            (have_family, have_size), (want_family, want_size) = (
                _pod_size(have.pod.pod_type),
                _pod_size(want.pod.pod_type),
            )
            if have_family != want_family or want_size < have_size:
                found.append(f"pod_type is {have.pod.pod_type}, spec says {want.pod.pod_type} (pods only scale up)")
    return found


def _spec_problems(want: stores_spec.PineconeIndex) -> list[str]:
    """What makes a declared index unprovisionable before asking Pinecone."""
    problems: list[str] = []
    if not re.fullmatch(fields.PINECONE_INDEX_PATTERN, want.name):
        problems.append("the name is not a valid Pinecone index name")
    for reserved in sorted(model.RESERVED_TAGS & set(want.tags)):
        problems.append(f"tag {reserved} is reserved for the operator")
    for key, value in want.tags.items():
        if not re.fullmatch(stores_spec.TAG_KEY_PATTERN, key) or not re.fullmatch(TAG_VALUE_PATTERN, value):
            problems.append(f"tag {key}: values are 1-120 letters, digits, ';', '@', '_', '-', '.', '+' or ' '")
    return problems


def _configure_for(want: stores_spec.PineconeIndex, have: model.ObservedIndex) -> model.ConfigureIndex | None:
    """The PATCH that makes the mutable fields match, or None when they already do."""
    changes: list[str] = []
    protection: bool | None = None
    if have.deletion_protection != want.deletion_protection:
        protection = want.deletion_protection
        changes.append(f"deletion protection {_on_off(have.deletion_protection)} -> {_on_off(protection)}")
    tags = tuple(sorted((k, v) for k, v in want.tags.items() if have.tags.get(k) != v))
    if tags:
        changes.append("tags " + ", ".join(k for k, _ in tags) + " set as declared")
    replicas: int | None = None
    pod_type: str | None = None
    if want.pod is not None and have.pod is not None:
        if have.pod.replicas != want.pod.replicas:
            replicas = want.pod.replicas
            changes.append(f"replicas {have.pod.replicas} -> {replicas}")
        if have.pod.pod_type != want.pod.pod_type:
            pod_type = want.pod.pod_type
            changes.append(f"pod_type {have.pod.pod_type} -> {pod_type}")
    if not changes:
        return None
    return model.ConfigureIndex(
        system=model.SYSTEM,
        verb=base.Verb.UPDATE,
        kind=model.KIND,
        target=want.name,
        detail="; ".join(changes),
        drift=True,  # the index exists and differs: an out-of-band edit or a spec edit look alike
        deletion_protection=protection,
        tags=tags,
        replicas=replicas,
        pod_type=pod_type,
    )


def _plan_index(
    want: stores_spec.PineconeIndex,
    have: model.ObservedIndex | None,
    out: planning.PlanBuilder,
    owner: ownership.Owner,
) -> None:
    name = want.name
    if problems := _spec_problems(want):
        message = f"Pinecone index {name}: " + "; ".join(problems)
        out.fail([(model.KIND, name)], conditions.Reason.SPEC_INVALID, message, permanent=True)
        return
    if have is None:
        detail = f"{_placement(want)}, dimension {want.dimension}, {want.metric.value}"
        detail += f", deletion protection {_on_off(want.deletion_protection)}"
        out.state(model.KIND, name, _State.MISSING, "not found")
        out.act(
            model.CreateIndex(
                system=model.SYSTEM, verb=base.Verb.CREATE, kind=model.KIND, target=name, detail=detail, index=want
            )
        )
        return
    verdict = ownership.judge(owner, have.mark, adopt=want.adopt)
    if not verdict.manage:
        configure = _configure_for(want, have)
        differences = _immutable_differences(want, have) + ([configure.detail] if configure else [])
        if not have.ready or have.state != "Ready":
            differences.append(f"it is {have.state}, not Ready")
        out.foreign(model.KIND, name, verdict, differences)
        return
    if verdict.mark:  # before anything else changes, record whose it is
        out.act(
            model.ConfigureIndex(
                system=model.SYSTEM,
                verb=base.Verb.UPDATE,
                kind="PineconeIndexOwnership",
                target=name,
                detail=f"owner {owner.resource}: {verdict.message}",
                tags=tuple(sorted(model.owner_tags(owner).items())),
            )
        )
    if immutable := _immutable_differences(want, have):
        message = (
            f"Pinecone index {name}: " + "; ".join(immutable) + ". Pinecone cannot change this on an existing"
            " index and the operator never recreates one: delete the index by hand or declare another name"
        )
        out.fail([(model.KIND, name)], conditions.Reason.INDEX_SPEC_IMMUTABLE, message, permanent=True)
        return
    if have.state in _BROKEN:
        message = f"Pinecone index {name} is {have.state}; it needs attention in the Pinecone console"
        out.fail([(model.KIND, name)], conditions.Reason.PROVISIONING_FAILED, message, permanent=True)
        return
    if have.state == "Terminating":
        out.state(model.KIND, name, _State.PENDING, "being deleted; it will be created again once it is gone")
        return
    configure = _configure_for(want, have)
    if configure is not None:
        out.state(model.KIND, name, _State.DRIFTED, configure.detail)
        out.act(configure)
    elif not have.ready or have.state != "Ready":
        out.state(model.KIND, name, _State.PENDING, f"{have.state}, not Ready yet")
    else:
        out.state(model.KIND, name, _State.READY, verdict.message)


def plan_pinecone(
    desired: stores_spec.Pinecone, observed: model.ObservedVectors, *, owner: ownership.Owner
) -> base.Plan:
    """Actions that make the declared indexes ``owner`` may manage exist and match; undeclared ones are ignored.

    An existing index that is not ``owner``'s (``ownership.judge``) is Foreign: nothing is
    planned for it, and its state says what Full management would have changed.
    """
    out = planning.PlanBuilder(model.SYSTEM)
    for want in desired.indexes:
        _plan_index(want, observed.indexes.get(want.name), out, owner)
    return out.build()
