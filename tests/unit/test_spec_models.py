"""The spec models: the DESIGN.md contract accepted, every invalid case rejected at its field."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from payscope_operator.api import fields, postgres_spec, spec, status, stores_spec
from tests.cases import invalid_specs, valid_specs


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model reachable from ``root`` through its fields."""
    seen: set[type[BaseModel]] = set()
    pending = [root]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for info in model.model_fields.values():
            pending += [t for t in _types(info.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
    return seen


def _types(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", ())
    origin = getattr(annotation, "__origin__", None)
    inner = [t for arg in args for t in _types(arg)]
    return [annotation, *inner] if origin is None else inner + _types(origin)


@pytest.mark.parametrize(("case_id", "body"), valid_specs.VALID_SPECS, ids=[c[0] for c in valid_specs.VALID_SPECS])
def test_valid_specs_are_accepted(case_id: str, body: dict[str, Any]) -> None:
    parsed = spec.PayScopeSpec.model_validate(body)
    wire = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert spec.PayScopeSpec.model_validate(wire) == parsed


@pytest.mark.parametrize(
    ("case_id", "body", "field"), invalid_specs.INVALID_SPECS, ids=[c[0] for c in invalid_specs.INVALID_SPECS]
)
def test_invalid_specs_are_rejected_at_their_field(case_id: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec.PayScopeSpec.model_validate(body)
    paths = [invalid_specs.loc_to_path(error["loc"]) for error in caught.value.errors()]
    assert any(path.startswith(field) for path in paths), paths


def test_invalid_case_table_is_large_and_unique() -> None:
    ids = [case_id for case_id, _, _ in invalid_specs.INVALID_SPECS]
    assert len(ids) >= 20
    assert len(set(ids)) == len(ids)
    assert set(ids) >= invalid_specs.STRICT_FIELD_VALIDATION_ONLY


def test_design_example_reads_as_documented() -> None:
    parsed = spec.PayScopeSpec.model_validate(valid_specs.design_example())
    assert parsed.management_policy is spec.ManagementPolicy.FULL
    assert parsed.postgres is not None
    assert parsed.neo4j is not None
    assert parsed.object_storage is not None
    table = parsed.postgres.tables[0]
    assert (table.schema_name, table.name, table.tenant_index) == ("public", "transactions", True)
    assert table.hypertable is not None
    assert table.hypertable.compression is not None
    assert fields.parse_duration(table.hypertable.compression.after) == timedelta(days=30)
    assert parsed.postgres.audit_log == postgres_spec.AuditLog(
        table="audit_log", schema_name="public", order_column="id"
    )
    credentials = parsed.neo4j.connection.secret_ref
    assert (credentials.username_key, credentials.password_key) == ("username", "password")
    assert parsed.object_storage.credentials_secret_ref == stores_spec.S3CredentialsRef(name="s3")
    assert parsed.audit.waivers[0].expires == date(2027, 1, 31)
    assert parsed.audit.interval == "60s"


def test_empty_spec_means_nothing_configured() -> None:
    parsed = spec.PayScopeSpec.model_validate({})
    assert (parsed.postgres, parsed.api, parsed.workloads) == (None, None, None)
    assert parsed.deletion_policy is spec.DeletionPolicy.RETAIN
    assert fields.parse_duration(parsed.audit.interval) == timedelta(seconds=60)


def test_models_are_frozen() -> None:
    parsed = spec.PayScopeSpec.model_validate({})
    with pytest.raises(ValidationError):
        parsed.management_policy = spec.ManagementPolicy.OBSERVE_ONLY  # type: ignore[misc]


@pytest.mark.parametrize("root", [spec.PayScopeSpec, status.PayScopeStatus])
def test_every_field_is_described_and_camel_case_on_the_wire(root: type[BaseModel]) -> None:
    for model in _models(root):
        assert model.model_config.get("extra") == "forbid", model
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"
            assert info.alias is not None, f"{model.__name__}.{name}"
            assert "_" not in info.alias, f"{model.__name__}.{name}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", timedelta(seconds=1)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("400d", timedelta(days=400)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert fields.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "60", "1.5h", "30 days", "7w", "-1s", "10s\n", "01m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        fields.parse_duration(text)


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (
            fields.SQL_IDENTIFIER_PATTERN,
            ["bank_id", "_x", "t" * 63],
            ["", "Bank", "1abc", "a-b", "a b", "t" * 64, "a\n"],
        ),
        (fields.NEO4J_NAME_PATTERN, ["Account", "bank_id"], ["Foo`Bar", "Foo Bar", "9x", "x\n"]),
        (fields.BUCKET_NAME_PATTERN, ["abc", "payscope.ingest-1"], ["ab", "-abc", "abc.", "ABC", "a_b"]),
        (fields.PINECONE_INDEX_PATTERN, ["a", "payscope-rag", "x" * 45], ["", "-a", "a-", "A", "x" * 46]),
        (fields.SESSION_VARIABLE_PATTERN, ["app.current_bank_id"], ["app", "app.x.y", "App.x", "app.x;"]),
        (fields.CHECK_ID_PATTERN, ["A.infra.secrets", "G.jwt.alg_none"], ["H.a.b", "A.b", "a.b.c", "A.B.c"]),
        (
            fields.WAIVER_TARGET_PATTERN,
            ["G.jwt.alg_none", "D.*", "B.neo4j.*"],
            ["*", "D", "D.", "D*", "D.**", "*.a.b", "D.*.x", "D.a.b.*", "H.*", "d.*", "D.a.b*"],
        ),
        (fields.KUBE_NAME_PATTERN, ["payscope-api", "pg.secret"], ["PG", "pg_", "-pg", "pg-"]),
        (fields.HTTP_URL_PATTERN, ["http://a:8000", "https://[::1]/x?y=1"], ["ftp://a", "http://u:p@a", "http://a b"]),
    ],
)
def test_shared_patterns(pattern: str, good: list[str], bad: list[str]) -> None:
    assert all(re.fullmatch(pattern, value) for value in good), good
    assert not any(re.fullmatch(pattern, value) for value in bad), bad


def test_duplicate_map_keys_name_the_duplicate() -> None:
    body = {"audit": {"waivers": [{"check": "A.b.c", "reason": "r", "expires": "2030-01-01"}] * 2}}
    with pytest.raises(ValidationError) as caught:
        spec.PayScopeSpec.model_validate(body)
    assert [error["loc"] for error in caught.value.errors()] == [("audit", "waivers", 1)]


def test_waiver_date_must_be_a_real_date_string() -> None:
    for value in ["2027-02-30", "20270131", 1700000000]:
        with pytest.raises(ValidationError):
            spec.Waiver.model_validate({"check": "A.b.c", "reason": "r", "expires": value})


@pytest.mark.parametrize(
    ("check", "covered", "not_covered", "letter"),
    [
        ("D.*", ["D.agents.x", "D.intents.y"], ["E.agents.x"], "D"),
        ("B.neo4j.*", ["B.neo4j.constraints"], ["B.neo4jx.a", "B.postgres.rls"], None),
        ("F.metrics.agents", ["F.metrics.agents"], ["F.metrics.agents2", "F.metrics.agent"], None),
    ],
)
def test_a_waiver_names_a_check_an_area_or_a_dimension(
    check: str, covered: list[str], not_covered: list[str], letter: str | None
) -> None:
    waiver = spec.Waiver.model_validate({"check": check, "reason": "r", "expires": "2030-01-01"})
    assert all(waiver.covers(c) for c in covered)
    assert not any(waiver.covers(c) for c in not_covered)
    assert waiver.dimension_letter == letter
