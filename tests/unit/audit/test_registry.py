"""The check registry: the one way to declare a check, and what it refuses.

Table tests of ``registry.Registry`` (the ``@check`` decorator), ``registry.assemble``
and ``registry.ordered``: a repeated id, a malformed id, a dependency on an unknown
check and a circle of dependencies are refused at declaration; what a declaration
says is what the catalog holds. Also that no check's message points at another
check by hand any more (dependencies are data), and that ``reconcile``'s pass
session is what the audit's sources expect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from payscope_operator import errors
from payscope_operator.api import conditions, spec, status
from payscope_operator.audit import catalog, context, registry
from payscope_operator.reconcile import secrets, session

AUDIT = Path(registry.__file__).parent
SOURCE = registry.Source[int]("s", lambda run: _never(), lambda s: True, "absent")


async def _never() -> int:
    raise AssertionError("no source is gathered here")


def _passes(value: int, desired: spec.PayScopeSpec) -> registry.Finding:
    return registry.Finding.passed("ok")


def _declare(checks: registry.Registry, check_id: str, depends_on: Sequence[str] = ()) -> None:
    checks.check(
        check_id,
        source=SOURCE,
        severity=status.Severity.MEDIUM,
        grade=registry.Grade.OBSERVED,
        title="t",
        passes_when="p",
        depends_on=depends_on,
    )(_passes)


def test_a_declaration_is_the_check_and_leaves_the_function_as_it_is() -> None:
    checks = registry.Registry()
    decorator = checks.check(
        "G.jwt.example",
        source=SOURCE,
        severity=status.Severity.CRITICAL,
        grade=registry.Grade.INFERRED,
        title="What it probes.",
        passes_when="What Pass means.",
        covers=["G/JWT/Expiry checking"],
        applies=lambda s: s.api is not None,
        depends_on=["G.jwt.other"],
    )
    assert decorator(_passes) is _passes
    (check,) = list(checks)
    assert (check.id, check.dimension, check.severity, check.grade) == (
        "G.jwt.example",
        conditions.Dimension.SECURITY,
        status.Severity.CRITICAL,
        registry.Grade.INFERRED,
    )
    assert (check.title, check.passes_when, check.covers, check.depends_on) == (
        "What it probes.",
        "What Pass means.",
        ("G/JWT/Expiry checking",),
        ("G.jwt.other",),
    )
    assert check.source is SOURCE
    assert check.select is None
    assert check.evaluate is _passes
    assert check.applies is not None
    assert not check.applies(spec.PayScopeSpec())


def test_a_check_on_a_part_is_gathered_with_the_whole_source() -> None:
    checks = registry.Registry()
    part = SOURCE.part(lambda v: v * 10)
    checks.check(
        "D.part.tens",
        source=part,
        severity=status.Severity.LOW,
        grade=registry.Grade.REPORTED,
        title="t",
        passes_when="p",
    )(lambda value, desired: registry.Finding.passed(f"{value}"))
    (check,) = list(checks)
    assert check.source is SOURCE
    assert check.judge(4, spec.PayScopeSpec()).message == "40"


@pytest.mark.parametrize(
    ("declarations", "error"),
    [
        ([("A.x.one", ()), ("A.x.one", ())], "check A.x.one is declared twice"),
        ([("A.x.one", ("A.x.one",))], "check A.x.one depends on itself"),
        ([("H.x.one", ())], "'H.x.one' is not a check id"),
        ([("A.x", ())], "'A.x' is not a check id"),
        ([("a.x.one", ())], "'a.x.one' is not a check id"),
        ([("A.x.One", ())], "'A.x.One' is not a check id"),
    ],
    ids=["duplicate-id", "self-dependency", "unknown-letter", "two-segments", "lower-letter", "upper-name"],
)
def test_a_registry_refuses(declarations: list[tuple[str, tuple[str, ...]]], error: str) -> None:
    checks = registry.Registry()
    *accepted, (refused_id, refused_depends_on) = declarations
    for check_id, depends_on in accepted:
        _declare(checks, check_id, depends_on)
    with pytest.raises(registry.RegistrationError, match=re.escape(error)):
        _declare(checks, refused_id, refused_depends_on)
    assert [c.id for c in checks] == [check_id for check_id, _ in accepted]


@pytest.mark.parametrize(
    ("modules", "error"),
    [
        ([[("A.x.one", ())], [("A.x.one", ())]], "check A.x.one is declared twice"),
        ([[("A.x.one", ("B.x.missing",))]], "check A.x.one depends on unknown check(s) B.x.missing"),
        (
            [[("A.x.one", ("A.x.two",))], [("A.x.two", ("A.x.three",)), ("A.x.three", ("A.x.one",))]],
            "checks depend on each other in a circle: A.x.one -> A.x.two -> A.x.three -> A.x.one",
        ),
    ],
    ids=["duplicate-across-modules", "unknown-dependency", "circle"],
)
def test_assembling_a_catalog_refuses(modules: list[list[tuple[str, tuple[str, ...]]]], error: str) -> None:
    registries = []
    for declarations in modules:
        checks = registry.Registry()
        for check_id, depends_on in declarations:
            _declare(checks, check_id, depends_on)
        registries.append(checks)
    with pytest.raises(registry.RegistrationError, match=re.escape(error)):
        registry.assemble(*registries)


def test_ordered_puts_every_check_after_its_prerequisites_and_keeps_the_rest_in_place() -> None:
    checks = registry.Registry()
    for check_id, depends_on in [
        ("E.o.last", ("E.o.middle",)),
        ("A.o.free", ()),
        ("E.o.middle", ("E.o.first",)),
        ("E.o.first", ()),
    ]:
        _declare(checks, check_id, depends_on)
    assert [c.id for c in registry.ordered(checks)] == ["E.o.first", "E.o.middle", "E.o.last", "A.o.free"]


def test_the_catalog_declares_its_dependencies_within_one_source() -> None:
    """A prerequisite on the same source is judged on the same gathering: no dependency spans two passes."""
    by_id = {c.id: c for c in catalog.CATALOG}
    pairs = [(c, by_id[d]) for c in catalog.CATALOG for d in c.depends_on]
    assert pairs, "the catalog declares dependencies"
    assert all(check.source.name == needed.source.name for check, needed in pairs)
    assert {c.id for c in catalog.CATALOG} == catalog.ids()


def test_no_check_points_at_another_by_hand() -> None:
    """Dependencies are data (``depends_on``), not prose such as "see E.intents.forecast" in a finding."""
    pointer = re.compile(r"\bsee [A-G]\.[a-z_*]+")
    found = [
        f"{path.relative_to(AUDIT)}:{n}"
        for path in AUDIT.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pointer.search(line)
    ]
    assert found == []


def _pass_session(desired: spec.PayScopeSpec) -> context.Session:
    """Typed as the audit's Session: mypy holds ``reconcile.session.PassSession`` to the Protocol."""
    cluster: Any = None
    return session.PassSession(desired, "ns", "psd", secrets.Secrets({}), (), cluster, session.ClientCache())


def test_the_pass_session_reaches_the_stores_through_the_audits_protocol() -> None:
    run = _pass_session(
        spec.PayScopeSpec.model_validate({"redis": {"connection": {"secretRef": {"name": "r", "key": "url"}}}})
    )
    assert run.missing == ()
    with pytest.raises(errors.SpecInvalid, match=r"spec\.postgres is absent"):
        run.stores.postgres_dsn()
    with pytest.raises(errors.SecretNotFound, match=r"Secret 'r' key 'url' \(spec.redis.connection.secretRef\)"):
        context.reveal(run, "r", "url", "spec.redis.connection.secretRef")


def test_a_check_covers_an_item_by_proxy_with_the_weaker_of_the_two_grades() -> None:
    checks = registry.Registry()
    item, proxy = "A/Docker Compose/Health checks configured", "A/Startup & Dependencies/Graceful startup behavior"
    checks.check(
        "A.x.probes",
        source=SOURCE,
        severity=status.Severity.MEDIUM,
        grade=registry.Grade.OBSERVED,
        title="t",
        passes_when="p",
        covers=(item, registry.Cover(proxy, registry.Grade.INFERRED)),
    )(_passes)
    (check,) = checks
    assert check.covers == (item, proxy)
    assert (check.grade_for(item), check.grade_for(proxy)) == (registry.Grade.OBSERVED, registry.Grade.INFERRED)
    reported = registry.Check(**{**check.__dict__, "grade": registry.Grade.REPORTED})
    assert reported.grade_for(proxy) == registry.Grade.REPORTED  # a proxy never makes evidence stronger
    assert registry.strongest([registry.Grade.REPORTED, registry.Grade.INFERRED]) == registry.Grade.INFERRED
    assert registry.strongest([]) is None
